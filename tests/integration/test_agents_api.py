from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from bridge import ids
from bridge.models import OpenAIEngineConfig
from bridge.settings import Settings
from bridge.store import Store

Client = TestClient[Any, Any]


async def _create(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/agents", json={"name": "Support", **fields}, headers=auth)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_create_returns_the_agent(app_client: Client, auth: dict[str, str]) -> None:
    agent = await _create(
        app_client,
        auth,
        language="en-gb",
        voice_type="male",
        custom_responses={"greeting": "Hello {customer_name}", "hours": "We open at nine."},
        phone_numbers=["+14155550100", "support"],
        handoff_target="sip:desk@pbx.example.com",
    )
    assert ids.is_id(agent["agent_id"], ids.AGENT)
    assert agent["status"] == "active"
    assert agent["language"] == "en-GB"
    assert agent["created_at"].endswith("Z")
    response = await app_client.get(f"/v1/agents/{agent['agent_id']}", headers=auth)
    assert await response.json() == agent


async def test_list_pages_through_every_agent_once(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = [(await _create(app_client, auth, name=f"a{i}"))["agent_id"] for i in range(25)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "10"} | ({"cursor": cursor} if cursor else {})
        response = await app_client.get("/v1/agents", params=params, headers=auth)
        page = await response.json()
        pages += 1
        seen += [a["agent_id"] for a in page["data"]]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert pages == 3
    assert seen == list(reversed(created))


async def test_patch_changes_only_what_is_sent(app_client: Client, auth: dict[str, str]) -> None:
    agent = await _create(app_client, auth, personality="calm", handoff_target="tel:+15550100")
    response = await app_client.patch(
        f"/v1/agents/{agent['agent_id']}",
        json={"name": "Billing", "handoff_target": None},
        headers=auth,
    )
    assert response.status == 200
    updated = await response.json()
    assert (updated["name"], updated["personality"], updated["handoff_target"]) == (
        "Billing",
        "calm",
        None,
    )
    assert updated["updated_at"] >= agent["updated_at"]


async def test_phone_numbers_are_unique_across_agents(
    app_client: Client, auth: dict[str, str]
) -> None:
    first = await _create(app_client, auth, phone_numbers=["1000", "1001"])
    response = await app_client.post(
        "/v1/agents", json={"name": "b", "phone_numbers": ["1001"]}, headers=auth
    )
    assert response.status == 409
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("phone_number_taken", "phone_numbers")
    assert first["agent_id"] in error["message"]
    # Releasing a number by PATCH or DELETE lets another agent take it.
    await app_client.patch(
        f"/v1/agents/{first['agent_id']}", json={"phone_numbers": ["1000"]}, headers=auth
    )
    second = await _create(app_client, auth, phone_numbers=["1001"])
    await app_client.delete(f"/v1/agents/{first['agent_id']}", headers=auth)
    response = await app_client.patch(
        f"/v1/agents/{second['agent_id']}", json={"phone_numbers": ["1000", "1001"]}, headers=auth
    )
    assert response.status == 200


async def test_delete_then_get_is_404(app_client: Client, auth: dict[str, str]) -> None:
    agent = await _create(app_client, auth)
    response = await app_client.delete(f"/v1/agents/{agent['agent_id']}", headers=auth)
    assert response.status == 204
    for method in ("GET", "DELETE"):
        response = await app_client.request(method, f"/v1/agents/{agent['agent_id']}", headers=auth)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "agent_not_found"


async def test_unsupported_language_is_422_listing_the_supported(
    app_client: Client, auth: dict[str, str]
) -> None:
    response = await app_client.post(
        "/v1/agents", json={"name": "x", "language": "de-DE"}, headers=auth
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["param"] == "language"
    assert "en-US" in error["message"] and "de-DE" in error["message"]


async def test_validation_errors_name_every_field(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.post(
        "/v1/agents", json={"voice_type": "robot", "phone_numbers": "123"}, headers=auth
    )
    assert response.status == 422
    fields = {d["field"] for d in (await response.json())["error"]["details"]}
    assert fields == {"name", "voice_type", "phone_numbers"}


async def test_bad_cursor_is_400(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.get("/v1/agents", params={"cursor": "garbage"}, headers=auth)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_cursor"


async def test_inactive_agent_takes_no_new_conversations(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create(app_client, auth)
    await app_client.patch(
        f"/v1/agents/{agent['agent_id']}", json={"status": "inactive"}, headers=auth
    )
    response = await app_client.post(
        "/v1/conversations", json={"agent_id": agent["agent_id"], "user_id": "u"}, headers=auth
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "agent_inactive"


# -- intents and dialog engines ------------------------------------------------------------------

OPENAI = {
    "type": "openai",
    "base_url": "https://llm.example.com/v1",
    "model": "gpt-4o-mini",
    "api_key": "sk-proj-0123456789abcdefWXYZ",
    "instructions": "You sell shoes.",
}
WEBHOOK = {"type": "webhook", "url": "https://bot.example.com/turn", "secret": "s" * 20 + "9876"}
INTENT = {"name": "opening_hours", "phrases": ["opening hours", "when are you open"],
          "response": "We are open nine to five, {customer_name}."}  # fmt: skip


async def _patch(client: Client, auth: dict[str, str], agent_id: str, **fields: Any) -> Any:
    return await client.patch(f"/v1/agents/{agent_id}", json=fields, headers=auth)


async def test_intents_and_an_openai_engine_round_trip_with_the_key_masked(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent = await _create(app_client, auth, intents=[INTENT], dialog_engine=OPENAI)
    assert agent["intents"] == [INTENT]
    assert agent["dialog_engine"] == OPENAI | {
        "api_key": "…WXYZ",
        "temperature": 0.4,
        "max_tokens": 300,
        "timeout": 8.0,
    }
    assert "sk-proj" not in json.dumps(agent)
    response = await app_client.get(f"/v1/agents/{agent['agent_id']}", headers=auth)
    assert await response.json() == agent
    listed = await (await app_client.get("/v1/agents", headers=auth)).json()
    assert "sk-proj" not in json.dumps(listed)
    stored = await store.agents.get(agent["agent_id"])
    assert isinstance(stored.dialog_engine, OpenAIEngineConfig)
    assert stored.dialog_engine.api_key == OPENAI["api_key"]


async def test_the_default_engine_is_builtin(app_client: Client, auth: dict[str, str]) -> None:
    agent = await _create(app_client, auth)
    assert (agent["dialog_engine"], agent["intents"]) == ({"type": "builtin"}, [])


async def test_a_webhook_engine_secret_is_masked_and_short_keys_show_nothing(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create(app_client, auth, dialog_engine=WEBHOOK)
    assert agent["dialog_engine"] == WEBHOOK | {"secret": "…9876", "timeout": 5.0}
    short = await _create(app_client, auth, dialog_engine=OPENAI | {"api_key": "sk-local"})
    assert short["dialog_engine"]["api_key"] == "…"
    keyless = await _create(app_client, auth, dialog_engine=OPENAI | {"api_key": None})
    assert keyless["dialog_engine"]["api_key"] is None


async def test_patch_keeps_a_secret_left_out_only_for_the_same_endpoint(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = (await _create(app_client, auth, dialog_engine=OPENAI))["agent_id"]
    without_key = {k: v for k, v in OPENAI.items() if k != "api_key"}

    async def stored_key() -> str | None:
        engine = (await store.agents.get(agent_id)).dialog_engine
        assert isinstance(engine, OpenAIEngineConfig)
        return engine.api_key

    response = await _patch(app_client, auth, agent_id, dialog_engine=without_key | {"timeout": 3})
    assert response.status == 200
    body = await response.json()
    assert (body["dialog_engine"]["timeout"], body["dialog_engine"]["api_key"]) == (3.0, "…WXYZ")
    assert await stored_key() == OPENAI["api_key"]
    # Sending back the masked form a response showed is refused, naming the field.
    response = await _patch(app_client, auth, agent_id, dialog_engine=OPENAI | {"api_key": "…WXYZ"})
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["param"] == "dialog_engine.openai.api_key" and "masked" in error["message"]
    # A new endpoint never gets the old key.
    moved = without_key | {"base_url": "https://other.example.com/v1"}
    assert (await _patch(app_client, auth, agent_id, dialog_engine=moved)).status == 200
    assert await stored_key() is None
    await _patch(app_client, auth, agent_id, dialog_engine=moved | {"api_key": "sk-new-key"})
    assert await stored_key() == "sk-new-key"
    await _patch(app_client, auth, agent_id, dialog_engine=moved | {"api_key": None})
    assert await stored_key() is None
    # Other fields leave the engine alone; switching type drops it whole.
    await _patch(app_client, auth, agent_id, dialog_engine=moved | {"api_key": "sk-new-key"})
    await _patch(app_client, auth, agent_id, name="Renamed", intents=[INTENT])
    assert await stored_key() == "sk-new-key"
    response = await _patch(app_client, auth, agent_id, dialog_engine={"type": "builtin"})
    assert (await response.json())["dialog_engine"] == {"type": "builtin"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"intents": [INTENT | {"name": "Opening Hours"}]}, "intents.0.name"),
        ({"intents": [INTENT | {"phrases": []}]}, "intents.0.phrases"),
        ({"intents": [INTENT | {"phrases": ["x" * 201]}]}, "intents.0.phrases.0"),
        ({"intents": [INTENT | {"response": ""}]}, "intents.0.response"),
        ({"intents": [INTENT] * 101}, "intents"),
        ({"dialog_engine": {"type": "gpt"}}, "dialog_engine"),
        ({"dialog_engine": OPENAI | {"temperature": 2.5}}, "dialog_engine.openai.temperature"),
        ({"dialog_engine": OPENAI | {"max_tokens": 5000}}, "dialog_engine.openai.max_tokens"),
        ({"dialog_engine": OPENAI | {"timeout": 0.1}}, "dialog_engine.openai.timeout"),
        ({"dialog_engine": OPENAI | {"base_url": "ftp://x/v1"}}, "dialog_engine.openai.base_url"),
        ({"dialog_engine": OPENAI | {"base_url": "https://x/v1?k=1"}},
         "dialog_engine.openai.base_url"),
        ({"dialog_engine": OPENAI | {"model": "gpt 4"}}, "dialog_engine.openai.model"),
        ({"dialog_engine": OPENAI | {"api_key": "key with spaces"}},
         "dialog_engine.openai.api_key"),
        ({"dialog_engine": WEBHOOK | {"secret": "short"}}, "dialog_engine.webhook.secret"),
        ({"dialog_engine": WEBHOOK | {"url": "ftp://bot.example.com"}}, "dialog_engine.url"),
        ({"dialog_engine": WEBHOOK | {"url": "http://bot.example.com/turn"}}, "dialog_engine.url"),
        ({"dialog_engine": WEBHOOK | {"extra": 1}}, "dialog_engine.webhook.extra"),
    ],
)  # fmt: skip
async def test_bad_intents_and_engines_are_422_naming_the_field(
    app_client: Client, auth: dict[str, str], fields: dict[str, Any], param: str
) -> None:
    response = await app_client.post("/v1/agents", json={"name": "x", **fields}, headers=auth)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("validation_error", param)
    agent = await _create(app_client, auth)
    response = await _patch(app_client, auth, agent["agent_id"], **fields)
    assert response.status == 422
    assert (await response.json())["error"]["param"] == param


async def test_patch_refuses_null_intents_and_engine(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create(app_client, auth)
    for field in ("intents", "dialog_engine"):
        response = await _patch(app_client, auth, agent["agent_id"], **{field: None})
        assert response.status == 422
        assert (await response.json())["error"]["param"] == field


async def test_a_webhook_engine_over_http_needs_loopback_and_the_insecure_setting(
    app_client: Client,
    auth: dict[str, str],
    store: Store,
    redis_url: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    loopback = WEBHOOK | {"url": "http://127.0.0.1:9000/turn"}
    # The fixture's settings allow it (webhook_allow_insecure), as for event webhooks ...
    await _create(app_client, auth, dialog_engine=loopback)
    # ... and without the setting it is refused.
    strict = Settings(redis_url=redis_url, redis_prefix=prefix, data_dir=tmp_path)
    async with TestClient(TestServer(create_app(strict, store, ApiMetrics()))) as client:
        response = await client.post(
            "/v1/agents", json={"name": "x", "dialog_engine": loopback}, headers=auth
        )
        assert response.status == 422
        error = (await response.json())["error"]
        assert error["param"] == "dialog_engine.url"
        assert "webhook_allow_insecure" in error["message"]
        await _create(client, auth, dialog_engine=WEBHOOK)


async def test_record_phone_calls_is_null_by_default_and_may_be_set_and_cleared(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent = await _create(app_client, auth)
    assert agent["record_phone_calls"] is None
    url = f"/v1/agents/{agent['agent_id']}"
    on = await (await app_client.patch(url, json={"record_phone_calls": True}, headers=auth)).json()
    assert on["record_phone_calls"] is True
    cleared = await app_client.patch(url, json={"record_phone_calls": None}, headers=auth)
    assert (await cleared.json())["record_phone_calls"] is None
    bad = await app_client.patch(url, json={"record_phone_calls": "yes"}, headers=auth)
    assert bad.status == 422
