from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bridge.store import Store

Client = TestClient[Any, Any]


async def _status_and_error(client: Client, path: str, headers: dict[str, str]) -> tuple[int, str]:
    response = await client.get(path, headers=headers)
    body = await response.json()
    return response.status, body["error"]["code"] if "error" in body else ""


async def test_every_v1_route_wants_a_key(app_client: Client) -> None:
    for path in ("/v1/agents", "/v1/conversations", "/v1/events", "/v1/webhooks"):
        response = await app_client.get(path)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        error = (await response.json())["error"]
        assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")


async def test_wrong_keys_are_refused(app_client: Client, api_key: str) -> None:
    for header in (
        f"Basic {api_key}",
        "Bearer ",
        "Bearer vbk_000000000000_nope",
        f"Bearer {api_key}x",
        api_key,
    ):
        response = await app_client.get("/v1/agents", headers={"Authorization": header})
        assert response.status == 401, header


async def test_unauthenticated_callers_learn_nothing_about_resources(
    app_client: Client, auth: dict[str, str]
) -> None:
    created = await app_client.post("/v1/agents", json={"name": "x"}, headers=auth)
    real = (await created.json())["agent_id"]
    answers = {
        await _status_and_error(app_client, path, {})
        for path in (
            f"/v1/agents/{real}",
            "/v1/agents/agt_01m84zwssjstbq0hmaebbk1prb",
            "/v1/no-such-route",
        )
    }
    assert answers == {(401, "invalid_api_key")}


async def test_revoked_key_stops_working(app_client: Client, store: Store) -> None:
    record, key = await store.api_keys.create("short-lived")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await app_client.get("/v1/agents", headers=headers)).status == 200
    await store.api_keys.revoke(record.key_id)
    assert (await app_client.get("/v1/agents", headers=headers)).status == 401


async def test_keys_are_stored_hashed(store: Store) -> None:
    record, key = await store.api_keys.create("hashed")
    raw = await store.redis.get(store.keys.api_key(record.prefix))
    assert raw is not None and key not in raw and key.split("_", 2)[2] not in raw
    assert await store.api_keys.verify(key) is not None


async def test_health_endpoints_need_no_key(app_client: Client) -> None:
    assert (await app_client.get("/healthz")).status == 200
    response = await app_client.get("/readyz")
    # The speech models are not loaded in this app, so it is not ready; but it says so.
    assert response.status == 503
    assert (await response.json())["reason"] == "speech models not_loaded"
    metrics = await app_client.get("/metrics")
    assert "voicebridge_http_requests" in await metrics.text()
