"""/v1/agents"""

from __future__ import annotations

from aiohttp import web

from api.http import parse_body, parse_query, respond, respond_page
from api.schemas.agents import AgentCreate, AgentUpdate
from api.schemas.common import ListQuery
from api.state import AppState

routes = web.RouteTableDef()


@routes.post("/v1/agents")
async def create_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentCreate)
    agent = await AppState.of(request.app).store.agents.create(body.model_dump())
    return respond(agent, status=201)


@routes.get("/v1/agents")
async def list_agents(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await AppState.of(request.app).store.agents.list(limit=query.limit, cursor=query.cursor)
    return respond_page(page.items, page)


@routes.get("/v1/agents/{agent_id}")
async def get_agent(request: web.Request) -> web.Response:
    agent = await AppState.of(request.app).store.agents.get(request.match_info["agent_id"])
    return respond(agent)


@routes.patch("/v1/agents/{agent_id}")
async def update_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    agent_id = request.match_info["agent_id"]
    agent = await AppState.of(request.app).store.agents.update(agent_id, changes)
    return respond(agent)


@routes.delete("/v1/agents/{agent_id}")
async def delete_agent(request: web.Request) -> web.Response:
    await AppState.of(request.app).store.agents.delete(request.match_info["agent_id"])
    return web.Response(status=204)
