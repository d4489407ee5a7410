"""/v1/webhooks"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from api.delivery import attempt
from api.delivery.records import attempt_record
from api.delivery.url_policy import UrlRejected, check_webhook_url
from api.errors import ApiError
from api.http import parse_body, parse_query, respond, respond_page
from api.schemas.common import ListQuery
from api.schemas.webhooks import (
    DeliveryAttempt,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
    secret_warnings,
)
from api.state import AppState
from bridge import clock, events, ids
from bridge.models import Webhook
from bridge.settings import Settings
from bridge.store.deliveries import delivery_id

routes = web.RouteTableDef()

DISABLED_BY_API = "disabled through the API"


def checked_url(url: str, settings: Settings) -> str:
    try:
        return check_webhook_url(url, allow_insecure=settings.webhook_allow_insecure)
    except UrlRejected as exc:
        raise ApiError(422, "validation_error", exc.message, param="url") from None


def public(webhook: Webhook) -> WebhookOut:
    return WebhookOut(**webhook.model_dump(exclude={"secret"}))


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    state = AppState.of(request.app)
    body = await parse_body(request, WebhookCreate)
    webhook = await state.store.webhooks.create(
        url=checked_url(body.url, state.settings),
        events=list(body.events),
        description=body.description,
        secret=body.secret,
    )
    created = WebhookWithSecret(**webhook.model_dump(), warnings=secret_warnings(webhook.secret))
    return respond(created, status=201)


@routes.get("/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await AppState.of(request.app).store.webhooks.list(
        limit=query.limit, cursor=query.cursor
    )
    return respond_page([public(w) for w in page.items], page)


@routes.get("/v1/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    webhook = await AppState.of(request.app).store.webhooks.get(request.match_info["webhook_id"])
    return respond(public(webhook))


@routes.patch("/v1/webhooks/{webhook_id}")
async def update_webhook(request: web.Request) -> web.Response:
    state = AppState.of(request.app)
    body = await parse_body(request, WebhookUpdate)
    changes: dict[str, Any] = body.model_dump(include=body.model_fields_set - {"rotate_secret"})
    if "url" in changes:
        changes["url"] = checked_url(changes["url"], state.settings)
    if body.rotate_secret:
        changes["secret"] = ids.new_webhook_secret()
    if "status" in changes:
        changes["disabled_reason"] = None if changes["status"] == "active" else DISABLED_BY_API
    webhook = await state.store.webhooks.update(request.match_info["webhook_id"], changes)
    if body.rotate_secret:
        return respond(WebhookWithSecret(**webhook.model_dump()))
    return respond(public(webhook))


@routes.delete("/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    store = AppState.of(request.app).store
    webhook_id = request.match_info["webhook_id"]
    await store.webhooks.delete(webhook_id)
    # Its log went with it, so the cancelled jobs are not logged.
    await store.deliveries.cancel_for_webhook(webhook_id, lambda _job: "")
    return web.Response(status=204)


@routes.get("/v1/webhooks/{webhook_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    store = AppState.of(request.app).store
    query = parse_query(request, ListQuery)
    webhook = await store.webhooks.get(request.match_info["webhook_id"])
    page = await store.deliveries.attempts(
        webhook.webhook_id, limit=query.limit, cursor=query.cursor
    )
    return respond_page([DeliveryAttempt.model_validate_json(r) for r in page.items], page)


@routes.post("/v1/webhooks/{webhook_id}/test")
async def test_webhook(request: web.Request) -> web.Response:
    """One signed webhook.test event, sent now, once, without retries; logged like any other."""
    state = AppState.of(request.app)
    webhook = await state.store.webhooks.get(request.match_info["webhook_id"])
    event = events.build(
        events.TEST_EVENT,
        {"webhook_id": webhook.webhook_id, "message": "Test event from voicebridge."},
    )
    async with aiohttp.ClientSession() as session:
        result = await attempt.send(
            session,
            url=webhook.url,
            secret=webhook.secret,
            event_id=event.id,
            event_type=event.event,
            body=events.serialize(event),
            timeout=state.settings.webhook_timeout,
        )
    record = attempt_record(
        delivery_id=delivery_id(event.id, webhook.webhook_id),
        event_id=event.id,
        event=event.event,
        attempt=1,
        status="succeeded" if result.failure is None else "failed",
        at_ms=clock.now_ms(),
        result=result,
    )
    await state.store.deliveries.log_attempt(webhook.webhook_id, record.model_dump_json())
    return respond(record)
