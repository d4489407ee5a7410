"""What the real `voicebridge serve` logs at INFO with VOICEBRIDGE_LOG_FORMAT=json: every stderr
line a JSON object; one line per call answered, refused and ended, per conversation started and
ended, per failed webhook delivery attempt and dead letter, per node start and drain; and no line
with a secret, a token or what was said."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.phone import GREETING, NUMBER, refused_with
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port
from tests.sipp import SIPP, SippOptions, scenario_path, start_sipp

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

SECRET = "whsec_" + secrets.token_hex(12)
HOOK_CREDENTIAL = "hook" + secrets.token_hex(8)
CUSTOMER = "Zebulon" + secrets.token_hex(4)


@pytest.fixture
async def serve(tmp_path: Path, system_redis_url: str) -> AsyncIterator[ServeProcess]:
    env = environment(
        VOICEBRIDGE_REDIS_URL=system_redis_url,
        VOICEBRIDGE_REDIS_PREFIX="t" + secrets.token_hex(6),
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
        VOICEBRIDGE_LOG_FORMAT="json",
        VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE="true",
        VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE="0.2",
        VOICEBRIDGE_WEBHOOK_TIMEOUT="2",
    )
    process = ServeProcess(env, tmp_path, free_port())
    await process.start()
    yield process
    await process.kill()
    kill_redis_under(tmp_path)


def entries(serve: ServeProcess) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be one JSON object."""
    parsed = []
    for line in "".join(serve.stderr).splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        parsed.append(entry)
    return parsed


async def wait_for_entries(serve: ServeProcess, count: int, match: str) -> None:
    deadline = time.monotonic() + 60
    while sum(match in e["msg"] for e in entries(serve)) < count:
        assert time.monotonic() < deadline, f"never logged {count} × {match!r}"
        await asyncio.sleep(0.2)


async def test_one_json_line_per_thing_that_happened_and_nothing_secret(
    serve: ServeProcess, tmp_path: Path
) -> None:
    assert serve.bootstrap_key is not None and serve.process is not None
    headers = {"Authorization": f"Bearer {serve.bootstrap_key}"}
    base = serve.base_url
    sip_port = int(serve.env["VOICEBRIDGE_SIP_PORT"])
    async with aiohttp.ClientSession() as http:
        hook = await http.post(
            f"{base}/v1/webhooks",
            json={
                # Nobody listens there: every delivery fails, then becomes a dead letter.
                "url": f"http://127.0.0.1:{free_port()}/hook?token={HOOK_CREDENTIAL}",
                "events": ["conversation.ended"],
                "secret": SECRET,
            },
            headers=headers,
        )
        assert hook.status == 201, await hook.text()
        made = await http.post(
            f"{base}/v1/agents",
            json={
                "name": "Support line",
                "phone_numbers": [NUMBER],
                "custom_responses": {"greeting": GREETING},
            },
            headers=headers,
        )
        assert made.status == 201, await made.text()
        agent_id = (await made.json())["agent_id"]

        caller = await start_sipp(
            SippOptions(
                scenario_path("call_caller_hangup"),
                remote=f"127.0.0.1:{sip_port}",
                service=NUMBER,
                extra_args=("-d", "3000"),
            ),
            tmp_path / "caller",
        )
        result = await caller.wait(90)
        assert result.successful_calls == 1, (result.errors, result.screen)
        assert await refused_with(sip_port, "+15559999") == 404

        created = await http.post(
            f"{base}/v1/conversations",
            json={
                "agent_id": agent_id,
                "user_id": "caller_1",
                "initial_context": {"customer_name": CUSTOMER},
            },
            headers=headers,
        )
        assert created.status == 201, await created.text()
        body = await created.json()
        web_id, token = body["conversation_id"], body["connection_details"]["token"]
        ended = await http.post(
            f"{base}/v1/conversations/{web_id}/end", json={"reason": "api_end"}, headers=headers
        )
        assert ended.status == 200, await ended.text()
        await wait_for_entries(serve, 2, "dead letter")

    code = await serve.stop(signal.SIGTERM, timeout=30)
    assert code == 0
    logged = entries(serve)
    messages = [e["msg"] for e in logged]

    answered = [e for e in logged if e["logger"] == "bridge.calls" and "answered" in e["msg"]]
    call_id = answered[0]["call_id"]
    assert [e["agent_id"] for e in answered] == [agent_id]
    assert answered[0]["codec"] == "PCMU" and answered[0]["callee"].startswith(f"sip:{NUMBER}@")
    call_ended = [e for e in logged if e.get("call_id") == call_id and "ended" in e["msg"]]
    assert [e["reason"] for e in call_ended] == ["caller_hangup"]
    assert call_ended[0]["duration_s"] > 2
    refused = [e for e in logged if "refused" in e["msg"]]
    assert [(e["status"], e["why"]) for e in refused] == [(404, "no agent answers +15559999")]

    started = [e for e in logged if e["logger"] == "bridge.conversations" and "started" in e["msg"]]
    finished = [e for e in logged if e["logger"] == "bridge.conversations" and "ended" in e["msg"]]
    assert sorted(e["channel"] for e in started) == ["phone", "websocket"]
    assert sorted(e["conversation_id"] for e in started) == sorted(
        e["conversation_id"] for e in finished
    )
    assert {e["conversation_id"]: e["reason"] for e in finished}[web_id] == "api_end"

    failures = [e for e in logged if e["logger"] == "api.delivery.worker"]
    dead = [e for e in failures if "dead letter" in e["msg"]]
    assert len(dead) == 2 and len({e["delivery_id"] for e in dead}) == 2
    retried = [e for e in failures if "next attempt" in e["msg"]]
    assert sorted(e["delivery_id"] for e in retried) == sorted(e["delivery_id"] for e in dead)
    assert all(e["level"] == "WARNING" and e["attempt"] >= 1 for e in failures)

    node = serve.env.get("VOICEBRIDGE_NODE_ID")
    for what in ("started", "ready", "draining", "stopped"):
        assert any(m.startswith("node ") and f" {what}" in m for m in messages), (what, node)

    text = "".join(serve.stderr)
    secret_part = serve.bootstrap_key.rsplit("_", 1)[-1]
    for leaked in (serve.bootstrap_key, secret_part, SECRET, token, HOOK_CREDENTIAL, CUSTOMER):
        assert leaked not in text, leaked
    assert GREETING not in text and "How can I help" not in text
