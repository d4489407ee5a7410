"""Request ids, metrics, auth and the error envelope, as aiohttp middlewares (outermost first)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from api import errors
from api.errors import ApiError
from api.state import AppState
from bridge.store import Conflict, InvalidCursor, NotFound, StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)
PUBLIC_V1 = ("/v1/openapi.json", "/v1/ws/")


def _route(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or "req_" + secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        metrics = AppState.of(request.app).metrics
        route = _route(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


@web.middleware
async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id: str | None = request.get(REQUEST_ID)
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response(request_id)
    except NotFound as exc:
        return errors.not_found(exc.kind, exc.resource_id).response(request_id)
    except InvalidCursor as exc:
        return ApiError(400, exc.code, exc.message, param=exc.param).response(request_id)
    except Conflict as exc:
        return ApiError(
            409, exc.code, exc.message, error_type=errors.CONFLICT, param=exc.param
        ).response(request_id)
    except StoreError as exc:
        return ApiError(400, exc.code, exc.message).response(request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return errors.from_http_exception(exc).response(request_id)
    except RedisError as exc:
        log.warning("request %s: redis unavailable: %s", request_id, exc)
        return ApiError(
            503,
            "storage_unavailable",
            "the data store is not reachable; retry shortly",
            error_type=errors.UNAVAILABLE,
            headers={"Retry-After": "1"},
        ).response(request_id)
    except Exception:
        log.exception("request %s: internal error", request_id)
        return ApiError(
            500,
            "internal_error",
            "internal error; quote the request id",
            error_type=errors.API_ERROR,
        ).response(request_id)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith("/v1") or path.startswith(PUBLIC_V1):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise errors.unauthorized("send your API key as Authorization: Bearer <key>")
    record = await AppState.of(request.app).store.api_keys.verify(key.strip())
    if record is None:
        raise errors.unauthorized("the API key is not valid")
    return await handler(request)
