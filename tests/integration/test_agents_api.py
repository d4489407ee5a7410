from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bridge import ids

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
