"""The real `voicebridge serve` with calls up. Graceful drain: SIGTERM refuses new calls and
OPTIONS pings with 503, lets a live call end on its own within `sip_drain_timeout`, hangs up the
call still up when the time runs out (its conversation ends as `shutdown`), and exits 0. And a
call ended through another process's API is hung up by the one that holds it."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.e2e.phone import NUMBER, refused_with, write_pcap
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port
from tests.sipp import SIPP, SippOptions, SippProcess, scenario_path, start_sipp

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

DRAIN_S = 12


@pytest.fixture
async def serve(tmp_path: Path, system_redis_url: str) -> AsyncIterator[ServeProcess]:
    env = environment(
        VOICEBRIDGE_REDIS_URL=system_redis_url,
        VOICEBRIDGE_REDIS_PREFIX="t" + secrets.token_hex(6),
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
        VOICEBRIDGE_SIP_DRAIN_TIMEOUT=str(DRAIN_S),
    )
    process = ServeProcess(env, tmp_path, free_port())
    await process.start()
    yield process
    await process.kill()
    kill_redis_under(tmp_path)


async def conversations(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    listed = await (await http.get(f"{base}/v1/conversations", headers=headers)).json()
    return [
        await (
            await http.get(f"{base}/v1/conversations/{c['conversation_id']}", headers=headers)
        ).json()
        for c in listed["data"]
    ]


async def support_line(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
    made = await http.post(
        f"{base}/v1/agents",
        json={"name": "Support line", "phone_numbers": [NUMBER]},
        headers=headers,
    )
    assert made.status == 201, await made.text()


async def caller_waiting_for_bye(serve: ServeProcess, tmp_path: Path) -> SippProcess:
    """A SIPp call to `serve` that sends a second of silence and waits for the bridge's BYE."""
    return await start_sipp(
        SippOptions(
            scenario_path("call_wait_agent_bye"),
            remote=f"127.0.0.1:{serve.env['VOICEBRIDGE_SIP_PORT']}",
            service=NUMBER,
            keys={"pcap": str(write_pcap(tmp_path, np.zeros(16_000, np.int16)))},
            recv_timeout_ms=60_000,
        ),
        tmp_path / "caller-waits",
    )


async def test_sigterm_drains_live_calls_then_hangs_up_the_rest(
    serve: ServeProcess, tmp_path: Path
) -> None:
    assert serve.bootstrap_key is not None
    # A process on the same Redis, to read the conversations once the drained one is gone.
    reader = ServeProcess(serve.env | {"VOICEBRIDGE_NODE_ID": "reader"}, tmp_path, free_port())
    await reader.start()
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {serve.bootstrap_key}"}
            waited = await drain_with_two_calls(serve, http, headers, tmp_path)
            # The process waited for the drain timeout, not for ever and not less.
            assert DRAIN_S - 1 <= waited <= DRAIN_S + 10, waited
            after = await conversations(http, reader.base_url, headers)
    finally:
        await reader.kill()
    reasons = sorted((c["end_reason"], c["status"]) for c in after)
    assert reasons == [("caller_hangup", "completed"), ("shutdown", "completed")], reasons


async def drain_with_two_calls(
    serve: ServeProcess, http: aiohttp.ClientSession, headers: dict[str, str], tmp_path: Path
) -> float:
    """Two calls up, then SIGTERM: one caller hangs up during the drain, the other waits to be
    hung up. Returns how long the process took to exit after the signal."""
    assert serve.process is not None
    sip_port = int(serve.env["VOICEBRIDGE_SIP_PORT"])
    remote = f"127.0.0.1:{sip_port}"
    await support_line(http, serve.base_url, headers)
    hangs_up = await start_sipp(
        SippOptions(
            scenario_path("call_caller_hangup"),
            remote=remote,
            service=NUMBER,
            extra_args=("-d", "8000"),
        ),
        tmp_path / "caller-hangs-up",
    )
    waits = await caller_waiting_for_bye(serve, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(await conversations(http, serve.base_url, headers)) < 2:
            assert time.monotonic() < deadline, "the calls never became conversations"
            await asyncio.sleep(0.2)
        before = await conversations(http, serve.base_url, headers)
        assert [c["status"] for c in before] == ["active", "active"]

        serve.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.5)
        assert await refused_with(sip_port, NUMBER) == 503
        assert await refused_with(sip_port, NUMBER, "OPTIONS") == 503
        # Readiness agrees with SIP: balancers and orchestrators route around a draining node.
        async with http.get(f"{serve.base_url}/readyz") as ready:
            assert ready.status == 503
            body = await ready.json()
        assert body["draining"] is True and body["reason"] == "draining"

        first = await hangs_up.wait(30)
        second = await waits.wait(30)
        code = await asyncio.wait_for(serve.process.wait(), 30)
        waited = time.monotonic() - signalled
    finally:
        await hangs_up.kill()
        await waits.kill()
    assert first.successful_calls == 1, (first.errors, first.screen)
    assert second.successful_calls == 1, (second.errors, second.screen)
    assert code == 0, "".join(serve.stderr)
    return waited


async def test_ending_a_call_through_another_process_hangs_it_up(
    serve: ServeProcess, tmp_path: Path
) -> None:
    """The REST end reaches the process that holds the call through Redis, which sends BYE."""
    assert serve.bootstrap_key is not None
    headers = {"Authorization": f"Bearer {serve.bootstrap_key}"}
    other = ServeProcess(serve.env | {"VOICEBRIDGE_NODE_ID": "other"}, tmp_path, free_port())
    await other.start()
    sipp = None
    try:
        async with aiohttp.ClientSession() as http:
            await support_line(http, other.base_url, headers)
            sipp = await caller_waiting_for_bye(serve, tmp_path)
            deadline = time.monotonic() + 60
            while not (live := await conversations(http, other.base_url, headers)):
                assert time.monotonic() < deadline, "the call never became a conversation"
                await asyncio.sleep(0.2)
            (conversation,) = live
            ending = await http.post(
                f"{other.base_url}/v1/conversations/{conversation['conversation_id']}/end",
                headers=headers,
            )
            assert ending.status == 200, await ending.text()
            result = await sipp.wait(30)
            assert result.successful_calls == 1, (result.errors, result.screen)
            (after,) = await conversations(http, other.base_url, headers)
    finally:
        if sipp is not None:
            await sipp.kill()
        await other.kill()
    assert (after["end_reason"], after["status"]) == ("api_end", "completed")
