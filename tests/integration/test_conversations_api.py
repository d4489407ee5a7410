from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from bridge import clock, ids
from bridge.store import Store
from bridge.store.conversations import new_message
from bridge.store_writer import StoreWriter

Client = TestClient[Any, Any]


async def _agent(client: Client, auth: dict[str, str]) -> str:
    response = await client.post(
        "/v1/agents", json={"name": "Support", "language": "en-GB"}, headers=auth
    )
    agent_id: str = (await response.json())["agent_id"]
    return agent_id


async def _conversation(
    client: Client, auth: dict[str, str], agent_id: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/conversations",
        json={"agent_id": agent_id, "user_id": "user_1", **fields},
        headers=auth,
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _events(store: Store) -> list[dict[str, Any]]:
    entries = await store.redis.xrange(store.keys.events)
    return [json.loads(fields["body"]) for _id, fields in entries]


async def test_create_gives_a_token_for_this_conversation_only(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    created = await _conversation(app_client, auth, agent_id)
    cid = created["conversation_id"]
    assert ids.is_id(cid, ids.CONVERSATION)
    details = created["connection_details"]
    assert details["websocket_url"] == f"wss://voice.example.com/v1/ws/{cid}"
    assert details["token"].startswith("cvt_")
    assert clock.parse_iso(details["expires_at"]) > clock.parse_iso(created["created_at"])
    assert await store.conversations.resolve_token(details["token"]) == cid
    assert await store.conversations.resolve_token(details["token"] + "x") is None
    other = await _conversation(app_client, auth, agent_id)
    assert other["connection_details"]["token"] != details["token"]


async def test_get_shows_messages_metrics_and_inherited_language(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id, initial_context={"plan": "gold"}))[
        "conversation_id"
    ]
    await store.conversations.append_message(cid, "agent", "Hello, how can I help?")
    await store.conversations.append_message(cid, "user", "What are your hours?")
    response = await app_client.get(f"/v1/conversations/{cid}", headers=auth)
    body = await response.json()
    assert body["status"] == "active"
    assert body["channel"] == "websocket"
    assert body["language"] == "en-GB"
    assert body["initial_context"] == {"plan": "gold"}
    assert [(m["type"], m["content"]) for m in body["messages"]] == [
        ("agent", "Hello, how can I help?"),
        ("user", "What are your hours?"),
    ]
    assert all(ids.is_id(m["id"], ids.MESSAGE) for m in body["messages"])
    assert set(body["metrics"]) >= {"sentiment_score", "user_satisfaction", "resolution_status"}
    assert body["duration"] >= 0


async def test_end_is_idempotent_and_emits_once(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id))["conversation_id"]
    end = {"reason": "user_ended", "feedback": {"rating": 4, "comments": "ok"}}
    first = await app_client.post(f"/v1/conversations/{cid}/end", json=end, headers=auth)
    assert first.status == 200
    ended = await first.json()
    assert (ended["status"], ended["end_reason"]) == ("completed", "user_ended")
    assert ended["feedback"] == {"rating": 4, "comments": "ok"}
    assert ended["ended_at"].endswith("Z")
    again = await app_client.post(
        f"/v1/conversations/{cid}/end", json={"reason": "other"}, headers=auth
    )
    assert again.status == 200
    repeated = await again.json()
    assert (repeated["end_reason"], repeated["ended_at"]) == ("user_ended", ended["ended_at"])
    assert [e["event"] for e in await _events(store)] == [
        "conversation.started",
        "conversation.ended",
    ]
    response = await app_client.post(f"/v1/conversations/{cid}/end", headers=auth)
    assert response.status == 200


async def test_feedback_after_the_end_is_kept_once(
    app_client: Client, auth: dict[str, str]
) -> None:
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id))["conversation_id"]
    await app_client.post(f"/v1/conversations/{cid}/end", headers=auth)
    late = {"reason": "api_end", "feedback": {"rating": 2}}
    response = await app_client.post(f"/v1/conversations/{cid}/end", json=late, headers=auth)
    assert (await response.json())["feedback"]["rating"] == 2
    later = {"reason": "api_end", "feedback": {"rating": 5}}
    response = await app_client.post(f"/v1/conversations/{cid}/end", json=later, headers=auth)
    assert (await response.json())["feedback"]["rating"] == 2


async def test_messages_after_the_end_are_refused(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id))["conversation_id"]
    await app_client.post(f"/v1/conversations/{cid}/end", headers=auth)
    try:
        await store.conversations.append_message(cid, "user", "late")
    except Exception as exc:
        assert getattr(exc, "code", None) == "conversation_not_active"
    else:
        raise AssertionError("a message was appended to an ended conversation")


async def test_events_carry_the_published_body(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    created = await _conversation(app_client, auth, agent_id, initial_context={"customer": "Ann"})
    cid = created["conversation_id"]
    await store.conversations.append_message(cid, "user", "hi")
    await app_client.post(
        f"/v1/conversations/{cid}/end", json={"feedback": {"rating": 5}}, headers=auth
    )
    started, message, ended = await _events(store)
    for event in (started, message, ended):
        assert set(event) == {"id", "event", "created_at", "data"}
        assert ids.is_id(event["id"], ids.EVENT)
        assert event["created_at"].endswith("Z")
        assert event["data"]["conversation_id"] == cid
        assert event["data"]["agent_id"] == agent_id
        assert event["data"]["user_id"] == "user_1"
        assert event["data"]["initial_context"] == {"customer": "Ann"}
    assert message["event"] == "message.received"
    assert message["data"]["message"]["content"] == "hi"
    assert ended["event"] == "conversation.ended"
    assert ended["data"]["end_reason"] == "api_end"
    assert ended["data"]["feedback"]["rating"] == 5
    assert "metrics" in ended["data"] and ended["data"]["duration"] >= 0


async def test_list_filters_and_pages(app_client: Client, auth: dict[str, str]) -> None:
    first_agent = await _agent(app_client, auth)
    second_agent = await _agent(app_client, auth)
    made = []
    for i in range(6):
        agent_id = first_agent if i % 2 == 0 else second_agent
        made.append(await _conversation(app_client, auth, agent_id, user_id=f"user_{i % 3}"))
    await app_client.post(f"/v1/conversations/{made[0]['conversation_id']}/end", headers=auth)

    async def listed(**params: str) -> list[str]:
        response = await app_client.get("/v1/conversations", params=params, headers=auth)
        assert response.status == 200, await response.text()
        return [c["conversation_id"] for c in (await response.json())["data"]]

    ids_made = [c["conversation_id"] for c in made]
    assert await listed(agent_id=first_agent) == [ids_made[4], ids_made[2], ids_made[0]]
    assert await listed(user_id="user_0") == [ids_made[3], ids_made[0]]
    assert await listed(status="completed") == [ids_made[0]]
    assert await listed(status="active", agent_id=first_agent) == [ids_made[4], ids_made[2]]
    cut = made[3]["created_at"]
    assert set(await listed(created_before=cut)) >= {ids_made[0], ids_made[1]}
    assert ids_made[3] in await listed(created_after=cut)
    assert ids_made[0] not in await listed(created_after=cut)
    response = await app_client.get("/v1/conversations", params={"status": "weird"}, headers=auth)
    assert response.status == 422


async def test_unknown_agent_is_404(app_client: Client, auth: dict[str, str]) -> None:
    response = await app_client.post(
        "/v1/conversations",
        json={"agent_id": "agt_01m84zwssjstbq0hmaebbk1prb", "user_id": "u"},
        headers=auth,
    )
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "agent_not_found"


async def test_unknown_conversation_is_404(app_client: Client, auth: dict[str, str]) -> None:
    for method, path in (("GET", ""), ("POST", "/end")):
        response = await app_client.request(
            method, f"/v1/conversations/conv_01m84zwssjstbq0hmaebbk1prb{path}", headers=auth
        )
        assert response.status == 404


async def test_ending_as_resolved_is_believed_without_messages(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id))["conversation_id"]
    response = await app_client.post(
        f"/v1/conversations/{cid}/end", json={"reason": "resolved"}, headers=auth
    )
    assert (await response.json())["metrics"]["resolution_status"] == "resolved"
    fetched = await (await app_client.get(f"/v1/conversations/{cid}", headers=auth)).json()
    assert fetched["metrics"]["resolution_status"] == "resolved"
    ended = [e for e in await _events(store) if e["event"] == "conversation.ended"]
    assert ended[0]["data"]["metrics"]["resolution_status"] == "resolved"


async def test_a_message_whose_reply_was_lost_is_stored_once_when_retried(
    app_client: Client, auth: dict[str, str], store: Store
) -> None:
    """Redis can apply a write and go away before its reply arrives; the writer then applies
    the same message again, which must not say it twice nor announce it twice."""
    agent_id = await _agent(app_client, auth)
    cid = (await _conversation(app_client, auth, agent_id))["conversation_id"]
    said = new_message("agent", "Hello! How can I help you today?")
    replies_lost = 2

    async def write() -> None:
        nonlocal replies_lost
        await store.conversations.append(cid, said)
        if replies_lost:
            replies_lost -= 1
            raise ConnectionError("Connection closed by server.")

    writer = StoreWriter("test", lambda _e: None)
    writer.start()
    writer.put(write)
    writer.put(lambda: store.conversations.append_message(cid, "user", "hi"))
    assert await writer.close(10)
    assert writer.retries == 2
    detail = await (await app_client.get(f"/v1/conversations/{cid}", headers=auth)).json()
    assert [(m["id"], m["type"]) for m in detail["messages"]] == [
        (said.id, "agent"),
        (detail["messages"][1]["id"], "user"),
    ]
    assert detail["messages"][0]["timestamp"] == said.timestamp
    kinds = [event["event"] for event in await _events(store)]
    assert kinds == ["conversation.started", "message.received", "message.received"]
