"""The delivery worker: turns the events stream into signed POSTs, retried until they succeed,
die, or their webhook goes away. Any number of workers may share one Redis.

It runs three loops as tasks. Fan-out reads the stream through the consumer group, takes over
entries whose consumer went quiet (XAUTOCLAIM), and creates one job per subscribed webhook
atomically with the XACK. Delivery leases due jobs, POSTs them with bounded concurrency and
settles each outcome. Housekeeping refreshes the gauges and trims the stream. Stopping is
cancelling the tasks: every change in Redis is one atomic script, and what was in flight is
taken again when its lease (jobs) or idle time (stream entries) runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from redis.exceptions import RedisError

from api.delivery import attempt, schedule
from api.delivery.attempt import Failure
from api.delivery.records import CANCELLED, AttemptStatus, attempt_record
from api.metrics import ApiMetrics
from api.schemas.webhooks import DeliveryAttempt
from bridge import clock
from bridge.models import Webhook
from bridge.settings import Settings
from bridge.store import NotFound, Store
from bridge.store.deliveries import Job, StreamEvent

log = logging.getLogger(__name__)


def stop_if_cancelled() -> None:
    """Honour a cancellation that was swallowed. redis-py sends every command through
    asyncio.wait_for, which on Python 3.11 returns normally when the task is cancelled just as
    the write completes (bpo-42130); a loop that only awaited would then never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True)
class Tuning:
    reclaim_idle: float = 30.0
    """Seconds a stream entry may sit unacknowledged with a consumer before another takes it."""
    lease: float | None = None
    """Seconds a claimed job stays hidden from other workers; must outlast an attempt
    (default: webhook_timeout + 30)."""
    poll: float = 1.0
    """Longest pause between looks at the due set (jobs other processes fanned out)."""
    block: float = 1.0
    """XREADGROUP BLOCK, seconds; below the Redis client's socket timeout."""
    batch: int = 100
    linger: float = 0.02
    """Seconds the fan-out waits after a read that did not fill a batch, before the next: one
    read costs three round trips however few events it carries, and at a few hundred calls a
    second reads straight after one another carry one or two. A webhook is delayed at most
    this much."""
    gauges_every: float = 5.0
    trim_every: float = 60.0
    retention: float = 3600.0
    """Seconds of already fanned-out events kept in the stream, for inspection."""
    backoff: float = 1.0
    """Pause after a loop failed (Redis unreachable), before it tries again."""


class DeliveryWorker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: ApiMetrics,
        tuning: Tuning | None = None,
        uniform: schedule.Uniform = random.uniform,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.tuning = tuning or Tuning()
        self.uniform = uniform
        self.lease = (
            self.tuning.lease if self.tuning.lease is not None else settings.webhook_timeout + 30
        )
        if self.lease <= settings.webhook_timeout:
            raise ValueError("the lease must outlast an attempt's timeout")
        self._wake = asyncio.Event()

    def start(self) -> list[asyncio.Task[None]]:
        node = self.settings.node_id
        return [
            asyncio.create_task(self._fan_out_loop(), name=f"webhooks-fan-out-{node}"),
            asyncio.create_task(self._deliver_loop(), name=f"webhooks-deliver-{node}"),
            asyncio.create_task(self._housekeeping_loop(), name=f"webhooks-housekeeping-{node}"),
        ]

    async def _recover(self, which: str, exc: Exception) -> None:
        if isinstance(exc, RedisError | OSError):
            log.warning("webhook %s: redis unavailable (%s); retrying", which, exc)
        else:
            log.error("webhook %s failed; retrying", which, exc_info=exc)
        await asyncio.sleep(self.tuning.backoff)

    # Fan-out

    async def _fan_out_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        while True:
            stop_if_cancelled()
            try:
                if loop.time() >= next_reclaim:
                    await self._reclaim()
                    next_reclaim = loop.time() + self.tuning.reclaim_idle / 2
                events = await self.store.deliveries.read(
                    self.settings.node_id,
                    count=self.tuning.batch,
                    block_ms=int(self.tuning.block * 1000),
                )
                await self._fan_out(events)
                if 0 < len(events) < self.tuning.batch:
                    await asyncio.sleep(self.tuning.linger)
            except Exception as exc:
                await self._recover("fan-out", exc)

    async def _reclaim(self) -> None:
        start = "0-0"
        while True:
            start, events = await self.store.deliveries.reclaim(
                self.settings.node_id,
                min_idle_ms=int(self.tuning.reclaim_idle * 1000),
                start=start,
                count=self.tuning.batch,
            )
            await self._fan_out(events)
            if start == "0-0":
                return

    async def _fan_out(self, events: Sequence[StreamEvent]) -> None:
        if not events:
            return
        active = [w for w in await self.store.webhooks.all() if w.status == "active"]
        plans = [(e, [w.webhook_id for w in active if e.event in w.events]) for e in events]
        await self.store.deliveries.fan_out(plans, due_ms=clock.now_ms())
        self._wake.set()

    # Delivery

    async def _deliver_loop(self) -> None:
        limit = self.settings.webhook_concurrency
        connector = aiohttp.TCPConnector(limit=limit)
        async with aiohttp.ClientSession(connector=connector) as session:
            running: set[asyncio.Task[None]] = set()
            try:
                while True:
                    stop_if_cancelled()
                    free = limit - len(running)
                    if free <= 0:
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    self._wake.clear()
                    try:
                        now_ms = clock.now_ms()
                        claim = await self.store.deliveries.claim(
                            now_ms=now_ms,
                            lease_until_ms=now_ms + int(self.lease * 1000),
                            limit=free,
                            token=secrets.token_hex(8),
                        )
                    except Exception as exc:
                        await self._recover("delivery", exc)
                        continue
                    for job in claim.jobs:
                        task = asyncio.create_task(self._deliver(session, job))
                        running.add(task)
                        task.add_done_callback(running.discard)
                    if len(claim.jobs) < free:
                        await self._idle(claim.next_due_ms)
            finally:
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)

    async def _idle(self, next_due_ms: int | None) -> None:
        """Until the next job is due, a local fan-out created jobs, or the poll interval ends."""
        wait = self.tuning.poll
        if next_due_ms is not None:
            wait = min(wait, max(0.0, (next_due_ms - clock.now_ms()) / 1000))
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
        # event is set, and the worker would then never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

    async def _deliver(self, session: aiohttp.ClientSession, job: Job) -> None:
        try:
            await self._attempt(session, job)
        except Exception as exc:
            # The job keeps its lease, so it is attempted again when the lease runs out.
            if isinstance(exc, RedisError | OSError):
                log.warning("delivery %s not settled: redis unavailable (%s)", job.delivery_id, exc)
            else:
                log.error("delivery %s failed", job.delivery_id, exc_info=exc)

    async def _webhook(self, webhook_id: str) -> Webhook | None:
        try:
            return await self.store.webhooks.get(webhook_id)
        except NotFound:
            return None

    async def _attempt(self, session: aiohttp.ClientSession, job: Job) -> None:
        number = job.attempts + 1
        webhook = await self._webhook(job.webhook_id)
        stop_if_cancelled()
        if webhook is None or webhook.status != "active":
            record = self._record(job, "cancelled", clock.now_ms(), failure=CANCELLED)
            if await self.store.deliveries.settle(job, "delete", record.model_dump_json()):
                self.metrics.deliveries.labels("cancelled").inc()
            return
        result = await attempt.send(
            session,
            url=webhook.url,
            secret=webhook.secret,
            event_id=job.event_id,
            event_type=job.event,
            body=job.body,
            timeout=self.settings.webhook_timeout,
        )
        decision = schedule.decide(
            status=result.status,
            retry_after=result.retry_after,
            attempt=number,
            schedule=self.settings.webhook_retry_schedule,
            now=time.time(),
            uniform=self.uniform,
        )
        deliveries = self.store.deliveries
        now_ms = clock.now_ms()
        if decision.next == "succeeded":
            record = self._record(job, "succeeded", now_ms, result=result)
            if await deliveries.settle(job, "delete", record.model_dump_json()):
                self.metrics.deliveries.labels("succeeded").inc()
                self.metrics.delivery_lag.observe(max(0, now_ms - job.created_ms) / 1000)
        elif decision.next == "retry":
            assert decision.delay is not None
            due_ms = now_ms + round(decision.delay * 1000)
            record = self._record(job, "failed", now_ms, result=result, next_retry_ms=due_ms)
            if await deliveries.settle(job, "retry", record.model_dump_json(), due_ms=due_ms):
                self.metrics.deliveries.labels("failed").inc()
                self._log_failure(job, number, result, f"next attempt in {decision.delay:.0f} s")
        elif decision.next == "dead":
            record = self._record(job, "dead", now_ms, result=result)
            if await deliveries.settle(
                job, "dead", record.model_dump_json(), dead_letter=self._dead_letter(job, record)
            ):
                self.metrics.deliveries.labels("dead").inc()
                self._log_failure(job, number, result, "no attempts left: dead letter kept")
        else:
            await self._disable(job, result, now_ms)

    async def _disable(self, job: Job, result: attempt.AttemptResult, now_ms: int) -> None:
        """The receiver said 410 Gone: stop sending to it until its owner re-enables it."""
        reason = f"receiver answered 410 Gone at {clock.iso(now_ms)}"
        with contextlib.suppress(NotFound):
            await self.store.webhooks.update(
                job.webhook_id, {"status": "disabled", "disabled_reason": reason}
            )
        failure = Failure("endpoint_gone", "receiver answered HTTP 410 Gone; webhook disabled")
        record = self._record(job, "failed", now_ms, result=result, failure=failure)
        if await self.store.deliveries.settle(job, "delete", record.model_dump_json()):
            self.metrics.deliveries.labels("disabled").inc()
            self._log_failure(job, job.attempts + 1, result, f"webhook {job.webhook_id} disabled")
        cancelled = await self.store.deliveries.cancel_for_webhook(
            job.webhook_id,
            lambda other: self._record(
                other, "cancelled", clock.now_ms(), failure=CANCELLED
            ).model_dump_json(),
        )
        self.metrics.deliveries.labels("cancelled").inc(cancelled)

    @staticmethod
    def _log_failure(job: Job, number: int, result: attempt.AttemptResult, then: str) -> None:
        """One line per failed attempt. The URL is not in it (a query string may hold a
        credential); the webhook id leads to it."""
        failure = result.failure
        why = "failed" if failure is None else f"{failure.code}: {failure.message}"
        log.warning(
            "webhook delivery %s of %s to %s, attempt %d: %s; %s",
            job.delivery_id,
            job.event,
            job.webhook_id,
            number,
            why,
            then,
            extra={
                "delivery_id": job.delivery_id,
                "webhook_id": job.webhook_id,
                "event_type": job.event,
                "event_id": job.event_id,
                "attempt": number,
                "status": result.status,
            },
        )

    def _record(
        self,
        job: Job,
        status: AttemptStatus,
        at_ms: int,
        *,
        result: attempt.AttemptResult | None = None,
        failure: Failure | None = None,
        next_retry_ms: int | None = None,
    ) -> DeliveryAttempt:
        return attempt_record(
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            event=job.event,
            attempt=job.attempts + 1,
            status=status,
            at_ms=at_ms,
            result=result,
            failure=failure,
            next_retry_ms=next_retry_ms,
        )

    @staticmethod
    def _dead_letter(job: Job, record: DeliveryAttempt) -> dict[str, str]:
        error = record.error
        return {
            "delivery_id": job.delivery_id,
            "webhook_id": job.webhook_id,
            "event_id": job.event_id,
            "event": job.event,
            "body": job.body,
            "attempts": str(record.attempt),
            "error_code": "" if error is None else error.code,
            "error_message": "" if error is None else error.message,
            "failed_at": record.created_at,
        }

    # Housekeeping

    async def _housekeeping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_trim = 0.0
        while True:
            stop_if_cancelled()
            try:
                depth, pending = await self.store.deliveries.backlog()
                self.metrics.queue_depth.set(depth)
                self.metrics.events_pending.set(pending)
                if loop.time() >= next_trim:
                    next_trim = loop.time() + self.tuning.trim_every
                    await self.store.deliveries.trim_events(int(self.tuning.retention * 1000))
            except Exception as exc:
                await self._recover("housekeeping", exc)
                continue
            await asyncio.sleep(self.tuning.gauges_every)
