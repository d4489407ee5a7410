"""Conversations, their messages and their WebSocket tokens; every change emits its event in
the same MULTI/EXEC as the change itself."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio.client import Pipeline

from bridge import clock, conversation_metrics, events, ids, lifecycle
from bridge.models import (
    CallDetails,
    Channel,
    Conversation,
    ConversationSettings,
    ConversationStatus,
    Feedback,
    Message,
    MessageType,
    Metrics,
)
from bridge.store.base import Page, Part, begin_writes, parse_records, read_record
from bridge.store.errors import Conflict, NotFound
from bridge.store.pagination import decode_cursor, lex_range

NODE_COMMANDS_KEPT = 1000
RECENT_CHECKED = 16
"""How far back `append` looks for the message it is given: a session's writer applies its
writes in order, so a retried message can only be among the last few."""
# Every conversation starts and ends here, whatever its channel and whoever ends it: this is
# where its two INFO lines are written, once each.
log = logging.getLogger("bridge.conversations")


@dataclass(frozen=True)
class ConversationFilter:
    agent_id: str | None = None
    user_id: str | None = None
    status: ConversationStatus | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def accepts(self, conversation: Conversation) -> bool:
        return (
            (self.agent_id is None or conversation.agent_id == self.agent_id)
            and (self.user_id is None or conversation.user_id == self.user_id)
            and (self.status is None or conversation.status == self.status)
        )


@dataclass(frozen=True)
class EndResult:
    conversation: Conversation
    changed: bool


def new_message(
    message_type: MessageType,
    content: str,
    *,
    interrupted: bool | None = None,
    meta: dict[str, Any] | None = None,
) -> Message:
    """A message stamped now, with its id: made when it is said, stored when Redis can."""
    ms = clock.now_ms()
    return Message(
        id=ids.new_id(ids.MESSAGE, ms),
        type=message_type,
        content=content,
        timestamp=clock.iso(ms),
        interrupted=interrupted,
        meta=meta,
    )


class Conversations(Part):
    def queue_event(self, pipe: Pipeline, event_type: str, data: BaseModel) -> events.Event:
        event = events.build(event_type, data)
        pipe.xadd(
            self.keys.events, {"type": event.event, "id": event.id, "body": events.serialize(event)}
        )
        return event

    async def create(
        self,
        *,
        agent_id: str,
        user_id: str,
        language: str,
        initial_context: dict[str, Any],
        settings: ConversationSettings,
        channel: Channel = "websocket",
        token_ttl: int | None = None,
        node: str | None = None,
        call: CallDetails | None = None,
    ) -> tuple[Conversation, str | None]:
        """Create an active conversation; with `token_ttl`, also a cvt_ token that opens it."""
        ms = clock.now_ms()
        now = clock.iso(ms)
        conversation = Conversation(
            conversation_id=ids.new_id(ids.CONVERSATION, ms),
            agent_id=agent_id,
            user_id=user_id,
            channel=channel,
            language=language,
            initial_context=initial_context,
            settings=settings,
            created_at=now,
            started_at=now,
            node=node,
            call=call,
        )
        cid = conversation.conversation_id
        token = ids.new_conversation_token() if token_ttl else None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.conversation(cid), conversation.model_dump_json())
            for index in self._indexes(conversation):
                pipe.zadd(index, {cid: 0})
            if token is not None and token_ttl:
                pipe.set(self.keys.conversation_token(ids.digest(token)), cid, ex=token_ttl)
            self.queue_event(
                pipe,
                "conversation.started",
                events.ConversationStartedData(
                    **events.ref(conversation), started_at=conversation.started_at
                ),
            )
            await pipe.execute()
        log.info(
            "conversation %s started: %s, agent %s",
            cid,
            channel,
            agent_id,
            extra={"conversation_id": cid, "agent_id": agent_id, "channel": channel, "node": node},
        )
        return conversation, token

    def _indexes(self, conversation: Conversation) -> list[str]:
        return [
            self.keys.conversations,
            self.keys.conversations_by("agent", conversation.agent_id),
            self.keys.conversations_by("user", conversation.user_id),
            self.keys.conversations_by("status", conversation.status),
        ]

    async def get(self, conversation_id: str) -> Conversation:
        key = self.keys.conversation(conversation_id)
        return await read_record(self.redis, key, Conversation, "conversation", conversation_id)

    async def get_with_messages(self, conversation_id: str) -> tuple[Conversation, list[Message]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.conversation(conversation_id))
            pipe.lrange(self.keys.messages(conversation_id), 0, -1)
            raw, raw_messages = await pipe.execute()
        if raw is None:
            raise NotFound("conversation", conversation_id)
        messages = [Message.model_validate_json(m) for m in raw_messages]
        return Conversation.model_validate_json(raw), messages

    async def load_many(self, conversation_ids: list[str]) -> list[Conversation | None]:
        raws = await self.redis.mget([self.keys.conversation(c) for c in conversation_ids])
        return parse_records(raws, Conversation)

    async def list(
        self, flt: ConversationFilter, *, limit: int, cursor: str | None = None
    ) -> Page[Conversation]:
        after = decode_cursor(cursor, ids.CONVERSATION) if cursor else None
        bounds = lex_range(
            ids.CONVERSATION, after_cursor=after, since_ms=flt.since_ms, until_ms=flt.until_ms
        )
        if flt.user_id is not None:
            index = self.keys.conversations_by("user", flt.user_id)
        elif flt.agent_id is not None:
            index = self.keys.conversations_by("agent", flt.agent_id)
        elif flt.status is not None:
            index = self.keys.conversations_by("status", flt.status)
        else:
            index = self.keys.conversations
        return await self.scan_index(index, bounds, limit, self.load_many, flt.accepts)

    async def active(self, batch: int = 500) -> Sequence[Conversation]:
        """Every conversation the status index lists as active, its records read in batches."""
        index = self.keys.conversations_by("status", "active")
        found = cast(list[str], await self.redis.zrange(index, 0, -1))
        active: list[Conversation] = []
        for start in range(0, len(found), batch):
            loaded = await self.load_many(found[start : start + batch])
            active.extend(c for c in loaded if c is not None and c.status == "active")
        return active

    async def resolve_token(self, token: str) -> str | None:
        """The conversation a cvt_ token opens, or None when unknown or expired."""
        if not token.startswith("cvt_"):
            return None
        found = await self.redis.get(self.keys.conversation_token(ids.digest(token)))
        return cast(str | None, found)

    async def append_message(
        self,
        conversation_id: str,
        message_type: MessageType,
        content: str,
        *,
        interrupted: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Message:
        message = new_message(message_type, content, interrupted=interrupted, meta=meta)
        return await self.append(conversation_id, message)

    async def append(self, conversation_id: str, message: Message) -> Message:
        """Adds a message made earlier (its id and time are when it was said), once: applying
        it again, as a writer does when Redis went away before the reply came, changes nothing."""
        key = self.keys.conversation(conversation_id)
        messages_key = self.keys.messages(conversation_id)
        # Compact JSON escapes every quote inside a string, so this text can only be the id
        # field itself: found without parsing the last messages on every append.
        stored_id = f'"id":"{message.id}"'

        async def body(pipe: Pipeline) -> Message:
            conversation = await self._load_for_write(pipe, conversation_id)
            if conversation.status != "active":
                raise Conflict(
                    "conversation_not_active",
                    f"conversation {conversation_id} is {conversation.status}",
                )
            recent = cast(list[str], await pipe.lrange(messages_key, -RECENT_CHECKED, -1))
            if any(stored_id in m for m in recent):
                return message
            begin_writes(pipe)
            pipe.rpush(messages_key, message.model_dump_json())
            self.queue_event(
                pipe,
                "message.received",
                events.MessageReceivedData(**events.ref(conversation), message=message),
            )
            return message

        return await self.transact([key], body)

    async def _load_for_write(self, pipe: Pipeline, conversation_id: str) -> Conversation:
        key = self.keys.conversation(conversation_id)
        return await read_record(pipe, key, Conversation, "conversation", conversation_id)

    async def end(
        self,
        conversation_id: str,
        *,
        reason: str,
        status: ConversationStatus | None = None,
        feedback: Feedback | None = None,
        metrics: Metrics | Callable[[Conversation], Metrics] | None = None,
    ) -> EndResult:
        """End an active conversation once. Ending it again changes nothing and emits nothing,
        except that feedback given later is kept when none was stored yet. `metrics` may be
        computed from the conversation as stored (which saves its holder a read before)."""
        key = self.keys.conversation(conversation_id)
        target = status or lifecycle.status_for_end_reason(reason)

        async def body(pipe: Pipeline) -> EndResult:
            current = await self._load_for_write(pipe, conversation_id)
            if not lifecycle.can_transition(current.status, target):
                if feedback is not None and current.feedback is None:
                    current = current.model_copy(update={"feedback": feedback})
                    begin_writes(pipe)
                    pipe.set(key, current.model_dump_json())
                return EndResult(current, changed=False)
            final_metrics = (
                metrics(current)
                if callable(metrics)
                else metrics or await self._final_metrics(pipe, current, target, reason, feedback)
            )
            ended = current.model_copy(
                update={
                    "status": target,
                    "ended_at": clock.iso(clock.now_ms()),
                    "end_reason": reason,
                    "feedback": feedback or current.feedback,
                    "metrics": final_metrics,
                }
            )
            begin_writes(pipe)
            pipe.set(key, ended.model_dump_json())
            if current.node is not None:
                # The process holding the conversation's session hears of the end from here.
                pipe.xadd(
                    self.keys.node_commands(current.node),
                    {"command": "end", "conversation_id": conversation_id},
                    maxlen=NODE_COMMANDS_KEPT,
                    approximate=True,
                )
            pipe.zrem(self.keys.conversations_by("status", current.status), conversation_id)
            pipe.zadd(self.keys.conversations_by("status", target), {conversation_id: 0})
            self.queue_event(
                pipe,
                "conversation.ended",
                events.ConversationEndedData(
                    **events.ref(ended),
                    status=ended.status,
                    end_reason=ended.end_reason,
                    ended_at=ended.ended_at,
                    duration=lifecycle.duration_seconds(ended),
                    metrics=ended.metrics,
                    feedback=ended.feedback,
                ),
            )
            return EndResult(ended, changed=True)

        result: EndResult = await self.transact([key], body)
        if result.changed:
            ended = result.conversation
            duration = lifecycle.duration_seconds(ended)
            log.info(
                "conversation %s ended: %s, %s after %.1f s",
                conversation_id,
                ended.status,
                reason,
                duration,
                extra={
                    "conversation_id": conversation_id,
                    "agent_id": ended.agent_id,
                    "status": ended.status,
                    "reason": reason,
                    "duration_s": duration,
                },
            )
        return result

    async def _final_metrics(
        self,
        pipe: Pipeline,
        current: Conversation,
        status: ConversationStatus,
        reason: str,
        feedback: Feedback | None = None,
    ) -> Metrics:
        """Metrics for a conversation ended without a session's own figures (through the API):
        from its stored messages, keeping the latencies the session recorded."""
        raw = await pipe.lrange(self.keys.messages(current.conversation_id), 0, -1)
        messages = [Message.model_validate_json(m) for m in raw]
        computed = conversation_metrics.compute(
            status, reason, messages, feedback or current.feedback
        )
        return computed.model_copy(update={"latency_ms": current.metrics.latency_ms})

    async def claim(self, conversation_id: str, node: str) -> Conversation:
        """Record that `node` now holds the active conversation's session."""
        key = self.keys.conversation(conversation_id)

        async def body(pipe: Pipeline) -> Conversation:
            current = await self._load_for_write(pipe, conversation_id)
            if current.status != "active":
                raise Conflict(
                    "conversation_not_active",
                    f"conversation {conversation_id} is {current.status}",
                )
            claimed = current.model_copy(update={"node": node})
            begin_writes(pipe)
            pipe.set(key, claimed.model_dump_json())
            return claimed

        return await self.transact([key], body)

    async def update_metrics(self, conversation_id: str, metrics: Metrics) -> Conversation:
        key = self.keys.conversation(conversation_id)

        async def body(pipe: Pipeline) -> Conversation:
            current = await self._load_for_write(pipe, conversation_id)
            updated = current.model_copy(update={"metrics": metrics})
            begin_writes(pipe)
            pipe.set(key, updated.model_dump_json())
            return updated

        return await self.transact([key], body)

    async def emit(self, conversation_id: str, event_type: str, data: BaseModel) -> events.Event:
        """Record an event about a conversation that changes no state of it (handoff attempts,
        errors)."""
        await self.get(conversation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            event = self.queue_event(pipe, event_type, data)
            await pipe.execute()
        return event
