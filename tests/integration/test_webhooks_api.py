from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from bridge import ids
from bridge.settings import Settings
from bridge.store import Store
from tests.webhook_receiver import Received, Receiver

Client = TestClient[Any, Any]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


async def _create(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"url": "https://hooks.example.com/voice", "events": ["conversation.started"]}
    response = await client.post("/v1/webhooks", json=body | fields, headers=auth)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error: dict[str, Any] = (await response.json())["error"]
    return error


async def test_create_shows_a_generated_secret_once(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = await _create(
        app_client,
        auth,
        events=["conversation.started", "message.received"],
        description="CRM sync",
    )
    assert ids.is_id(created["webhook_id"], ids.WEBHOOK)
    assert created["secret"].startswith("whsec_")
    assert created["status"] == "active" and created["disabled_reason"] is None
    assert created["events"] == ["conversation.started", "message.received"]
    assert created["description"] == "CRM sync"
    assert created["created_at"].endswith("Z")

    response = await app_client.get(f"/v1/webhooks/{created['webhook_id']}", headers=auth)
    fetched = await response.json()
    assert "secret" not in fetched
    assert created["warnings"] == []
    assert fetched == {k: v for k, v in created.items() if k not in ("secret", "warnings")}
    listed = await (await app_client.get("/v1/webhooks", headers=auth)).json()
    assert [w["webhook_id"] for w in listed["data"]] == [created["webhook_id"]]
    assert "secret" not in listed["data"][0]


async def test_create_keeps_a_secret_given(app_client: Client, auth: dict[str, str]) -> None:
    created = await _create(app_client, auth, secret="my-own-secret-of-length")
    assert created["secret"] == "my-own-secret-of-length"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/voice", "must use https"),
        ("http://10.1.2.3/voice", "must use https"),
        ("ftp://hooks.example.com/voice", "https://"),
        ("https://user:pw@hooks.example.com/voice", "credentials"),
        ("https:///voice", "host"),
    ],
)
async def test_create_refuses_bad_urls(
    app_client: Client, auth: dict[str, str], url: str, message: str
) -> None:
    response = await app_client.post(
        "/v1/webhooks", json={"url": url, "events": ["conversation.started"]}, headers=auth
    )
    error = await _error(response, 422)
    assert error["code"] == "validation_error"
    assert error["param"] == "url"
    assert message in error["message"]


async def test_http_to_loopback_needs_the_insecure_setting(
    store: Store, redis_url: str, prefix: str, tmp_path: Path, auth: dict[str, str]
) -> None:
    strict = Settings(redis_url=redis_url, redis_prefix=prefix, data_dir=tmp_path)
    async with TestClient(TestServer(create_app(strict, store, ApiMetrics()))) as client:
        response = await client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["conversation.started"]},
            headers=auth,
        )
        error = await _error(response, 422)
        assert error["param"] == "url" and "webhook_allow_insecure" in error["message"]
        await _create(client, auth, url="https://127.0.0.1:9/hook")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"events": ["conversation.started"]}, "url"),
        ({"url": "https://h.example.com/x", "events": ["call.exploded"]}, "events.0"),
        ({"url": "https://h.example.com/x", "events": []}, "events"),
        ({"url": "https://h.example.com/x", "events": ["webhook.test"]}, "events.0"),
        (
            {"url": "https://h.example.com/x", "events": ["agent.handoff", "agent.handoff"]},
            "events",
        ),
        (
            {"url": "https://h.example.com/x", "events": ["agent.handoff"], "secret": ""},
            "secret",
        ),
        ({"url": "https://h.example.com/x", "events": ["agent.handoff"], "extra": 1}, "extra"),
    ],
)
async def test_create_validates_the_body(
    app_client: Client, auth: dict[str, str], body: dict[str, Any], param: str
) -> None:
    error = await _error(await app_client.post("/v1/webhooks", json=body, headers=auth), 422)
    assert error["code"] == "validation_error"
    assert error["param"] == param


async def test_webhooks_need_an_api_key(app_client: Client) -> None:
    assert (await app_client.get("/v1/webhooks")).status == 401
    response = await app_client.post(
        "/v1/webhooks", json={"url": "https://h.example.com/x", "events": ["agent.handoff"]}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/test")],
)
async def test_unknown_webhook_is_404(
    app_client: Client, auth: dict[str, str], method: str, suffix: str
) -> None:
    missing = ids.new_id(ids.WEBHOOK)
    kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
    response = await app_client.request(
        method, f"/v1/webhooks/{missing}{suffix}", headers=auth, **kwargs
    )
    error = await _error(response, 404)
    assert error["code"] == "webhook_not_found"


async def test_list_pages_through_every_webhook_once(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = [(await _create(app_client, auth))["webhook_id"] for _ in range(12)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        page = await (await app_client.get("/v1/webhooks", params=params, headers=auth)).json()
        seen += [w["webhook_id"] for w in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(created))
    response = await app_client.get("/v1/webhooks", params={"cursor": "bogus"}, headers=auth)
    assert (await _error(response, 400))["code"] == "invalid_cursor"


async def test_patch_changes_fields_and_rotates_the_secret(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = await _create(app_client, auth)
    path = f"/v1/webhooks/{created['webhook_id']}"
    response = await app_client.patch(
        path,
        json={"events": ["agent.handoff"], "url": "https://other.example.com/h"},
        headers=auth,
    )
    assert response.status == 200
    changed = await response.json()
    assert changed["events"] == ["agent.handoff"]
    assert changed["url"] == "https://other.example.com/h"
    assert changed["description"] is None
    assert "secret" not in changed

    rotated = await (
        await app_client.patch(path, json={"rotate_secret": True}, headers=auth)
    ).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    again = await (await app_client.patch(path, json={"rotate_secret": True}, headers=auth)).json()
    assert again["secret"] != rotated["secret"]

    error = await _error(
        await app_client.patch(path, json={"url": "http://example.com/h"}, headers=auth), 422
    )
    assert error["param"] == "url"
    error = await _error(await app_client.patch(path, json={"events": ["nope"]}, headers=auth), 422)
    assert error["param"] == "events.0"
    error = await _error(await app_client.patch(path, json={"url": None}, headers=auth), 422)
    assert error["param"] == "url"


async def test_patch_status_disables_and_reenables(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = await _create(app_client, auth)
    path = f"/v1/webhooks/{created['webhook_id']}"
    disabled = await (
        await app_client.patch(path, json={"status": "disabled"}, headers=auth)
    ).json()
    assert disabled["status"] == "disabled" and disabled["disabled_reason"]
    enabled = await (await app_client.patch(path, json={"status": "active"}, headers=auth)).json()
    assert enabled["status"] == "active" and enabled["disabled_reason"] is None


async def test_delete_removes_the_webhook(app_client: Client, auth: dict[str, str]) -> None:
    created = await _create(app_client, auth)
    path = f"/v1/webhooks/{created['webhook_id']}"
    assert (await app_client.delete(path, headers=auth)).status == 204
    assert (await app_client.get(path, headers=auth)).status == 404
    assert (await app_client.delete(path, headers=auth)).status == 404
    listed = await (await app_client.get("/v1/webhooks", headers=auth)).json()
    assert listed["data"] == []


async def _hook_on(
    client: Client, auth: dict[str, str], receiver: Receiver, path: str
) -> dict[str, Any]:
    created = await _create(client, auth, url=receiver.url(path))
    receiver.expect(path, created["secret"])
    return created


async def test_test_event_is_signed_sent_once_and_logged(
    app_client: Client, auth: dict[str, str], receiver: Receiver, store: Store
) -> None:
    created = await _hook_on(app_client, auth, receiver, "/ok")
    response = await app_client.post(f"/v1/webhooks/{created['webhook_id']}/test", headers=auth)
    assert response.status == 200, await response.text()
    attempt = await response.json()
    assert attempt["status"] == "succeeded"
    assert attempt["response_code"] == 200
    assert attempt["event"] == "webhook.test"
    assert attempt["attempt"] == 1
    assert attempt["error"] is None
    assert attempt["duration_ms"] >= 0

    [got] = receiver.at("/ok")
    assert got.signed_ok and got.standard_ok
    assert got.payload["event"] == "webhook.test"
    assert got.payload["id"] == got.event_id == attempt["event_id"]
    assert got.headers["X-Webhook-Event"] == "webhook.test"
    assert got.headers["Content-Type"] == "application/json"

    log = await app_client.get(f"/v1/webhooks/{created['webhook_id']}/deliveries", headers=auth)
    assert (await log.json())["data"] == [attempt]
    assert await store.redis.zcard(store.keys.deliveries_due) == 0


async def test_failed_test_event_is_not_retried(
    app_client: Client, auth: dict[str, str], receiver: Receiver, store: Store
) -> None:
    async def fail(_received: Received, _nth: int) -> web.Response:
        return web.Response(status=500)

    created = await _hook_on(app_client, auth, receiver, "/fails")
    receiver.endpoints["/fails"].behaviour = fail
    response = await app_client.post(f"/v1/webhooks/{created['webhook_id']}/test", headers=auth)
    assert response.status == 200
    attempt = await response.json()
    assert attempt["status"] == "failed"
    assert attempt["response_code"] == 500
    assert attempt["error"]["code"] == "http_error"
    assert attempt["error"]["type"] == "webhook_error"
    assert attempt["error"]["retry_count"] == 0
    assert attempt["error"]["next_retry"] is None
    assert await store.redis.zcard(store.keys.deliveries_due) == 0
    assert len(receiver.at("/fails")) == 1


async def test_test_event_to_a_closed_port_reports_the_connection_error(
    app_client: Client, auth: dict[str, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    created = await _create(app_client, auth, url=f"http://127.0.0.1:{port}/nobody")
    response = await app_client.post(f"/v1/webhooks/{created['webhook_id']}/test", headers=auth)
    attempt = await response.json()
    assert attempt["status"] == "failed"
    assert attempt["response_code"] is None
    assert attempt["error"]["code"] == "connection_failed"


async def test_delivery_log_pages_newest_first(
    app_client: Client, auth: dict[str, str], receiver: Receiver
) -> None:
    created = await _hook_on(app_client, auth, receiver, "/log")
    path = f"/v1/webhooks/{created['webhook_id']}"
    sent = [(await (await app_client.post(f"{path}/test", headers=auth)).json()) for _ in range(5)]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = await app_client.get(f"{path}/deliveries", params=params, headers=auth)
        assert response.status == 200
        page = await response.json()
        pages += 1
        seen += page["data"]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
        assert "-" not in cursor  # opaque, not a raw stream id
    assert pages == 3
    assert seen == list(reversed(sent))


@pytest.mark.parametrize("cursor", ["bogus", "ZDE6bm90LWFuLWlk", "YzE6YWd0XzAx"])
async def test_delivery_log_refuses_foreign_cursors(
    app_client: Client, auth: dict[str, str], cursor: str
) -> None:
    created = await _create(app_client, auth)
    response = await app_client.get(
        f"/v1/webhooks/{created['webhook_id']}/deliveries", params={"cursor": cursor}, headers=auth
    )
    error = await _error(response, 400)
    assert error["code"] == "invalid_cursor"
    assert error["param"] == "cursor"
