"""/v1/agents"""

from __future__ import annotations

from aiohttp import web

from api.delivery.url_policy import UrlRejected, check_webhook_url
from api.errors import ApiError
from api.http import parse_body, parse_query, respond, respond_page
from api.schemas.agents import AgentCreate, AgentUpdate, WebhookEngineInput
from api.schemas.common import ListQuery
from api.state import AppState
from bridge.settings import Settings

routes = web.RouteTableDef()


def check_engine_url(body: AgentCreate | AgentUpdate, settings: Settings) -> None:
    """A webhook engine's URL follows the rule of event webhooks (api/delivery/url_policy.py)."""
    if not isinstance(body.dialog_engine, WebhookEngineInput):
        return
    try:
        check_webhook_url(body.dialog_engine.url, allow_insecure=settings.webhook_allow_insecure)
    except UrlRejected as exc:
        raise ApiError(422, "validation_error", exc.message, param="dialog_engine.url") from None


def check_voice(body: AgentCreate | AgentUpdate, state: AppState) -> None:
    """An agent this server could not make speak is refused when it is made, not at its first
    call."""
    if body.voice_type is None:
        return
    problem = state.voice.runtime.voice_problem(body.voice_type)
    if problem is not None:
        raise ApiError(422, "voice_unavailable", problem, param="voice_type")


@routes.post("/v1/agents")
async def create_agent(request: web.Request) -> web.Response:
    state = AppState.of(request.app)
    body = await parse_body(request, AgentCreate)
    check_engine_url(body, state.settings)
    check_voice(body, state)
    agent = await state.store.agents.create(body.model_dump())
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
    state = AppState.of(request.app)
    body = await parse_body(request, AgentUpdate)
    check_engine_url(body, state.settings)
    check_voice(body, state)
    changes = body.model_dump(include=body.model_fields_set)
    agent = await state.store.agents.update(request.match_info["agent_id"], changes)
    return respond(agent)


@routes.delete("/v1/agents/{agent_id}")
async def delete_agent(request: web.Request) -> web.Response:
    await AppState.of(request.app).store.agents.delete(request.match_info["agent_id"])
    return web.Response(status=204)
