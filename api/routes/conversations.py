"""/v1/conversations"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web

from api.errors import CONFLICT, NOT_FOUND, ApiError
from api.http import parse_body, parse_query, respond, respond_page
from api.schemas.conversations import (
    ConnectionDetails,
    ConversationCreate,
    ConversationCreated,
    ConversationDetail,
    ConversationEnd,
    ConversationListQuery,
    ConversationSummary,
)
from api.state import AppState
from bridge import clock, lifecycle, recordings
from bridge.models import Conversation, Message
from bridge.store import ConversationFilter

routes = web.RouteTableDef()


def summary(conversation: Conversation) -> ConversationSummary:
    return ConversationSummary(
        **conversation.model_dump(include=set(ConversationSummary.model_fields) - {"duration"}),
        duration=lifecycle.duration_seconds(conversation),
    )


def detail(conversation: Conversation, messages: list[Message]) -> ConversationDetail:
    return ConversationDetail(
        **summary(conversation).model_dump(),
        messages=messages,
        metrics=conversation.metrics,
        feedback=conversation.feedback,
        initial_context=conversation.initial_context,
        settings=conversation.settings,
        call=conversation.call,
        node=conversation.node,
    )


def websocket_url(base_url: str, conversation_id: str) -> str:
    scheme, sep, rest = base_url.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}{sep}{rest}/v1/ws/{conversation_id}"


@routes.post("/v1/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    state = AppState.of(request.app)
    body = await parse_body(request, ConversationCreate)
    agent = await state.store.agents.get(body.agent_id)
    if agent.status != "active":
        raise ApiError(
            409,
            "agent_inactive",
            f"agent {agent.agent_id} is inactive; set its status to active first",
            error_type=CONFLICT,
            param="agent_id",
        )
    ttl = state.settings.conversation_token_ttl
    conversation, token = await state.store.conversations.create(
        agent_id=agent.agent_id,
        user_id=body.user_id,
        language=body.language or agent.language,
        initial_context=body.initial_context,
        settings=body.settings,
        token_ttl=ttl,
        node=state.settings.node_id,
    )
    assert token is not None
    created_ms = clock.parse_iso(conversation.created_at)
    return respond(
        ConversationCreated(
            conversation_id=conversation.conversation_id,
            status=conversation.status,
            created_at=conversation.created_at,
            connection_details=ConnectionDetails(
                websocket_url=websocket_url(
                    state.settings.base_url(), conversation.conversation_id
                ),
                token=token,
                expires_at=clock.iso(created_ms + ttl * 1000),
            ),
        ),
        status=201,
    )


def _epoch_ms(moment: datetime | None) -> int | None:
    # Ids encode time as unsigned milliseconds; an instant before 1970 bounds like 1970 does.
    return None if moment is None else max(int(moment.timestamp() * 1000), 0)


@routes.get("/v1/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    query = parse_query(request, ConversationListQuery)
    flt = ConversationFilter(
        agent_id=query.agent_id,
        user_id=query.user_id,
        status=query.status,
        since_ms=_epoch_ms(query.created_after),
        until_ms=_epoch_ms(query.created_before),
    )
    page = await AppState.of(request.app).store.conversations.list(
        flt, limit=query.limit, cursor=query.cursor
    )
    return respond_page([summary(c) for c in page.items], page)


@routes.get("/v1/conversations/{conversation_id}")
async def get_conversation(request: web.Request) -> web.Response:
    store = AppState.of(request.app).store
    conversation, messages = await store.conversations.get_with_messages(
        request.match_info["conversation_id"]
    )
    return respond(detail(conversation, messages))


@routes.post("/v1/conversations/{conversation_id}/end")
async def end_conversation(request: web.Request) -> web.Response:
    """Ends an active conversation; repeating it returns the ended conversation unchanged."""
    store = AppState.of(request.app).store
    conversation_id = request.match_info["conversation_id"]
    body = (
        await parse_body(request, ConversationEnd) if request.can_read_body else ConversationEnd()
    )
    await store.conversations.end(conversation_id, reason=body.reason, feedback=body.feedback)
    conversation, messages = await store.conversations.get_with_messages(conversation_id)
    return respond(detail(conversation, messages))


def _recording_expired(conversation: Conversation, retention_days: int) -> bool:
    # The sweep goes by the file's last write, which is no earlier than the end: a conversation
    # that ended longer ago than the retention has had its recording deleted.
    if not retention_days or conversation.ended_at is None:
        return False
    age_ms = clock.now_ms() - clock.parse_iso(conversation.ended_at)
    return age_ms > retention_days * recordings.DAY * 1000


@routes.get("/v1/conversations/{conversation_id}/recording")
async def get_recording(request: web.Request) -> web.StreamResponse:
    """The finished recording as a WAV download; aiohttp answers Range requests with 206."""
    state = AppState.of(request.app)
    conversation = await state.store.conversations.get(request.match_info["conversation_id"])
    cid = conversation.conversation_id
    if not conversation.settings.recording_enabled:
        raise ApiError(
            404,
            "recording_disabled",
            f"conversation {cid} was not recorded: it was started without "
            "settings.recording_enabled",
            error_type=NOT_FOUND,
        )
    data_dir = state.settings.data_dir
    found = await asyncio.to_thread(recordings.state, data_dir, cid)
    if conversation.status == "active" or found == "partial":
        raise ApiError(
            409,
            "recording_in_progress",
            f"the recording of conversation {cid} is still being written; "
            "fetch it once the conversation has ended",
            error_type=CONFLICT,
        )
    if found == "absent":
        if _recording_expired(conversation, state.settings.recording_retention_days):
            raise ApiError(
                404,
                "recording_expired",
                f"the recording of conversation {cid} was deleted after "
                f"{state.settings.recording_retention_days} days of retention",
                error_type=NOT_FOUND,
            )
        raise ApiError(
            404,
            "recording_not_found",
            f"conversation {cid} has no recording: no audio was recorded, or it was removed",
            error_type=NOT_FOUND,
        )
    return web.FileResponse(
        recordings.finished_path(data_dir, cid),
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'attachment; filename="{cid}.wav"',
        },
    )
