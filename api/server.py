"""`voicebridge serve`: Redis (embedded or external), the REST app, the SIP user agent and the
delivery worker on one event loop, stopped cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from api.app import PARSER_LIMITS, create_app
from api.delivery.worker import DeliveryWorker
from api.metrics import ApiMetrics
from api.state import AppState
from api.voice import VoiceService
from bridge import clock, recordings, sweeper
from bridge.agent_directory import AgentDirectory
from bridge.cluster import registry
from bridge.embedded_redis import EmbeddedRedis
from bridge.models import NodeRecord
from bridge.phone import user_agent
from bridge.redis_client import connect
from bridge.sessions import Sessions
from bridge.settings import Settings
from bridge.sip.call_interfaces import EndReason
from bridge.sip.useragent import UserAgent
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime

log = logging.getLogger("voicebridge")

# Bounds a shutdown: in-flight HTTP requests get this long to finish, and so do the background
# loops to wind down after they are cancelled.
SHUTDOWN_GRACE = 5.0


class StartupError(RuntimeError):
    """The bridge cannot start; the message is one line saying why."""


def describe_redis(settings: Settings) -> str:
    """Which Redis the settings name, as an operator would look for it (no password)."""
    if settings.redis_url is None:
        return f"the embedded Redis under {settings.data_dir.resolve()} (VOICEBRIDGE_DATA_DIR)"
    url = re.sub(r"//[^@/]*@", "//", settings.redis_url)
    return f"{url} (VOICEBRIDGE_REDIS_URL), prefix {settings.redis_prefix}"


def holds_data(data_dir: Path) -> bool:
    """Whether an embedded Redis ever kept data under `data_dir` (its AOF, or a live socket)."""
    return any((data_dir / name).exists() for name in ("voicebridge.aof", "redis.sock"))


@contextlib.asynccontextmanager
async def open_redis(settings: Settings, *, create: bool = True) -> AsyncIterator[aioredis.Redis]:
    """A client on the configured Redis, starting the embedded one when none is configured.
    With `create` false, an embedded Redis that never held data is an error rather than made
    (a command that only reads must not leave a new data directory behind)."""
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        if not create and not holds_data(settings.data_dir):
            raise StartupError(
                f"no voicebridge data under {settings.data_dir.resolve()}: run this where "
                "`voicebridge serve` runs, or with its VOICEBRIDGE_DATA_DIR or "
                "VOICEBRIDGE_REDIS_URL"
            )
        embedded = EmbeddedRedis(settings.data_dir)
        await embedded.start()
        url = embedded.url
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


NEW_KEY_HINT = "voicebridge keys create --name NAME"


async def ensure_bootstrap_key(store: Store) -> str | None:
    """On first start (no live key), create one so the operator can call the API at all."""
    if await store.api_keys.any_active():
        return None
    _record, key = await store.api_keys.create("bootstrap")
    return key


async def announce_bootstrap_key(store: Store) -> None:
    key = await ensure_bootstrap_key(store)
    if key is not None:
        print(
            f"bootstrap API key (shown once, keep it; lost it? `{NEW_KEY_HINT}` with this "
            f"server's settings makes another): {key}",
            flush=True,
        )
    else:
        log.info("API keys exist; no bootstrap key made (a new one: `%s`)", NEW_KEY_HINT)


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_redis(settings) as redis:
        store = Store(redis, settings.redis_prefix)
        metrics = ApiMetrics()
        app = create_app(settings, store, metrics)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE,
            **PARSER_LIMITS,
        )
        await runner.setup()
        sites = [
            (
                web.TCPSite(
                    runner,
                    settings.http_host,
                    settings.http_port,
                    reuse_address=True,
                    reuse_port=settings.http_reuse_port or None,
                ),
                "VOICEBRIDGE_HTTP_HOST/VOICEBRIDGE_HTTP_PORT",
            )
        ]
        if settings.http_node_port is not None:
            own = web.TCPSite(runner, settings.http_host, settings.http_node_port)
            sites.append((own, "VOICEBRIDGE_HTTP_HOST/VOICEBRIDGE_HTTP_NODE_PORT"))
        for site, names in sites:
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                where = site.name.removeprefix("http://")
                raise StartupError(
                    f"cannot listen on {where} ({names}): {exc.strerror or exc}"
                ) from None
        voice = AppState.of(app).voice
        directory = AgentDirectory(store)
        phone = user_agent(settings, store, voice.sessions, voice.clock, directory)
        if settings.preload_models:
            phone.not_ready = "speech models loading"
        try:
            await phone.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{settings.sip_host}:{settings.sip_port}"
            raise StartupError(
                f"cannot listen on {where} (VOICEBRIDGE_SIP_HOST/VOICEBRIDGE_SIP_PORT): "
                f"{exc.strerror or exc}"
            ) from None
        # Only now that nothing can fail to bind: a key made before a failed start would be
        # shown to nobody who keeps it, and the next start would not make another.
        await announce_bootstrap_key(store)
        print(f"voicebridge REST API on {settings.base_url()}", flush=True)
        print(f"voicebridge SIP on udp+tcp {settings.sip_host}:{phone.port}", flush=True)
        log.info(
            "node %s started: REST API on %s, SIP on udp+tcp %s:%d, %s",
            settings.node_id,
            settings.base_url(),
            settings.sip_host,
            phone.port,
            describe_redis(settings),
        )
        workers = await start_background(settings, store, metrics, voice.sessions)
        state = AppState.of(app)
        started_at = clock.iso(clock.now_ms())
        own_url = (
            settings.base_url()
            if settings.http_node_port is None
            else settings.base_url().rsplit(":", 1)[0] + f":{settings.http_node_port}"
        )

        def describe() -> NodeRecord:
            ready = voice.runtime.state == "ok" or not settings.preload_models
            return NodeRecord(
                node_id=settings.node_id,
                state="draining" if state.draining else "ready" if ready else "loading",
                sip=f"{phone.advertised_host}:{phone.port}",
                http_url=own_url,
                calls=len(phone.calls),
                max_calls=settings.sip_max_calls,
                sessions=len(voice.sessions),
                started_at=started_at,
                seen_at=started_at,
            )

        workers.append(loop.create_task(registry.keep_recorded(store, describe)))
        workers.append(loop.create_task(directory.run(), name="agent directory"))
        metrics.node_calls.labels(settings.node_id).set_function(lambda: len(phone.calls))
        metrics.node_max_calls.labels(settings.node_id).set(settings.sip_max_calls)
        if settings.preload_models:
            workers.append(loop.create_task(preload(voice.runtime, phone, settings.node_id)))
        else:
            freeze_startup_objects()
            log.info(
                "node %s ready: speech models load on the first conversation", settings.node_id
            )
        try:
            await stop.wait()
        finally:
            state.draining = True
            with contextlib.suppress(RedisError, OSError):
                await store.nodes.record(describe(), registry.RECORD_TTL_S)
            log.info(
                "node %s draining: %d live calls get up to %.0f s (VOICEBRIDGE_SIP_DRAIN_TIMEOUT)",
                settings.node_id,
                len(phone.calls),
                settings.sip_drain_timeout,
            )
            await stop_calls(phone, voice, settings.sip_drain_timeout)
            await cancel_all(workers, SHUTDOWN_GRACE)
            await runner.cleanup()
            log.info("node %s stopped", settings.node_id)


async def stop_calls(phone: UserAgent, voice: VoiceService, grace: float) -> None:
    """Refuse new calls (503), give live ones `grace` seconds to finish, then end their
    conversations with reason `shutdown` (which hangs each call up) and close the SIP port."""
    phone.drain()
    calls = [asyncio.ensure_future(call.wait_ended()) for call in phone.calls]
    if calls:
        _done, pending = await asyncio.wait(calls, timeout=grace)
        for waiting in pending:
            waiting.cancel()
    await voice.shutdown()
    # Whatever call has no session yet (still ringing, or its session failing) is hung up here.
    await phone.drain_and_stop(SHUTDOWN_GRACE, EndReason.AGENT_HANGUP)
    await phone.close()


async def preload(runtime: VoiceRuntime, phone: UserAgent, node: str) -> None:
    """Load the speech models now, so the first caller does not wait for them; until they are,
    /readyz says 503 and so do INVITE and OPTIONS (a balancer probing the node skips it)."""
    try:
        await runtime.ready()
    except Exception:
        log.exception("loading the speech models failed; conversations cannot start")
        phone.not_ready = "speech models failed to load"
        return
    phone.not_ready = None
    freeze_startup_objects()
    print("speech models loaded", flush=True)
    voices = ", ".join(f"{name} {state}" for name, state in runtime.voices().items())
    log.info("node %s ready: taking calls (voices: %s)", node, voices)


def freeze_startup_objects() -> None:
    """Keep what start-up made (modules, schemas, models, caches) out of every later garbage
    collection: they live as long as the process, and a full collection walked all of them on
    the event loop, an 81 ms stall of every call's audio under 200 media calls (gc.callbacks
    timing, issue 11). Collections then walk only what calls made since."""
    gc.collect()
    gc.freeze()


async def cancel_all(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Cancel `tasks` and wait up to `grace` seconds for them to end.

    A cancellation can be lost on Python 3.11 (asyncio.wait_for and asyncio.timeout swallow it
    when the awaited thing completes at the same moment), and a loop that catches and retries
    then runs on: so cancel again until the tasks end, rather than waiting forever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if task in pending:
            log.warning("background task %s did not stop within %.0f s", task.get_name(), grace)
        elif not task.cancelled() and task.exception() is not None:
            log.error("background task %s had failed", task.get_name(), exc_info=task.exception())


async def start_background(
    settings: Settings, store: Store, metrics: ApiMetrics, sessions: Sessions | None = None
) -> list[asyncio.Task[None]]:
    """The loops that run beside the HTTP server: the webhook delivery worker, the recording
    retention sweep and, for a process holding `sessions`, the sweep that ends conversations
    nothing holds."""
    return [
        *DeliveryWorker(settings, store, metrics).start(),
        *recordings.start_sweeper(settings),
        *(sweeper.start(settings, store, sessions) if sessions is not None else []),
    ]
