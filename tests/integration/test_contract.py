"""The published API contract: its examples sent verbatim, the documented response shapes back
(checked field by field and against the OpenAPI document), and the error envelope."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient

from api.openapi import build_document
from bridge.settings import Settings
from bridge.store import Store

Client = TestClient[Any, Any]

# Verbatim from the published API documentation.
AGENT_EXAMPLE: dict[str, Any] = {
    "name": "Customer Support Agent",
    "language": "en-US",
    "voice_type": "female",
    "personality": "friendly and helpful",
    "custom_responses": {
        "greeting": "Hello! How can I help you today?",
        "farewell": "Thank you for calling. Have a great day!",
    },
}
CONVERSATION_EXAMPLE: dict[str, Any] = {
    "agent_id": "<from above>",
    "user_id": "user_12345",
    "language": "en-US",
    "initial_context": {"customer_name": "John Doe", "account_type": "premium"},
    "settings": {"voice_speed": 1.0, "voice_pitch": "medium", "recording_enabled": True},
}
END_EXAMPLE: dict[str, Any] = {
    "reason": "user_ended",
    "feedback": {"rating": 5, "comments": "Very helpful!"},
}
WEBHOOK_EXAMPLE: dict[str, Any] = {
    "url": "https://your-app.com/webhooks/voice-agent",
    "events": ["conversation.started", "conversation.ended", "message.received"],
    "secret": "whsec_123456789",
}

UTC_Z = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")
ID_BODY = "[0-9a-hjkmnp-tv-z]{26}"

DOCUMENT = build_document()


def _validator(schema_name: str) -> jsonschema_rs.Validator:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def conforms(body: Any, schema_name: str) -> None:
    """`body` matches the schema the OpenAPI document publishes under `schema_name`."""
    _validator(schema_name).validate(body)


def is_id(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and re.fullmatch(f"{prefix}_{ID_BODY}", value) is not None


def is_utc(value: Any) -> bool:
    return isinstance(value, str) and UTC_Z.fullmatch(value) is not None


def test_the_document_publishes_the_examples() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["AgentCreate"]["examples"] == [AGENT_EXAMPLE]
    assert schemas["ConversationEnd"]["examples"] == [END_EXAMPLE]
    (conversation,) = schemas["ConversationCreate"]["examples"]
    assert {**conversation, "agent_id": "<from above>"} == CONVERSATION_EXAMPLE


async def _create_agent(client: Client, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/v1/agents", json=AGENT_EXAMPLE, headers=auth)
    assert response.status == 201, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


async def test_the_published_flow(app_client: Client, auth: dict[str, str], store: Store) -> None:
    agent = await _create_agent(app_client, auth)
    conforms(agent, "Agent")
    assert is_id(agent["agent_id"], "agt")
    assert agent["name"] == "Customer Support Agent"
    assert agent["status"] == "active"
    assert is_utc(agent["created_at"])

    response = await app_client.post(
        "/v1/conversations",
        json={**CONVERSATION_EXAMPLE, "agent_id": agent["agent_id"]},
        headers=auth,
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    conforms(created, "ConversationCreated")
    cid = created["conversation_id"]
    assert is_id(cid, "conv")
    assert created["status"] == "active"
    assert is_utc(created["created_at"])
    details = created["connection_details"]
    assert details["websocket_url"] == f"wss://voice.example.com/v1/ws/{cid}"
    assert details["token"].startswith("cvt_")

    await store.conversations.append_message(cid, "user", "What are your opening hours?")
    await store.conversations.append_message(cid, "agent", "We are open from 9 to 5.")
    response = await app_client.get(f"/v1/conversations/{cid}", headers=auth)
    assert response.status == 200
    detail = await response.json()
    conforms(detail, "ConversationDetail")
    assert detail["conversation_id"] == cid
    assert detail["status"] == "active"
    assert isinstance(detail["duration"], int | float) and detail["duration"] >= 0
    assert [(m["type"], m["content"]) for m in detail["messages"]] == [
        ("user", "What are your opening hours?"),
        ("agent", "We are open from 9 to 5."),
    ]
    for message in detail["messages"]:
        assert {"id", "type", "content", "timestamp"} <= set(message)
        assert is_id(message["id"], "msg")
        assert is_utc(message["timestamp"])
    assert {"sentiment_score", "user_satisfaction", "resolution_status"} <= set(detail["metrics"])
    assert detail["initial_context"] == CONVERSATION_EXAMPLE["initial_context"]
    assert detail["settings"] == CONVERSATION_EXAMPLE["settings"]

    response = await app_client.post(f"/v1/conversations/{cid}/end", json=END_EXAMPLE, headers=auth)
    assert response.status == 200, await response.text()
    ended = await response.json()
    conforms(ended, "ConversationDetail")
    assert ended["status"] == "completed"
    assert ended["end_reason"] == "user_ended"
    assert ended["feedback"] == END_EXAMPLE["feedback"]
    assert is_utc(ended["ended_at"])

    again = await app_client.post(f"/v1/conversations/{cid}/end", json=END_EXAMPLE, headers=auth)
    assert again.status == 200
    assert await again.json() == ended, "ending twice must change nothing"


async def test_the_published_webhook_example(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.post("/v1/webhooks", json=WEBHOOK_EXAMPLE, headers=auth)
    assert response.status == 201, await response.text()
    body = await response.json()
    conforms(body, "WebhookWithSecret")
    assert is_id(body["webhook_id"], "wh")
    assert body["url"] == WEBHOOK_EXAMPLE["url"]
    assert body["events"] == WEBHOOK_EXAMPLE["events"]
    assert body["secret"] == WEBHOOK_EXAMPLE["secret"]
    assert is_utc(body["created_at"])
    # Its 15-character secret is taken, and the response says it is weak.
    assert "15 characters" in body["warnings"][0]
    strong = {**WEBHOOK_EXAMPLE, "secret": "s" * 32}
    response = await app_client.post("/v1/webhooks", json=strong, headers=auth)
    assert (await response.json())["warnings"] == []


@pytest.mark.parametrize(
    "engine",
    [
        {"type": "openai", "base_url": "https://llm.example.com/v1", "model": "m",
         "api_key": "sk-0123456789abcdef0123"},
        {"type": "openai", "base_url": "http://10.0.0.5:8000/v1", "model": "m", "api_key": "sk"},
        {"type": "webhook", "url": "https://bot.example.com/turn", "secret": "s" * 32},
        {"type": "webhook", "url": "https://bot.example.com/turn"},
    ],
)  # fmt: skip
async def test_agents_with_engines_match_the_documented_shape(
    app_client: Client, auth: dict[str, str], engine: dict[str, Any]
) -> None:
    body = {**AGENT_EXAMPLE, "dialog_engine": engine, "intents": [
        {"name": "hours", "phrases": ["opening hours"], "response": "Nine to five."}]}  # fmt: skip
    _validator("AgentCreate").validate(body)
    response = await app_client.post("/v1/agents", json=body, headers=auth)
    assert response.status == 201, await response.text()
    agent = await response.json()
    conforms(agent, "Agent")
    for secret in ("api_key", "secret"):
        if engine.get(secret):
            assert agent["dialog_engine"][secret] != engine[secret]
            assert agent["dialog_engine"][secret].startswith("…")


async def _error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    conforms(body, "ErrorEnvelope")
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "type"} <= set(error)
    assert error["request_id"] == response.headers["X-Request-Id"]
    if code is not None:
        assert error["code"] == code
    return error


async def test_401_without_a_valid_key(app_client: Client) -> None:
    error = await _error(await app_client.get("/v1/agents"), 401, "invalid_api_key")
    assert error["type"] == "authentication_error"
    response = await app_client.get("/v1/agents", headers={"Authorization": "Bearer nope"})
    await _error(response, 401, "invalid_api_key")


async def test_404_names_what_is_missing(app_client: Client, auth: dict[str, str]) -> None:
    missing = "agt_01jd4y3k8m2q9w7e5r1t6y0z3h"
    error = await _error(
        await app_client.get(f"/v1/agents/{missing}", headers=auth), 404, "agent_not_found"
    )
    assert error["type"] == "not_found_error"
    assert missing in error["message"]
    await _error(await app_client.get("/v1/nothing-here", headers=auth), 404, "route_not_found")


async def test_422_names_the_field(app_client: Client, auth: dict[str, str]) -> None:
    body = {**AGENT_EXAMPLE, "voice_type": "robot"}
    error = await _error(
        await app_client.post("/v1/agents", json=body, headers=auth), 422, "validation_error"
    )
    assert error["param"] == "voice_type"
    assert "voice_type" in error["message"]
    assert error["details"][0]["field"] == "voice_type"
    error = await _error(
        await app_client.post("/v1/agents", json={"language": "en-US"}, headers=auth), 422
    )
    assert error["param"] == "name"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "x"',  # truncated
        b"\xff\xfe not utf-8",
        b'{"name": NaN}',  # Python's json reads it; JSON has no NaN
        b'{"name": "x", "personality": 1e999}',  # overflows to infinity
        b'{"name": "\\ud800"}',  # a lone surrogate no store can encode
        b'{"name": "x", "custom_responses": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # too deep
        b"[]",
    ],
)
async def test_400_for_what_is_not_a_json_object(
    app_client: Client, auth: dict[str, str], raw: bytes
) -> None:
    response = await app_client.post(
        "/v1/agents", data=raw, headers={**auth, "Content-Type": "application/json"}
    )
    await _error(response, 400, "invalid_json")


async def test_415_when_the_body_is_not_json(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.post(
        "/v1/agents", data="name=x", headers={**auth, "Content-Type": "text/plain"}
    )
    await _error(response, 415, "unsupported_media_type")


async def test_413_when_the_body_is_over_the_limit(
    app_client: Client, auth: dict[str, str], settings: Settings
) -> None:
    big = {"name": "x", "personality": "y" * settings.max_body_bytes}
    response = await app_client.post("/v1/agents", json=big, headers=auth)
    await _error(response, 413, "body_too_large")


async def test_405_lists_the_allowed_methods(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.put("/v1/agents", json={}, headers=auth)
    await _error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_an_internal_failure_is_an_envelope_without_a_stack_trace(
    app_client: Client, auth: dict[str, str], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internals /work/main/bridge/store/agents.py line 42")

    monkeypatch.setattr(store.agents, "list", broken)
    response = await app_client.get("/v1/agents", headers=auth)
    error = await _error(response, 500, "internal_error")
    text = await response.text()
    assert "Traceback" not in text and "secret internals" not in text
    assert error["type"] == "api_error"


async def test_invalid_requests_get_a_4xx_never_a_500(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create_agent(app_client, auth)
    bad: list[tuple[str, str, Any]] = [
        ("POST", "/v1/agents", {"name": ""}),
        ("POST", "/v1/agents", {"name": "x", "language": "fr-FR"}),
        ("POST", "/v1/agents", {"name": "x", "phone_numbers": ["+1\n"]}),
        ("POST", "/v1/agents", {"name": "x", "custom_responses": {"greeting\n": "hi"}}),
        ("POST", "/v1/agents", {"name": "x", "handoff_target": "sip:a b"}),
        ("PATCH", f"/v1/agents/{agent['agent_id']}", {"name": None}),
        ("PATCH", f"/v1/agents/{agent['agent_id']}", {"status": "deleted"}),
        ("PATCH", f"/v1/agents/{agent['agent_id']}", {"dialog_engine": {"type": "openai"}}),
        ("POST", "/v1/agents", {"name": "x", "dialog_engine": []}),
        ("POST", "/v1/agents", {"name": "x", "intents": [{"name": "a", "phrases": "hi"}]}),
        ("POST", "/v1/conversations", {"agent_id": agent["agent_id"]}),
        (
            "POST",
            "/v1/conversations",
            {"agent_id": agent["agent_id"], "user_id": "u", "initial_context": _nested(40)},
        ),
        (
            "POST",
            "/v1/conversations",
            {"agent_id": agent["agent_id"], "user_id": "u", "settings": {"recording_enabled": 1}},
        ),
        ("POST", "/v1/conversations/conv_x/end", {"feedback": {"rating": "5"}}),
        ("GET", "/v1/agents?limit=1.5", None),
        ("GET", "/v1/agents?limit=%2B1", None),
        ("GET", "/v1/agents?cursor=not-a-cursor", None),
        ("GET", "/v1/conversations?created_after=1", None),
        ("GET", "/v1/conversations?created_after=2024-01-01T00:00:00", None),
        ("GET", "/v1/conversations?status=gone", None),
        ("GET", "/v1/agents?limit=1&limit=2", None),
    ]
    for method, path, body in bad:
        response = await app_client.request(method, path, json=body, headers=auth)
        text = await response.text()
        assert 400 <= response.status < 500, (method, path, response.status, text)
        assert "Traceback" not in text


async def test_an_instant_before_1970_bounds_like_1970(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create_agent(app_client, auth)
    conversation = {**CONVERSATION_EXAMPLE, "agent_id": agent["agent_id"]}
    await app_client.post("/v1/conversations", json=conversation, headers=auth)
    before = "0001-01-01T00:00:00%2B23:59"
    response = await app_client.get(f"/v1/conversations?created_before={before}", headers=auth)
    assert response.status == 200
    assert (await response.json())["data"] == []
    response = await app_client.get(f"/v1/conversations?created_after={before}", headers=auth)
    assert len((await response.json())["data"]) == 1


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value
