"""Webhook delivery jobs: fan-out from the events stream, the due set that schedules attempts,
the per-webhook attempt log and the dead-letter stream.

A job exists at most once per (event, webhook): its id is derived from both, and the script that
creates the jobs of a stream entry acknowledges that entry in the same atomic step, skipping an
entry that another consumer has acknowledged meanwhile. Workers take due jobs by leasing them:
the claim pushes the job's due time past the attempt's timeout, so a worker that dies mid-attempt
leaves the job to be taken again when the lease ends. Settling an attempt is checked against the
lease, so a worker whose lease ran out cannot undo the work of the one that took the job over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bridge import ids
from bridge.store.base import Page, Part
from bridge.store.errors import InvalidCursor
from bridge.store.keys import EVENTS_GROUP, Keys

LOG_MAXLEN = 1000
# Dead letters are kept for operators to inspect; the cap only bounds memory if a receiver is
# gone for good and nobody disables its webhook.
DEAD_LETTER_MAXLEN = 100_000

Settlement = Literal["delete", "retry", "dead"]

_FAN_OUT = """
-- KEYS: events, due, then for each job: its hash, its webhook's job set
-- ARGV: group, entry id, due ms, event id, event type, body, created ms,
--       then for each job: delivery id, webhook id
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then
  return 0
end
for i = 3, #KEYS, 2 do
  local id, webhook = ARGV[i + 5], ARGV[i + 6]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'delivery_id', id, 'webhook_id', webhook, 'event_id', ARGV[4],
      'event', ARGV[5], 'body', ARGV[6], 'created_ms', ARGV[7], 'attempts', 0, 'lease', '')
    redis.call('ZADD', KEYS[2], ARGV[3], id)
    redis.call('SADD', KEYS[i + 1], id)
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

_CLAIM = """
-- KEYS: due; ARGV: now ms, lease end ms, how many, lease token, job key prefix
local taken = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  local key = ARGV[5] .. id
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'lease', ARGV[4])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
    taken[#taken + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {taken, head[2] or ''}
"""

_SETTLE = """
-- KEYS: job, due, webhook's job set, webhook log, webhook record, dead letter
-- ARGV: delivery id, lease token ('' = whoever holds it), how, attempt record ('' = none),
--       due ms, attempts made, log cap, dead-letter cap, then the dead-letter fields
local lease = redis.call('HGET', KEYS[1], 'lease')
if not lease or (ARGV[2] ~= '' and lease ~= ARGV[2]) then
  return 0
end
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[6], 'lease', '')
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  if ARGV[3] == 'dead' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*', unpack(ARGV, 9))
  end
end
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'record', ARGV[4])
end
return 1
"""

_LOG = """
-- KEYS: webhook record, webhook log; ARGV: attempt record, log cap
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'record', ARGV[1])
return 1
"""

_CURSOR_TAG = "d1:"
_ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def delivery_id(event_id: str, webhook_id: str) -> str:
    """The same pair always gives the same job, so fanning an event out twice creates nothing."""
    digest = hashlib.sha256(f"{event_id}\n{webhook_id}".encode()).hexdigest()
    return f"{ids.DELIVERY}_{digest[:32]}"


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def encode_log_cursor(entry_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_TAG + entry_id).encode()).decode().rstrip("=")


def decode_log_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursor() from None
    entry_id = text.removeprefix(_CURSOR_TAG)
    if not text.startswith(_CURSOR_TAG) or not _ENTRY_ID.match(entry_id):
        raise InvalidCursor()
    return entry_id


def _is_error(exc: ResponseError, code: str) -> bool:
    return str(exc).startswith(code)


@dataclass(frozen=True)
class StreamEvent:
    entry_id: str
    event_id: str
    event: str
    body: str

    @classmethod
    def from_entry(cls, entry_id: str, fields: Mapping[str, str]) -> StreamEvent:
        return cls(entry_id, fields.get("id", ""), fields.get("type", ""), fields.get("body", ""))

    @property
    def created_ms(self) -> int:
        # A stream entry id begins with the millisecond Redis appended it: when the event was
        # written, in the same transaction as the change it announces.
        return _entry_key(self.entry_id)[0]


@dataclass(frozen=True)
class Job:
    delivery_id: str
    webhook_id: str
    event_id: str
    event: str
    body: str
    created_ms: int
    attempts: int
    """Attempts made so far; the one under way is number attempts + 1."""
    lease: str
    """Token of the claim that holds the job ('' when none does)."""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Job:
        return cls(
            delivery_id=fields["delivery_id"],
            webhook_id=fields["webhook_id"],
            event_id=fields["event_id"],
            event=fields["event"],
            body=fields["body"],
            created_ms=int(fields["created_ms"]),
            attempts=int(fields["attempts"]),
            lease=fields["lease"],
        )


@dataclass(frozen=True)
class Claim:
    jobs: list[Job]
    next_due_ms: int | None


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


_Entry = tuple[str, dict[str, str]]


def _stream_events(
    entries: Sequence[tuple[str | None, dict[str, str] | None]],
) -> list[StreamEvent]:
    # Redis 6.2's XAUTOCLAIM answers nil for a pending entry deleted from the stream; there is
    # nothing to deliver for it.
    return [
        StreamEvent.from_entry(entry_id, fields or {})
        for entry_id, fields in entries
        if entry_id is not None
    ]


class Deliveries(Part):
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        super().__init__(redis, keys)
        self._fan_out = self.redis.register_script(_FAN_OUT)
        self._claim = self.redis.register_script(_CLAIM)
        self._settle = self.redis.register_script(_SETTLE)
        self._log = self.redis.register_script(_LOG)

    async def ensure_group(self) -> None:
        # From the stream's start: events written before any worker ran are delivered too.
        try:
            await self.redis.xgroup_create(self.keys.events, EVENTS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if not _is_error(exc, "BUSYGROUP"):
                raise

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[StreamEvent]:
        """Entries no consumer of the group has seen yet, now pending for `consumer`."""
        try:
            reply = cast(
                list[tuple[str, list[_Entry]]] | None,
                await self.redis.xreadgroup(
                    EVENTS_GROUP, consumer, {self.keys.events: ">"}, count=count, block=block_ms
                ),
            )
        except ResponseError as exc:
            if not _is_error(exc, "NOGROUP"):
                raise
            await self.ensure_group()
            return []
        return [event for _stream, entries in reply or [] for event in _stream_events(entries)]

    async def reclaim(
        self, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> tuple[str, list[StreamEvent]]:
        """Take over entries pending longer than `min_idle_ms` (their consumer died or is stuck);
        returns where to continue (0-0 when the whole pending list was scanned)."""
        try:
            reply = await self.redis.xautoclaim(
                self.keys.events, EVENTS_GROUP, consumer, min_idle_ms, start_id=start, count=count
            )
        except ResponseError as exc:
            if not _is_error(exc, "NOGROUP"):
                raise
            await self.ensure_group()
            return "0-0", []
        return str(reply[0]), _stream_events(reply[1])

    async def fan_out(
        self, plans: Sequence[tuple[StreamEvent, Sequence[str]]], due_ms: int
    ) -> None:
        """Create each entry's jobs (one per webhook id given) and acknowledge the entry, each
        entry in one atomic step."""
        if not plans:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event, webhook_ids in plans:
                keys = [self.keys.events, self.keys.deliveries_due]
                args: list[str | int] = [
                    EVENTS_GROUP,
                    event.entry_id,
                    due_ms,
                    event.event_id,
                    event.event,
                    event.body,
                    event.created_ms,
                ]
                for webhook_id in webhook_ids:
                    job_id = delivery_id(event.event_id, webhook_id)
                    keys += [self.keys.delivery(job_id), self.keys.webhook_deliveries(webhook_id)]
                    args += [job_id, webhook_id]
                await self._fan_out(keys=keys, args=args, client=pipe)
            await pipe.execute()

    async def claim(self, *, now_ms: int, lease_until_ms: int, limit: int, token: str) -> Claim:
        """Lease up to `limit` jobs due by `now_ms` until `lease_until_ms`."""
        taken, head = await self._claim(
            keys=[self.keys.deliveries_due],
            args=[now_ms, lease_until_ms, limit, token, self.keys.delivery_prefix],
        )
        jobs = [Job.from_fields(_pairs(flat)) for flat in taken]
        return Claim(jobs, int(float(head)) if head else None)

    async def settle(
        self,
        job: Job,
        how: Settlement,
        record: str,
        *,
        due_ms: int = 0,
        dead_letter: Mapping[str, str] | None = None,
        leased: bool = True,
    ) -> bool:
        """Finish an attempt: delete the job, schedule its retry at `due_ms`, or move it to the
        dead letters; log `record` when not empty. False when the job is gone or, if `leased`,
        another worker holds it now: then nothing changed."""
        fields = [item for pair in (dead_letter or {}).items() for item in pair]
        done = await self._settle(
            keys=[
                self.keys.delivery(job.delivery_id),
                self.keys.deliveries_due,
                self.keys.webhook_deliveries(job.webhook_id),
                self.keys.webhook_log(job.webhook_id),
                self.keys.webhook(job.webhook_id),
                self.keys.dead_letter,
            ],
            args=[
                job.delivery_id,
                job.lease if leased else "",
                how,
                record,
                due_ms,
                job.attempts + 1,
                LOG_MAXLEN,
                DEAD_LETTER_MAXLEN,
                *fields,
            ],
        )
        return bool(done)

    async def cancel_for_webhook(self, webhook_id: str, record: Callable[[Job], str]) -> int:
        """Delete every pending job of a webhook, logging `record(job)` for each; jobs in flight
        are deleted too, and their workers' results are then discarded."""
        job_ids = cast(
            set[str], await self.redis.smembers(self.keys.webhook_deliveries(webhook_id))
        )
        if not job_ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.delivery(job_id))
            found: list[dict[str, str]] = await pipe.execute()
        cancelled = 0
        for fields in found:
            if fields:
                job = Job.from_fields(fields)
                cancelled += await self.settle(job, "delete", record(job), leased=False)
        return cancelled

    async def log_attempt(self, webhook_id: str, record: str) -> bool:
        """Append to a webhook's attempt log, unless the webhook is gone."""
        done = await self._log(
            keys=[self.keys.webhook(webhook_id), self.keys.webhook_log(webhook_id)],
            args=[record, LOG_MAXLEN],
        )
        return bool(done)

    async def attempts(self, webhook_id: str, *, limit: int, cursor: str | None) -> Page[str]:
        """Newest-first attempt records (JSON) of a webhook."""
        high = "+" if cursor is None else "(" + decode_log_cursor(cursor)
        entries = cast(
            list[_Entry],
            await self.redis.xrevrange(
                self.keys.webhook_log(webhook_id), max=high, min="-", count=limit + 1
            ),
        )
        records = [fields["record"] for _entry_id, fields in entries[:limit]]
        more = len(entries) > limit
        return Page(records, encode_log_cursor(entries[limit - 1][0]) if more else None)

    async def backlog(self) -> tuple[int, int]:
        """(jobs waiting in the due set, events read but not yet fanned out)."""
        depth = int(await self.redis.zcard(self.keys.deliveries_due))
        try:
            summary = await self.redis.xpending(self.keys.events, EVENTS_GROUP)
        except ResponseError as exc:
            if not _is_error(exc, "NOGROUP"):
                raise
            return depth, 0
        return depth, int(summary["pending"])

    async def trim_events(self, retention_ms: int) -> int:
        """Drop events older than `retention_ms` before the oldest one the group still needs:
        the oldest pending entry, or, when none is pending, the last one it was handed."""
        try:
            groups = await self.redis.xinfo_groups(self.keys.events)
        except ResponseError as exc:
            if "no such key" not in str(exc):
                raise
            return 0
        group = next((g for g in groups if g["name"] == EVENTS_GROUP), None)
        if group is None:
            return 0
        floor = str(group["last-delivered-id"])
        if int(group["pending"]):
            summary = await self.redis.xpending(self.keys.events, EVENTS_GROUP)
            if summary["min"] is not None:
                floor = min(floor, str(summary["min"]), key=_entry_key)
        threshold_ms = _entry_key(floor)[0] - retention_ms
        if threshold_ms <= 0:
            return 0
        return int(
            await self.redis.xtrim(self.keys.events, minid=f"{threshold_ms}-0", approximate=False)
        )
