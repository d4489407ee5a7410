"""The aiohttp application: middlewares, routes and shared state."""

from __future__ import annotations

from aiohttp import web

from api import middleware
from api.metrics import ApiMetrics
from api.routes import agents, conversations, openapi, system, webhooks, ws
from api.state import STATE, AppState
from bridge.settings import Settings
from bridge.store import Store


def create_app(
    settings: Settings, store: Store, metrics: ApiMetrics | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[middleware.observe, middleware.envelope, middleware.authenticate],
        client_max_size=settings.max_body_bytes,
    )
    app[STATE] = AppState(settings=settings, store=store, metrics=metrics or ApiMetrics())
    for module in (system, openapi, agents, conversations, webhooks, ws):
        app.router.add_routes(module.routes)
    return app
