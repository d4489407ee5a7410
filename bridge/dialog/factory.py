"""The engine and the context a conversation's session talks to: the only entry point the
session uses."""

from __future__ import annotations

import aiohttp

from bridge.dialog.base import DialogContext, DialogEngine
from bridge.dialog.builtin import BuiltinEngine
from bridge.dialog.guarded import GuardedEngine, OnError
from bridge.dialog.listen import ListenEngine
from bridge.dialog.openai_compat import OpenAIEngine
from bridge.dialog.webhook_engine import WebhookEngine
from bridge.models import Agent, Conversation, OpenAIEngineConfig

REPLY_TIMEOUT = 120.0
"""Seconds a network engine's whole reply may take; the engine's own `timeout` bounds each
silence within it."""


def engine_for(agent: Agent, http: aiohttp.ClientSession, on_error: OnError) -> DialogEngine:
    """The agent's engine. Network engines are guarded: they never raise, and never leave the
    caller in silence for longer than their timeout (see guarded.py)."""
    config = agent.dialog_engine
    if config.type == "builtin":
        return BuiltinEngine()
    if config.type == "listen":
        return ListenEngine()
    engine: DialogEngine = (
        OpenAIEngine(config, http)
        if isinstance(config, OpenAIEngineConfig)
        else WebhookEngine(config, http)
    )
    return GuardedEngine(
        engine,
        name=config.type,
        idle_timeout=config.timeout,
        reply_timeout=REPLY_TIMEOUT,
        on_error=on_error,
    )


def context_for(agent: Agent, conversation: Conversation) -> DialogContext:
    return DialogContext(
        agent_name=agent.name,
        personality=agent.personality,
        custom_responses=dict(agent.custom_responses),
        intents=list(agent.intents),
        initial_context=conversation.initial_context,
        conversation_id=conversation.conversation_id,
        agent_id=agent.agent_id,
        language=conversation.language,
    )
