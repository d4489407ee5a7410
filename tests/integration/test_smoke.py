from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


async def test_create_agent_round_trip(
    app_client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    response = await app_client.post("/v1/agents", json={"name": "Support"}, headers=auth)
    assert response.status == 201
    created = await response.json()
    response = await app_client.get(f"/v1/agents/{created['agent_id']}", headers=auth)
    assert (await response.json())["name"] == "Support"
