"""Load benchmark of the REST API and of webhook delivery, over loopback only.

By default it starts its own `voicebridge serve` on a free port with an embedded Redis in a
temporary directory (or on --redis-url, under a prefix of its own that it deletes afterwards),
then measures, each for a bounded time:

  closed loop, --concurrency clients:  POST /v1/conversations, append a message through the
                                       store (the path call sessions use), GET a conversation,
                                       GET /v1/conversations (list)
  open loop at each --rate per second: GET a conversation; latency counts from the moment each
                                       request was due, so a slow server cannot hide its queue
                                       (no coordinated omission)
  webhook delivery lag:                message.received events written at --event-rate per second
                                       for --event-seconds; lag = receipt by a local receiver
                                       minus the event's created_at

Against a server that is already running: --url and --key (plus --redis-url/--redis-prefix
of its Redis for the store phases; the server needs VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE=1 for
the loopback receiver).

    .venv/bin/python bench/api_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import os
import platform
import re
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import command_line, cpu_model, load_average, say
from bridge import clock
from bridge.redis_client import connect
from bridge.store import Store
from tests.ports import free_port

KEY_LINE = re.compile(r"bootstrap API key.*?(vbk_[0-9a-f]{12}_[A-Za-z0-9_-]+)")
READ_SET = 100
"""Conversations the read phases pick from, each topped up to --messages messages."""


# Measuring


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def ok(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def fail(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def count(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.count,
            "errors": dict(self.errors),
            "per_second": round(self.count / self.elapsed, 1) if self.elapsed else None,
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(self.percentile(100), 2),
        }


Operation = Callable[[int], Awaitable[str | None]]
"""One request; returns None on success or a short error label."""


async def closed_loop(operation: Operation, concurrency: int, seconds: float) -> Sample:
    """`concurrency` clients, each sending its next request when the last one answered."""
    sample = Sample()
    loop = asyncio.get_running_loop()
    counter = itertools.count()
    began = loop.time()
    deadline = began + seconds

    async def client() -> None:
        while loop.time() < deadline:
            started = loop.time()
            error = await guarded(operation, next(counter))
            if error is None:
                sample.ok(loop.time() - started)
            else:
                sample.fail(error)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    sample.elapsed = loop.time() - began
    return sample


async def open_loop(operation: Operation, rate: float, seconds: float) -> Sample:
    """Request i is due at start + i/rate whatever happened to the others; its latency counts
    from then, so time spent queued behind a slow request is measured, not skipped."""
    sample = Sample()
    loop = asyncio.get_running_loop()
    began = loop.time() + 0.05
    total = int(rate * seconds)
    running: set[asyncio.Task[None]] = set()

    async def one(index: int, due: float) -> None:
        error = await guarded(operation, index)
        if error is None:
            sample.ok(loop.time() - due)
        else:
            sample.fail(error)

    for index in range(total):
        due = began + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, due))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    sample.elapsed = loop.time() - began
    return sample


async def guarded(operation: Operation, index: int) -> str | None:
    try:
        return await operation(index)
    except (aiohttp.ClientError, TimeoutError, OSError, aioredis.RedisError) as exc:
        return type(exc).__name__


# The API under test


@dataclass
class Target:
    url: str
    key: str
    redis_url: str | None
    prefix: str


@contextlib.asynccontextmanager
async def own_server(args: argparse.Namespace) -> AsyncIterator[Target]:
    """`voicebridge serve` in a subprocess, stopped (and its data removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="vb-bench-") as tmp:
        port = free_port()
        prefix = "bench" + secrets.token_hex(4) if args.redis_url else "vb"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBRIDGE_")}
        env |= {
            "VOICEBRIDGE_HTTP_HOST": "127.0.0.1",
            "VOICEBRIDGE_HTTP_PORT": str(port),
            "VOICEBRIDGE_DATA_DIR": str(Path(tmp) / "data"),
            "VOICEBRIDGE_REDIS_PREFIX": prefix,
            "VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE": "1",
            "VOICEBRIDGE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        if args.redis_url:
            env["VOICEBRIDGE_REDIS_URL"] = args.redis_url
        voicebridge = Path(sys.executable).with_name("voicebridge")
        command = [str(voicebridge)] if voicebridge.is_file() else [sys.executable, "-m", "api.cli"]
        process = await asyncio.create_subprocess_exec(
            *command,
            "serve",
            env=env,
            cwd=tmp,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            key = await asyncio.wait_for(read_bootstrap_key(process), 30)
            redis_url = args.redis_url or f"unix://{Path(tmp) / 'data' / 'redis.sock'}"
            yield Target(f"http://127.0.0.1:{port}", key, redis_url, prefix)
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
            if args.redis_url:
                await delete_prefix(args.redis_url, prefix)


async def read_bootstrap_key(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    key: str | None = None
    while True:
        line = (await process.stdout.readline()).decode()
        if not line:
            raise SystemExit(f"voicebridge serve exited with {await process.wait()}")
        found = KEY_LINE.search(line)
        if found:
            key = found.group(1)
        if "REST API on" in line:
            if key is None:
                raise SystemExit("voicebridge serve printed no bootstrap key")
            return key


async def delete_prefix(url: str, prefix: str) -> None:
    client = connect(url)
    try:
        batch: list[str] = []
        async for key in client.scan_iter(f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


READY_TIMEOUT_S = 180.0


class Api:
    def __init__(self, session: aiohttp.ClientSession, target: Target) -> None:
        self.session = session
        self.base = target.url
        self.headers = {"Authorization": f"Bearer {target.key}"}

    async def call(
        self, method: str, path: str, json_body: Any = None, expect: int = 200
    ) -> tuple[str | None, Any]:
        async with self.session.request(
            method, self.base + path, json=json_body, headers=self.headers
        ) as response:
            body = await response.read()
            if response.status != expect:
                return f"HTTP {response.status}", body
            return None, json.loads(body) if body else None

    async def ready(self, timeout: float) -> None:
        """Wait for /readyz to say 200: a server that preloads its speech models says 503
        until they are loaded."""
        deadline = time.monotonic() + timeout
        while True:
            error, body = await self.call("GET", "/readyz")
            if error is None:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"GET /readyz: {error} after {timeout:.0f} s: {body[:300]!r}")
            await asyncio.sleep(0.5)

    async def must(self, method: str, path: str, json_body: Any = None, expect: int = 200) -> Any:
        error, body = await self.call(method, path, json_body, expect)
        if error is not None:
            raise SystemExit(f"{method} {path}: {error}: {body[:300]!r}")
        return body


# Webhook receiver


@dataclass
class Receiver:
    secret: str = ""
    lags: dict[str, float] = field(default_factory=dict)
    """message id -> seconds from the event's created_at to its receipt here."""
    bad_signatures: int = 0
    expected: set[str] | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        received = time.time()
        body = await request.read()
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            self.bad_signatures += 1
        event = json.loads(body)
        message_id = event.get("data", {}).get("message", {}).get("id")
        # A delivery can arrive before the writer has even seen its message id: keep every
        # one and pick the measured ones at the end.
        if message_id is not None and message_id not in self.lags:
            # created_at has millisecond resolution; X-Webhook-Timestamp only whole seconds.
            self.lags[message_id] = received - clock.parse_iso(event["created_at"]) / 1000
            self._check()
        return web.Response(text="ok")

    def expect(self, message_ids: set[str]) -> None:
        self.expected = message_ids
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.expected <= self.lags.keys():
            self.complete.set()


@contextlib.asynccontextmanager
async def receiver_site(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


# The phases


async def run(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    results: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    store: Store | None = None
    redis: aioredis.Redis | None = None
    if target.redis_url:
        redis = connect(target.redis_url)
        store = Store(redis, target.prefix)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            api = Api(session, target)
            await api.ready(READY_TIMEOUT_S)
            agent = await api.must("POST", "/v1/agents", {"name": "Bench agent"}, 201)
            conversations: list[str] = []

            async def create(_i: int) -> str | None:
                error, body = await api.call(
                    "POST",
                    "/v1/conversations",
                    {"agent_id": agent["agent_id"], "user_id": f"user_{_i % 500}"},
                    201,
                )
                if error is None:
                    conversations.append(body["conversation_id"])
                return error

            say("warming up")
            await closed_loop(create, args.concurrency, 1.0)
            say(f"create conversation: {args.duration:g} s at concurrency {args.concurrency}")
            results["create_conversation"] = await closed_loop(
                create, args.concurrency, args.duration
            )
            read_set = conversations[:READ_SET]

            if store is not None:
                appender = store

                async def append(i: int) -> str | None:
                    conversation_id = conversations[i % len(conversations)]
                    await appender.conversations.append_message(
                        conversation_id, "user" if i % 2 else "agent", f"bench message {i}"
                    )
                    return None

                say(f"append message (store): {args.duration:g} s")
                results["append_message_store"] = await closed_loop(
                    append, args.concurrency, args.duration
                )
                say(f"topping up {len(read_set)} conversations to {args.messages} messages")
                await top_up(store, read_set, args.messages)
            else:
                say("append message: skipped (no Redis URL for the store)")

            async def get(i: int) -> str | None:
                error, _ = await api.call("GET", f"/v1/conversations/{read_set[i % len(read_set)]}")
                return error

            async def list_page(_i: int) -> str | None:
                error, _ = await api.call("GET", "/v1/conversations?limit=20")
                return error

            say(f"get conversation: {args.duration:g} s")
            results["get_conversation"] = await closed_loop(get, args.concurrency, args.duration)
            say(f"list conversations: {args.duration:g} s")
            results["list_conversations"] = await closed_loop(
                list_page, args.concurrency, args.duration
            )
            for rate in args.rate:
                say(f"get conversation at {rate:g}/s for {args.rate_seconds:g} s (open loop)")
                results[f"get_conversation_at_{rate:g}"] = await open_loop(
                    get, rate, args.rate_seconds
                )
            if args.event_seconds > 0:
                results["webhook_lag"] = await webhook_lag(args, api, store, read_set)
    finally:
        if redis is not None:
            await redis.aclose()
    return results


async def top_up(store: Store, conversation_ids: list[str], messages: int) -> None:
    async def fill(conversation_id: str) -> None:
        _conversation, existing = await store.conversations.get_with_messages(conversation_id)
        for n in range(len(existing), messages):
            await store.conversations.append_message(conversation_id, "user", f"seed {n}")

    await asyncio.gather(*(fill(c) for c in conversation_ids))


async def webhook_lag(
    args: argparse.Namespace, api: Api, store: Store | None, conversation_ids: list[str]
) -> dict[str, Any]:
    if store is None:
        return {"unavailable": "no Redis URL: events are written through the store"}
    receiver = Receiver()
    async with receiver_site(receiver) as hook_url:
        error, body = await api.call(
            "POST",
            "/v1/webhooks",
            {"url": hook_url, "events": ["message.received"], "description": "bench"},
            201,
        )
        if error is not None:
            return {"unavailable": f"POST /v1/webhooks answered {error}: {body[:200]!r}"}
        receiver.secret = body["secret"]
        webhook_id = body["webhook_id"]
        # Let the fan-out drain what earlier phases wrote before measuring.
        await asyncio.sleep(1.0)
        say(
            f"webhook lag: {args.event_rate:g} events/s for {args.event_seconds:g} s, "
            f"then up to {args.drain:g} s for stragglers"
        )
        written: list[str] = []

        async def emit(i: int) -> str | None:
            message = await store.conversations.append_message(
                conversation_ids[i % len(conversation_ids)], "user", f"lag probe {i}"
            )
            written.append(message.id)
            return None

        writes = await open_loop(emit, args.event_rate, args.event_seconds)
        receiver.expect(set(written))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.complete.wait(), args.drain)
        await api.call("DELETE", f"/v1/webhooks/{webhook_id}", expect=204)
    lags = [receiver.lags[m] for m in written if m in receiver.lags]
    delivered = Sample(latencies=lags)
    result: dict[str, Any] = {
        "events_written": len(written),
        "write_errors": sum(writes.errors.values()),
        "delivered": len(lags),
        "missing": len(written) - len(lags),
        "bad_signatures": receiver.bad_signatures,
    }
    if not lags:
        result["unavailable"] = (
            f"no delivery arrived within {args.drain:g} s (is the delivery worker running?)"
        )
        return result
    result |= {"lag_p50_ms": delivered.percentile(50), "lag_p99_ms": delivered.percentile(99)}
    result["lag_max_ms"] = delivered.percentile(100)
    return result


# Reporting


def report(args: argparse.Namespace, results: dict[str, Any], target: Target) -> dict[str, Any]:
    where = "embedded Redis" if target.redis_url and target.redis_url.startswith("unix") else None
    machine = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "redis": where or target.redis_url or "unknown",
        "load_before": args.load_before,
        "load_after": load_average(),
    }
    print(f"command: {command_line()}")
    print(
        f"machine: {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}, "
        f"{machine['date']}; Redis: {machine['redis']}"
    )
    print(f"load average (1, 5, 15 min): {args.load_before} before, {machine['load_after']} after")
    print(f"{'operation':<34}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    summaries: dict[str, Any] = {}
    for name, sample in results.items():
        if not isinstance(sample, Sample):
            continue
        summary = summaries[name] = sample.summary()
        label = name.replace("_", " ")
        if name.startswith("get_conversation_at_"):
            label = f"get conversation @ {name.rsplit('_', 1)[1]}/s (open)"
        elif name == "get_conversation":
            label = f"get conversation ({args.messages} msgs)"
        print(
            f"{label:<34}{summary['requests']:>9}{sum(summary['errors'].values()):>8}"
            f"{summary['per_second']:>9}{summary['p50_ms']:>9.2f}{summary['p99_ms']:>9.2f}"
        )
        if summary["errors"]:
            print(f"    errors: {summary['errors']}")
    lag = results.get("webhook_lag")
    if lag is not None:
        summaries["webhook_lag"] = lag
        if "lag_p50_ms" in lag:
            print(
                f"webhook delivery lag @ {args.event_rate:g} events/s: "
                f"p50 {lag['lag_p50_ms']:.1f} ms, p99 {lag['lag_p99_ms']:.1f} ms, "
                f"max {lag['lag_max_ms']:.1f} ms; delivered {lag['delivered']}"
                f"/{lag['events_written']}, bad signatures {lag['bad_signatures']}"
            )
        else:
            print(f"webhook delivery lag: unavailable: {lag['unavailable']}")
    for rate in args.rate:
        fixed = summaries[f"get_conversation_at_{rate:g}"]
        verdict = "met" if fixed["p99_ms"] < 10 and not fixed["errors"] else "NOT met"
        print(f"aim GET conversation p99 < 10 ms at {rate:g}/s: {verdict}")
    if lag is not None and "lag_p50_ms" in lag:
        print(f"aim delivery lag p50 < 50 ms: {'met' if lag['lag_p50_ms'] < 50 else 'NOT met'}")
    return {"command": command_line(), "machine": machine, "results": summaries}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--redis-url", help="Redis for the store phases (and for own server)")
    parser.add_argument("--redis-prefix", default="vb", help="key prefix of --url's server")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connection pool")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per closed loop")
    parser.add_argument("--messages", type=int, default=20, help="messages per read conversation")
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[500.0], help="open-loop GETs per second"
    )
    parser.add_argument("--rate-seconds", type=float, default=15.0, help="seconds per rate")
    parser.add_argument("--event-rate", type=float, default=200.0, help="webhook events/s")
    parser.add_argument("--event-seconds", type=float, default=10.0, help="0 skips webhooks")
    parser.add_argument("--drain", type=float, default=10.0, help="wait for late deliveries")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.url and not args.key:
        parser.error("--url needs --key")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        target = Target(args.url.rstrip("/"), args.key, args.redis_url, args.redis_prefix)
        return report(args, await run(args, target), target)
    async with own_server(args) as target:
        return report(args, await run(args, target), target)


def main() -> None:
    args = parse_args()
    args.load_before = load_average()
    summary = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
