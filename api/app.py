"""The aiohttp application: middlewares, routes and shared state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import middleware, ws
from api.metrics import ApiMetrics
from api.routes import agents, conversations, openapi, system, webhooks
from api.state import STATE, AppState
from api.voice import VoiceService
from bridge.settings import Settings
from bridge.store import Store
from bridge.voice_runtime import VoiceRuntime

PARSER_LIMITS: dict[str, Any] = {"max_line_size": 32768, "max_field_size": 32768}
"""The HTTP parser's limits for a request line and a header (aiohttp's default: 8190 bytes).
A request over them is refused by aiohttp before any handler, as a plain-text 400 without our
error body or X-Request-Id; every request the API documents is far below them, and generous
limits keep that refusal for requests nobody could mean (a long invalid `cursor` reached it)."""


def create_app(
    settings: Settings,
    store: Store,
    metrics: ApiMetrics | None = None,
    runtime: VoiceRuntime | None = None,
) -> web.Application:
    """The app; `runtime` shares already loaded voice models (tests), else the app has its own
    that loads them on the first conversation."""
    app = web.Application(
        middlewares=[middleware.observe, middleware.envelope, middleware.authenticate],
        client_max_size=settings.max_body_bytes,
    )
    metrics = metrics or ApiMetrics()
    owns_runtime = runtime is None
    voice = VoiceService(
        settings,
        store,
        runtime or VoiceRuntime(metrics.registry, settings.inference_workers),
        owns_runtime=owns_runtime,
    )
    app[STATE] = AppState(settings=settings, store=store, metrics=metrics, voice=voice)
    for module in (system, openapi, agents, conversations, webhooks, ws):
        app.router.add_routes(module.routes)

    async def start_voice(_app: web.Application) -> None:
        voice.start()

    async def end_conversations(_app: web.Application) -> None:
        await voice.shutdown()

    async def stop_voice(_app: web.Application) -> None:
        await voice.close()

    app.on_startup.append(start_voice)
    app.on_shutdown.append(end_conversations)
    app.on_cleanup.append(stop_voice)
    return app
