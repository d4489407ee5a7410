"""/v1/openapi.json: the API's own description, public so tools can fetch it before any key."""

from __future__ import annotations

from aiohttp import web

from api.openapi import OPENAPI_PATH, build_document
from api.state import AppState

routes = web.RouteTableDef()


@routes.get(OPENAPI_PATH)
async def openapi_document(request: web.Request) -> web.Response:
    settings = AppState.of(request.app).settings
    server = settings.base_url() if settings.public_url is not None else None
    return web.json_response(build_document(server))
