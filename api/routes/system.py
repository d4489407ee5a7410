"""Health, readiness, Prometheus metrics and the event catalogue."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from api.http import respond
from api.schemas.common import Health, ListPage, Readiness
from api.schemas.webhooks import EventTypeInfo
from api.state import AppState
from bridge.events import EVENT_TYPES

routes = web.RouteTableDef()

READY_TIMEOUT = 0.8


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return respond(Health(status="ok"))


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    # Probes time out in about a second; answer before the client's retries would.
    try:
        await asyncio.wait_for(AppState.of(request.app).store.ping(), READY_TIMEOUT)
    except TimeoutError:
        return respond(Readiness(status="unavailable", redis="no answer"), 503)
    except (RedisError, OSError) as exc:
        return respond(Readiness(status="unavailable", redis=str(exc) or type(exc).__name__), 503)
    return respond(Readiness(status="ok", redis="ok"))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(AppState.of(request.app).metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/v1/events")
async def list_event_types(_request: web.Request) -> web.Response:
    data = [EventTypeInfo(event=name, description=text) for name, text in EVENT_TYPES.items()]
    return respond(ListPage[EventTypeInfo](data=data, has_more=False, next_cursor=None))
