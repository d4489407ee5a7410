"""Replies from the customer's own service: each turn (and the greeting) is POSTed to the
agent's webhook URL, and its answer is spoken.

Request: `{"type": "turn"|"greeting", "conversation_id", "agent_id", "text", "dtmf",
"history": [{"role": "user"|"agent", "content"}], "initial_context"}`, with `X-Signature`
(hex HMAC-SHA256 of the body, keyed with the secret) when the engine has a secret.
Answer: `{"text": str|null, "action": null|"end"|"handoff", "reason": str|null}`. A greeting
without text is the agent's own greeting; an action without text says the farewell or handoff
line first. Failures raise; bridge/dialog/guarded.py turns them into the error line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ValidationError

from bridge.dialog.base import (
    Act,
    ActionKind,
    DialogContext,
    EngineError,
    ReplyPart,
    Say,
    earlier_turns,
)
from bridge.dialog.builtin import ACTION_LINES, line
from bridge.dialog.http import check_status
from bridge.models import WebhookEngineConfig
from bridge.signing import hex_signature

MAX_ANSWER_BYTES = 64 * 1024
"""Far more than a spoken reply needs; a larger answer is a misbehaving service."""


class Answer(BaseModel):
    """Extra fields are ignored, so a service may add its own."""

    text: str | None = None
    action: ActionKind | None = None
    reason: str | None = None


def payload(
    context: DialogContext,
    kind: Literal["turn", "greeting"],
    text: str | None,
    dtmf: str | None,
) -> dict[str, Any]:
    turns = earlier_turns(context, text) if text is not None else context.history
    return {
        "type": kind,
        "conversation_id": context.conversation_id,
        "agent_id": context.agent_id,
        "text": text,
        "dtmf": dtmf,
        "history": [{"role": role, "content": content} for role, content in turns],
        "initial_context": context.initial_context,
    }


def parse_answer(body: bytes) -> Answer:
    try:
        return Answer.model_validate_json(body, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        raise EngineError(
            "dialog_bad_response", f"the webhook's answer is not usable: {where}: {first['msg']}"
        ) from None


def reply_parts(answer: Answer, context: DialogContext, *, greeting: bool) -> list[ReplyPart]:
    """What the caller hears, and the action after it. Never silence: a turn answered with
    neither text nor action is an error."""
    parts: list[ReplyPart] = []
    if answer.text and answer.text.strip():
        parts.append(Say(answer.text))
    elif greeting:
        parts.append(Say(line(context, "greeting")))
    elif answer.action is not None:
        parts.append(Say(line(context, ACTION_LINES[answer.action])))
    else:
        raise EngineError(
            "dialog_bad_response", "the webhook answered with neither text nor action"
        )
    if answer.action is not None:
        parts.append(Act(answer.action, answer.reason or ""))
    return parts


class WebhookEngine:
    def __init__(self, config: WebhookEngineConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http

    async def greet(self, context: DialogContext) -> AsyncIterator[ReplyPart]:
        answer = await self._ask(payload(context, "greeting", None, None))
        for part in reply_parts(answer, context, greeting=True):
            yield part

    async def respond(
        self, context: DialogContext, user_text: str, *, dtmf: str | None = None
    ) -> AsyncIterator[ReplyPart]:
        answer = await self._ask(payload(context, "turn", user_text, dtmf))
        for part in reply_parts(answer, context, greeting=False):
            yield part

    async def _ask(self, request: dict[str, Any]) -> Answer:
        body = json.dumps(request, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._config.secret:
            headers["X-Signature"] = hex_signature(body, self._config.secret)
        async with self._http.post(self._config.url, data=body, headers=headers) as response:
            await check_status(response)
            answer = bytearray()
            async for chunk in response.content.iter_any():
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    raise EngineError(
                        "dialog_bad_response", f"the answer is larger than {MAX_ANSWER_BYTES} bytes"
                    )
        return parse_answer(bytes(answer))
