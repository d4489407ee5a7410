"""/v1/ws/{conversation_id}: reserved for the WebSocket transport of the voice pipeline."""

from __future__ import annotations

from aiohttp import web

from api.errors import ApiError

routes = web.RouteTableDef()


@routes.get("/v1/ws/{conversation_id}")
async def conversation_socket(_request: web.Request) -> web.Response:
    raise ApiError(501, "not_implemented", "the conversation WebSocket is not available yet")
