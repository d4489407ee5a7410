"""Health, readiness, Prometheus metrics and the event catalogue."""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from api.http import respond
from api.schemas.common import Health, ListPage, NodeInfo, Readiness
from api.schemas.webhooks import EventTypeInfo
from api.state import AppState
from bridge.events import EVENT_TYPES

routes = web.RouteTableDef()

READY_TIMEOUT = 0.8
ModelsState = Literal["ok", "loading", "not_loaded", "failed", "on_demand"]


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return respond(Health(status="ok"))


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready means "send me calls now": Redis answers, the speech models are loaded (or load on
    demand), and the node is not draining."""
    state = AppState.of(request.app)
    runtime = state.voice.runtime
    models: ModelsState = runtime.state
    if models == "not_loaded" and not state.settings.preload_models:
        models = "on_demand"
    redis = "ok"
    # Probes time out in about a second; answer before the client's retries would.
    try:
        await asyncio.wait_for(state.store.ping(), READY_TIMEOUT)
    except TimeoutError:
        redis = "no answer"
    except (RedisError, OSError) as exc:
        redis = str(exc) or type(exc).__name__
    reasons = []
    if state.draining:
        reasons.append("draining")
    if redis != "ok":
        reasons.append(f"redis: {redis}")
    # Loading on demand (no preload) does not stop calls: they wait for the models.
    if models == "failed" or (state.settings.preload_models and models != "ok"):
        detail = f" ({runtime.failure})" if models == "failed" else ""
        reasons.append(f"speech models {models}{detail}")
    body = Readiness(
        status="unavailable" if reasons else "ok",
        redis=redis,
        models=models,
        voices=runtime.voices(),
        draining=state.draining,
        reason="; ".join(reasons) or None,
    )
    return respond(body, 503 if reasons else 200)


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


@routes.get("/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    records = await AppState.of(request.app).store.nodes.records()
    data = [NodeInfo.model_validate(record.model_dump()) for record in records]
    return respond(ListPage[NodeInfo](data=data, has_more=False, next_cursor=None))
