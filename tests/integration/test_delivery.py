"""The delivery worker against real Redis and a real receiver on loopback: signatures, retries,
Retry-After, 410, dead letters, and at-least-once through worker and Redis restarts."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.delivery.worker import DeliveryWorker, Tuning
from api.metrics import ApiMetrics
from api.schemas.webhooks import DeliveryAttempt
from api.server import start_background
from bridge import clock, ids
from bridge.embedded_redis import EmbeddedRedis
from bridge.models import ConversationSettings, Webhook
from bridge.redis_client import connect
from bridge.settings import Settings
from bridge.store import Store
from bridge.store.deliveries import StreamEvent
from bridge.store.keys import EVENTS_GROUP
from tests.webhook_receiver import Received, Receiver, eventually

Client = TestClient[Any, Any]

FAST: dict[str, Any] = {"webhook_retry_schedule": (0.2, 0.2, 0.2), "webhook_timeout": 0.5}
TUNING = Tuning(reclaim_idle=0.5, lease=1.0, poll=0.05, block=0.1, gauges_every=0.05, backoff=0.1)
EVENT = "conversation.started"


@dataclass
class Started:
    metrics: ApiMetrics
    tasks: list[asyncio.Task[None]]

    def count(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "voicebridge_webhook_deliveries_total", {"outcome": outcome}
        )
        return value or 0.0


StartWorker = Callable[..., Started]


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Stop a worker the way the server does; it must end promptly."""
    for task in tasks:
        task.cancel()
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


@pytest.fixture
async def workers(settings: Settings, store: Store) -> AsyncIterator[StartWorker]:
    running: list[asyncio.Task[None]] = []

    def start(
        node: str = "w1", *, on: Store | None = None, tuning: Tuning = TUNING, **changes: Any
    ) -> Started:
        metrics = ApiMetrics()
        worker_settings = settings.model_copy(update=FAST | {"node_id": node} | changes)
        tasks = DeliveryWorker(worker_settings, on or store, metrics, tuning).start()
        running.extend(tasks)
        return Started(metrics, tasks)

    yield start
    await stop(running)


async def emit(store: Store) -> str:
    """Start a conversation, which writes a conversation.started event; returns its id."""
    conversation, _ = await store.conversations.create(
        agent_id=ids.new_id(ids.AGENT),
        user_id="caller",
        language="en-US",
        initial_context={},
        settings=ConversationSettings(),
    )
    return conversation.conversation_id


async def hook(
    store: Store,
    receiver: Receiver,
    path: str,
    respond: Callable[[Received, int], Awaitable[web.Response]] | None = None,
    events: tuple[str, ...] = (EVENT,),
) -> Webhook:
    webhook = await store.webhooks.create(
        url=receiver.url(path), events=list(events), description=None, secret=None
    )
    if respond is None:
        receiver.expect(path, webhook.secret)
    else:
        receiver.expect(path, webhook.secret, respond)
    return webhook


async def log_of(store: Store, webhook_id: str) -> list[DeliveryAttempt]:
    page = await store.deliveries.attempts(webhook_id, limit=100, cursor=None)
    return [DeliveryAttempt.model_validate_json(record) for record in page.items]


async def queue_empty(store: Store) -> bool:
    return await store.redis.zcard(store.keys.deliveries_due) == 0


def status(code: int, **headers: str) -> Callable[[Received, int], Awaitable[web.Response]]:
    async def respond(_received: Received, _nth: int) -> web.Response:
        return web.Response(status=code, headers=headers)

    return respond


async def test_events_that_arrive_while_the_fan_out_lingers_are_fanned_out_by_one_read(
    store: Store, receiver: Receiver, workers: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hook(store, receiver, "/burst")
    carried: list[int] = []
    read = store.deliveries.read

    async def counted(consumer: str, *, count: int, block_ms: int) -> list[StreamEvent]:
        events = await read(consumer, count=count, block_ms=block_ms)
        if events:
            carried.append(len(events))
        return events

    monkeypatch.setattr(store.deliveries, "read", counted)
    workers(tuning=replace(TUNING, linger=1.0))
    await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/burst")) == 1)
    for _ in range(20):
        await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/burst")) == 21)
    assert carried == [1, 20]


async def test_event_is_delivered_signed_to_its_subscribers_only(
    settings: Settings, store: Store, receiver: Receiver
) -> None:
    subscribed = await hook(store, receiver, "/a")
    await hook(store, receiver, "/b", events=("message.received",))
    metrics = ApiMetrics()
    tasks = await start_background(settings, store, metrics)
    try:
        conversation_id = await emit(store)
        await receiver.wait_for(lambda: len(receiver.at("/a")) == 1)
        [got] = receiver.at("/a")
        assert got.signed_ok and got.standard_ok
        [(_entry, fields)] = await store.redis.xrange(store.keys.events)
        assert got.body == fields["body"].encode()  # the stored bytes, not re-serialized
        assert got.conversation_id == conversation_id
        assert got.headers["X-Webhook-Id"] == got.headers["webhook-id"] == fields["id"]
        assert got.headers["X-Webhook-Event"] == EVENT
        assert abs(int(got.headers["X-Webhook-Timestamp"]) - time.time()) < 5

        async def settled() -> bool:
            return await queue_empty(store) and len(await log_of(store, subscribed.webhook_id)) == 1

        await eventually(settled)
        [attempt] = await log_of(store, subscribed.webhook_id)
        assert (attempt.status, attempt.response_code, attempt.attempt) == ("succeeded", 200, 1)
        assert attempt.event_id == fields["id"] and attempt.error is None
        assert receiver.at("/b") == []
        registry = metrics.registry
        outcome = {"outcome": "succeeded"}
        assert registry.get_sample_value("voicebridge_webhook_deliveries_total", outcome) == 1
        assert registry.get_sample_value("voicebridge_webhook_delivery_lag_seconds_count") == 1
    finally:
        await stop(tasks)


async def test_500_then_200_is_delivered_on_retry_and_both_attempts_are_logged(
    store: Store,
    receiver: Receiver,
    workers: StartWorker,
    app_client: Client,
    auth: dict[str, str],
) -> None:
    async def fail_once(_received: Received, nth: int) -> web.Response:
        return web.Response(status=500 if nth == 1 else 200)

    webhook = await hook(store, receiver, "/flaky", fail_once)
    worker = workers()
    await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/flaky")) == 2)
    first, second = receiver.at("/flaky")
    assert first.event_id == second.event_id
    assert second.signed_ok and second.standard_ok
    assert second.at - first.at >= 0.2 * 0.9

    path = f"/v1/webhooks/{webhook.webhook_id}/deliveries"

    async def both_logged() -> bool:
        page = await (await app_client.get(path, headers=auth)).json()
        return len(page["data"]) == 2

    await eventually(both_logged)
    newest, oldest = (await (await app_client.get(path, headers=auth)).json())["data"]
    assert (newest["status"], newest["attempt"], newest["response_code"]) == ("succeeded", 2, 200)
    assert (oldest["status"], oldest["attempt"], oldest["response_code"]) == ("failed", 1, 500)
    error = oldest["error"]
    assert (error["code"], error["type"], error["retry_count"]) == (
        "http_error",
        "webhook_error",
        0,
    )
    assert error["next_retry"].endswith("Z")
    retry_ms = clock.parse_iso(error["next_retry"]) - clock.parse_iso(oldest["created_at"])
    assert 180 <= retry_ms <= 220
    assert (worker.count("failed"), worker.count("succeeded")) == (1, 1)


async def test_a_receiver_that_times_out_is_retried(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    async def slow_once(_received: Received, nth: int) -> web.Response:
        if nth == 1:
            await asyncio.sleep(1.0)
        return web.Response(status=200)

    webhook = await hook(store, receiver, "/slow", slow_once)
    workers()
    await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/slow")) == 2)

    async def done() -> bool:
        return [a.status for a in await log_of(store, webhook.webhook_id)] == [
            "succeeded",
            "failed",
        ]

    await eventually(done)
    failed = (await log_of(store, webhook.webhook_id))[1]
    assert failed.response_code is None
    assert failed.error is not None and failed.error.code == "timeout"
    assert failed.duration_ms >= 450


async def test_retry_after_is_honoured(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    async def busy_once(_received: Received, nth: int) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "1"} if nth == 1 else {})

    await hook(store, receiver, "/busy", busy_once)
    workers()
    await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/busy")) == 2)
    first, second = receiver.at("/busy")
    assert second.at - first.at >= 0.95  # the schedule alone would retry after ~0.2 s


async def test_410_disables_the_webhook_and_cancels_its_pending_jobs(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    conversation_gone: list[str] = []

    async def respond(received: Received, _nth: int) -> web.Response:
        if received.conversation_id in conversation_gone:
            return web.Response(status=410)
        return web.Response(status=503, headers={"Retry-After": "3600"})

    webhook = await hook(store, receiver, "/gone", respond)
    await hook(store, receiver, "/control")
    worker = workers()

    parked = await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/gone")) == 1)

    async def parked_for_an_hour() -> bool:
        attempts = await log_of(store, webhook.webhook_id)
        depth = worker.metrics.registry.get_sample_value("voicebridge_webhook_queue_depth")
        return len(attempts) == 1 and depth == 1

    await eventually(parked_for_an_hour)
    [failed] = await log_of(store, webhook.webhook_id)
    assert failed.error is not None and failed.error.next_retry is not None
    wait_ms = clock.parse_iso(failed.error.next_retry) - clock.parse_iso(failed.created_at)
    assert 3600_000 <= wait_ms <= 3601_000

    conversation_gone.append(await emit(store))
    await receiver.wait_for(lambda: len(receiver.at("/gone")) == 2)

    async def disabled() -> bool:
        return (await store.webhooks.get(webhook.webhook_id)).status == "disabled"

    await eventually(disabled)
    await eventually(lambda: queue_empty(store))
    current = await store.webhooks.get(webhook.webhook_id)
    assert current.disabled_reason and "410" in current.disabled_reason
    attempts = await log_of(store, webhook.webhook_id)
    assert {(a.status, a.response_code) for a in attempts[:2]} == {
        ("failed", 410),
        ("cancelled", None),
    }
    [cancelled] = [a for a in attempts if a.status == "cancelled"]
    assert cancelled.delivery_id == failed.delivery_id
    assert (worker.count("disabled"), worker.count("cancelled")) == (1, 1)

    later = await emit(store)
    await receiver.wait_for(
        lambda: any(r.conversation_id == later for r in receiver.at("/control"))
    )
    assert later not in {r.conversation_id for r in receiver.at("/gone")}
    assert parked not in {r.conversation_id for r in receiver.at("/gone")[1:]}


async def test_jobs_of_a_webhook_disabled_meanwhile_are_cancelled(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    gate = asyncio.Event()

    async def fail_after_gate(_received: Received, _nth: int) -> web.Response:
        await gate.wait()
        return web.Response(status=500)

    webhook = await hook(store, receiver, "/off", fail_after_gate)
    worker = workers()
    await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/off")) == 1)
    await store.webhooks.update(webhook.webhook_id, {"status": "disabled"})
    gate.set()

    async def cancelled() -> bool:
        return [a.status for a in await log_of(store, webhook.webhook_id)] == [
            "cancelled",
            "failed",
        ]

    await eventually(cancelled)
    assert await queue_empty(store)
    assert len(receiver.at("/off")) == 1
    assert worker.count("cancelled") == 1


async def test_deleting_a_webhook_cancels_its_jobs(
    store: Store,
    receiver: Receiver,
    workers: StartWorker,
    app_client: Client,
    auth: dict[str, str],
) -> None:
    webhook = await hook(store, receiver, "/bye", status(503, **{"Retry-After": "3600"}))
    workers()
    await emit(store)

    async def parked() -> bool:
        return len(await log_of(store, webhook.webhook_id)) == 1

    await eventually(parked)
    assert not await queue_empty(store)
    response = await app_client.delete(f"/v1/webhooks/{webhook.webhook_id}", headers=auth)
    assert response.status == 204
    assert await queue_empty(store)
    assert await store.redis.exists(store.keys.webhook_log(webhook.webhook_id)) == 0


async def test_dead_letter_after_the_last_attempt(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    webhook = await hook(store, receiver, "/down", status(500))
    worker = workers()
    conversation_id = await emit(store)

    async def buried() -> bool:
        return await store.redis.xlen(store.keys.dead_letter) == 1

    await eventually(buried)
    [(_entry, dead)] = await store.redis.xrange(store.keys.dead_letter)
    [(_entry, event)] = await store.redis.xrange(store.keys.events)
    assert dead["event_id"] == event["id"] and dead["body"] == event["body"]
    assert dead["webhook_id"] == webhook.webhook_id
    assert dead["attempts"] == "4" and dead["error_code"] == "http_error"
    assert len(receiver.at("/down")) == 4
    assert {r.conversation_id for r in receiver.at("/down")} == {conversation_id}
    assert await queue_empty(store)
    attempts = await log_of(store, webhook.webhook_id)
    assert [(a.attempt, a.status) for a in attempts] == [
        (4, "dead"),
        (3, "failed"),
        (2, "failed"),
        (1, "failed"),
    ]
    assert [a.error.retry_count for a in attempts if a.error] == [3, 2, 1, 0]
    assert attempts[0].error is not None and attempts[0].error.next_retry is None
    assert (worker.count("failed"), worker.count("dead")) == (3, 1)


async def test_worker_killed_mid_delivery_redelivers(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    gate = asyncio.Event()

    async def hold_first(_received: Received, nth: int) -> web.Response:
        if nth == 1:
            await gate.wait()
        return web.Response(status=200)

    webhook = await hook(store, receiver, "/held", hold_first)
    first = workers("w1")
    conversation_id = await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/held")) == 1)
    await stop(first.tasks)
    gate.set()

    workers("w2")
    await receiver.wait_for(lambda: len(receiver.at("/held")) == 2)
    held, again = receiver.at("/held")
    assert again.event_id == held.event_id and again.conversation_id == conversation_id
    assert again.signed_ok and again.standard_ok

    async def delivered() -> bool:
        statuses = [a.status for a in await log_of(store, webhook.webhook_id)]
        return statuses == ["succeeded"] and await queue_empty(store)

    await eventually(delivered)


async def test_workers_stopped_at_any_moment_end_promptly_and_lose_nothing(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    await hook(store, receiver, "/churn")
    quick = replace(TUNING, reclaim_idle=0.2)
    moments = random.Random(7)
    sent: set[str] = set()
    for round_ in range(20):
        started = workers(f"churn{round_}", tuning=quick)
        sent |= {await emit(store) for _ in range(3)}
        await asyncio.sleep(moments.uniform(0, 0.05))  # an arbitrary moment, not a wait
        await stop(started.tasks)
    workers("last", tuning=quick)
    await receiver.wait_for(
        lambda: {r.conversation_id for r in receiver.at("/churn")} == sent, timeout=15
    )


async def test_events_a_dead_consumer_took_are_reclaimed(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    await hook(store, receiver, "/reclaimed")
    conversation_id = await emit(store)
    await store.deliveries.ensure_group()
    taken = await store.redis.xreadgroup(EVENTS_GROUP, "ghost", {store.keys.events: ">"}, count=10)
    assert len(taken[0][1]) == 1
    workers(tuning=replace(TUNING, reclaim_idle=0.3))
    await receiver.wait_for(lambda: len(receiver.at("/reclaimed")) == 1)
    assert receiver.at("/reclaimed")[0].conversation_id == conversation_id

    async def acknowledged() -> bool:
        return (await store.redis.xpending(store.keys.events, EVENTS_GROUP))["pending"] == 0

    await eventually(acknowledged)


async def test_two_workers_deliver_every_event_once(
    store: Store, receiver: Receiver, workers: StartWorker, redis_url: str, prefix: str
) -> None:
    await hook(store, receiver, "/shared")
    other = connect(redis_url)
    # A lease far longer than any attempt: a duplicate could then only come from a bug.
    sure = replace(TUNING, lease=30.0)
    a = workers("w1", tuning=sure, webhook_concurrency=4)
    b = workers("w2", on=Store(other, prefix), tuning=sure, webhook_concurrency=4)
    try:
        sent = {await emit(store) for _ in range(40)}
        await receiver.wait_for(
            lambda: {r.conversation_id for r in receiver.at("/shared")} == sent, timeout=20
        )
        await eventually(lambda: queue_empty(store))
        per_event = Counter(r.event_id for r in receiver.at("/shared"))
        assert len(per_event) == 40 and set(per_event.values()) == {1}
        assert a.count("succeeded") + b.count("succeeded") == 40
    finally:
        await stop(b.tasks)
        await other.aclose()


async def test_worker_trims_events_it_fanned_out(
    store: Store, receiver: Receiver, workers: StartWorker
) -> None:
    await hook(store, receiver, "/trim")
    workers("trimmer", tuning=replace(TUNING, trim_every=0.05, retention=0.0))
    for _ in range(3):
        await emit(store)
    await receiver.wait_for(lambda: len(receiver.at("/trim")) == 3)
    [(last, _fields)] = await store.redis.xrevrange(store.keys.events, count=1)

    async def trimmed() -> bool:
        # With no retention, only entries of the last handed-out entry's millisecond stay.
        entries = await store.redis.xrange(store.keys.events)
        return {entry_id.split("-")[0] for entry_id, _ in entries} == {last.split("-")[0]}

    await eventually(trimmed)


async def test_trim_keeps_every_event_the_group_still_needs(store: Store) -> None:
    events = store.keys.events
    hour = 3600_000
    now = clock.now_ms()
    old = [f"{now - 3 * hour}-0", f"{now - 2 * hour}-0", f"{now - 90 * 60_000}-0"]
    for entry_id in old:
        await store.redis.xadd(events, {"type": EVENT, "id": "evt", "body": "{}"}, id=entry_id)
    await store.deliveries.ensure_group()
    assert await store.deliveries.trim_events(10 * 60_000) == 0  # nothing handed out yet

    await store.redis.xreadgroup(EVENTS_GROUP, "ghost", {events: ">"}, count=1)
    recent = await store.redis.xadd(events, {"type": EVENT, "id": "evt", "body": "{}"})
    [(_stream, rest)] = await store.redis.xreadgroup(EVENTS_GROUP, "w", {events: ">"}, count=10)
    await store.redis.xack(events, EVENTS_GROUP, *[entry_id for entry_id, _ in rest])
    assert await store.deliveries.trim_events(10 * 60_000) == 0  # the oldest is still pending

    await store.redis.xack(events, EVENTS_GROUP, old[0])
    assert await store.deliveries.trim_events(10 * 60_000) == 3
    assert [entry_id for entry_id, _ in await store.redis.xrange(events)] == [recent]


async def test_redis_restart_mid_delivery_loses_no_event(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    await server.start()
    client = connect(server.url)
    store = Store(client, "restart")
    gate = asyncio.Event()

    async def hold(_received: Received, _nth: int) -> web.Response:
        await gate.wait()
        return web.Response(status=200)

    settings = Settings(
        redis_url=server.url,
        redis_prefix="restart",
        data_dir=tmp_path,
        webhook_allow_insecure=True,
        webhook_concurrency=5,
        node_id="r1",
        **FAST,
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        webhook = await hook(store, receiver, "/restart", hold)
        tasks = DeliveryWorker(settings, store, ApiMetrics(), TUNING).start()
        in_flight = {await emit(store) for _ in range(5)}
        await receiver.wait_for(lambda: len(receiver.at("/restart")) == 5)
        queued = {await emit(store) for _ in range(5)}  # no free slot: they wait as jobs

        async def all_queued() -> bool:
            return await client.zcard(store.keys.deliveries_due) == 10

        await eventually(all_queued)
        await server.stop()  # SIGTERM: redis writes the AOF out, then exits
        gate.set()  # the held attempts now finish while Redis is down
        await server.start()
        after = {await emit(store) for _ in range(5)}
        await receiver.wait_for(
            lambda: (
                {r.conversation_id for r in receiver.at("/restart")} == in_flight | queued | after
            ),
            timeout=20,
        )

        async def drained() -> bool:
            pending = await client.xpending(store.keys.events, EVENTS_GROUP)
            return pending["pending"] == 0 and await queue_empty(store)

        await eventually(drained, timeout=10)
        succeeded = {a.event_id for a in await log_of(store, webhook.webhook_id)}
        assert len(succeeded) == 15
    finally:
        await stop(tasks)
        await client.aclose()
        await server.stop()
