"""Several nodes behind real Kamailio (`voicebridge serve --nodes 2`), called with SIPp:
calls spread over the nodes, a node killed with SIGKILL (the next call fails over inside its
INVITE transaction, the dead node's call ends `node_lost` once), a node drained with SIGTERM
(no new calls, its live call finishes), Kamailio killed mid-call (the call's BYE still
arrives), and a call ended through another node's API."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from bridge.redis_client import connect
from bridge.store import Store
from tests.e2e.cluster import KAMAILIO, Cluster
from tests.e2e.phone import NUMBER, write_pcap
from tests.sipp import SIPP, SippOptions, SippProcess, scenario_path, start_sipp

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed (Debian package sip-tester)"),
    pytest.mark.skipif(KAMAILIO is None, reason="kamailio is not installed (Debian kamailio)"),
]


async def support_line(cluster: Cluster) -> None:
    """The agent the calls reach: NUMBER."""
    async with aiohttp.ClientSession() as http:
        made = await http.post(
            f"{cluster.base_url}/v1/agents",
            json={"name": "Support line", "phone_numbers": [NUMBER]},
            headers=cluster.headers,
        )
        assert made.status == 201, await made.text()


@pytest.fixture
async def cluster(tmp_path: Path, system_redis_url: str) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path, system_redis_url, 2, VOICEBRIDGE_SIP_DRAIN_TIMEOUT="20")
    await running.start()
    try:
        await support_line(running)
        yield running
    finally:
        await running.kill()
        # For post-mortems: what the supervisor, the nodes and Kamailio said.
        (tmp_path / "cluster.log").write_text("\n".join(running.lines) + "\n")


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[Store]:
    redis = connect(cluster.env["VOICEBRIDGE_REDIS_URL"])
    yield Store(redis, cluster.prefix)
    await redis.aclose()


async def calls(
    cluster: Cluster,
    workdir: Path,
    count: int,
    seconds: float,
    scenario: str = "call_caller_hangup",
) -> SippProcess:
    return await start_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{cluster.sip_port}",
            service=NUMBER,
            calls=count,
            rate=10,
            extra_args=("-d", str(int(seconds * 1000))),
            keys={"pcap": str(write_pcap(workdir.parent, np.zeros(16_000, np.int16)))}
            if scenario == "call_wait_agent_bye"
            else {},
            recv_timeout_ms=120_000,
        ),
        workdir,
    )


async def until(
    what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.3
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(every)


async def test_calls_spread_and_a_killed_node_fails_over_and_ends_its_calls_node_lost(
    cluster: Cluster, store: Store, tmp_path: Path
) -> None:
    one, two = cluster.node_id(1), cluster.node_id(2)
    async with aiohttp.ClientSession() as http:
        short = await calls(cluster, tmp_path / "short", 4, 1)
        result = await short.wait(90)
        assert result.successful_calls == 4, (result.errors, result.screen)
        assert await cluster.by_node(http) == {one: 2, two: 2}
        await until("the short calls' conversations end", lambda: _all_ended(cluster, http))

        long = await calls(cluster, tmp_path / "long", 2, 120)
        try:

            async def both_up() -> list[dict[str, Any]]:
                live = [c for c in await cluster.conversations(http) if c["status"] == "active"]
                return live if {c["node"] for c in live} == {one, two} else []

            live = await until("a call up on each node", both_up)
            lost = next(c["conversation_id"] for c in live if c["node"] == one)
            kept = next(c["conversation_id"] for c in live if c["node"] == two)

            async def one_call_each() -> list[dict[str, Any]]:
                nodes: list[dict[str, Any]] = (await cluster.get(http, "/v1/nodes"))["data"]
                return nodes if [n["calls"] for n in nodes] == [1, 1] else []

            nodes = await until("GET /v1/nodes counts the calls", one_call_each, timeout=20)
            assert [(n["node_id"], n["state"], n["max_calls"]) for n in nodes] == [
                (one, "ready", 200),
                (two, "ready", 200),
            ]
            assert [n["http_url"] for n in nodes] == [cluster.node_url(1), cluster.node_url(2)]
            async with http.get(f"{cluster.node_url(1)}/metrics") as scraped:
                assert f'voicebridge_node_calls{{node="{one}"}} 1.0' in await scraped.text()

            cluster.kill_child("node-1")
            # Right after the kill: Kamailio still has node 1 up, so every other call tries it
            # first and must fail over to node 2 within the same INVITE transaction.
            after = await calls(cluster, tmp_path / "after", 2, 1)
            result = await after.wait(90)
            assert result.successful_calls == 2, (result.errors, result.screen)

            async def lost_ended() -> dict[str, Any] | None:
                detail: dict[str, Any] = await cluster.get(http, f"/v1/conversations/{lost}")
                return detail if detail["status"] != "active" else None

            ended = await until("the dead node's call ends", lost_ended, timeout=90)
            assert (ended["status"], ended["end_reason"]) == ("failed", "node_lost")
            assert await cluster.ended_events(store, lost) == 1
            still = await cluster.get(http, f"/v1/conversations/{kept}")
            assert still["status"] == "active", still
        finally:
            await long.kill()
        newest = (await cluster.conversations(http))[:2]
        assert [c["node"] for c in newest] == [two, two]
        assert any("node" in line and "is down" in line for line in cluster.lines)


async def test_a_drained_node_takes_no_new_calls_and_finishes_its_own(
    cluster: Cluster, tmp_path: Path
) -> None:
    one, two = cluster.node_id(1), cluster.node_id(2)
    async with aiohttp.ClientSession() as http:
        long = await calls(cluster, tmp_path / "long", 2, 10)

        async def both_up() -> bool:
            live = [c for c in await cluster.conversations(http) if c["status"] == "active"]
            return {c["node"] for c in live} == {one, two}

        await until("a call up on each node", both_up)
        cluster.kill_child("node-1", signal.SIGTERM)

        async def draining() -> bool:
            nodes = (await cluster.get(http, "/v1/nodes"))["data"]
            return any(n["node_id"] == one and n["state"] == "draining" for n in nodes)

        await until("GET /v1/nodes says node 1 drains", draining, timeout=10)
        # Kamailio's next probe of node 1 gets 503 (VOICEBRIDGE_CLUSTER_PROBE_INTERVAL, 2 s).
        await asyncio.sleep(3)
        after = await calls(cluster, tmp_path / "after", 3, 1)
        result = await after.wait(90)
        assert result.successful_calls == 3, (result.errors, result.screen)
        finished = await long.wait(90)
        assert finished.successful_calls == 2, (finished.errors, finished.screen)
        conversations = await cluster.conversations(http)
        assert [c["node"] for c in conversations[:3]] == [two, two, two]
        drained = next(c for c in conversations if c["node"] == one)
        assert (drained["status"], drained["end_reason"]) == ("completed", "caller_hangup")

    async def stayed_stopped() -> bool:
        return any("node-1 stopped (exit 0); not started again" in x for x in cluster.lines)

    await until("node 1 exits once its call is over", stayed_stopped, timeout=30)


async def test_a_call_outlives_a_kamailio_restart_and_ends_through_another_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        caller = await calls(cluster, tmp_path / "caller", 1, 1, "call_wait_agent_bye")
        try:
            live = await until(
                "the call is up",
                lambda: _active(cluster, http),
            )
            (conversation,) = live
            old = cluster.kill_child("kamailio")

            async def restarted() -> bool:
                try:
                    return cluster.pid_of("kamailio") != old
                except AssertionError:
                    return False

            await until("Kamailio is started again", restarted)
            await asyncio.sleep(1)
            other = 2 if conversation["node"] == cluster.node_id(1) else 1
            ending = await http.post(
                f"{cluster.node_url(other)}/v1/conversations/{conversation['conversation_id']}/end",
                headers=cluster.headers,
            )
            assert ending.status == 200, await ending.text()
            # The holding node's BYE goes through the new Kamailio (Record-Route) to SIPp.
            result = await caller.wait(60)
            assert result.successful_calls == 1, (result.errors, result.screen)
        finally:
            await caller.kill()
    assert await cluster.stop() == 0


async def _active(cluster: Cluster, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    return [c for c in await cluster.conversations(http) if c["status"] == "active"]


async def _all_ended(cluster: Cluster, http: aiohttp.ClientSession) -> bool:
    return not await _active(cluster, http)


async def test_calls_on_every_node_outlive_a_redis_restart_and_are_recorded_after(
    tmp_path: Path,
) -> None:
    """The supervisor's embedded Redis killed mid-call: it is started again on its AOF, and
    the nodes keep their calls and write what happened meanwhile."""
    running = Cluster(tmp_path, None, 2)
    await running.start()
    try:
        await support_line(running)
        async with aiohttp.ClientSession() as http:
            long = await calls(running, tmp_path / "long", 2, 12)

            async def both_up() -> bool:
                live = await _active(running, http)
                return {c["node"] for c in live} == {running.node_id(1), running.node_id(2)}

            await until("a call up on each node", both_up)
            old = running.kill_child("redis")

            async def restarted() -> bool:
                try:
                    return running.pid_of("redis") != old
                except AssertionError:
                    return False

            await until("the embedded Redis is started again", restarted, timeout=30)
            finished = await long.wait(90)
            assert finished.successful_calls == 2, (finished.errors, finished.screen)
            await until("both conversations end", lambda: _all_ended(running, http))
            ended = [(c["status"], c["end_reason"]) for c in await running.conversations(http)]
            assert ended == [("completed", "caller_hangup")] * 2
            after = await calls(running, tmp_path / "after", 1, 1)
            result = await after.wait(60)
            assert result.successful_calls == 1, (result.errors, result.screen)
    finally:
        await running.kill()
        (tmp_path / "cluster.log").write_text("\n".join(running.lines) + "\n")


async def test_three_nodes_share_the_calls_and_the_rest_share_them_when_one_drains(
    tmp_path: Path,
) -> None:
    running = Cluster(tmp_path, None, 3)
    await running.start()
    try:
        await support_line(running)
        one, two, three = (running.node_id(i) for i in (1, 2, 3))
        async with aiohttp.ClientSession() as http:
            first = await calls(running, tmp_path / "first", 6, 1)
            result = await first.wait(90)
            assert result.successful_calls == 6, (result.errors, result.screen)
            assert await running.by_node(http) == {one: 2, two: 2, three: 2}
            await until("the first calls' conversations end", lambda: _all_ended(running, http))

            running.kill_child("node-2", signal.SIGTERM)

            async def gone() -> bool:
                nodes = (await running.get(http, "/v1/nodes"))["data"]
                return two not in {n["node_id"] for n in nodes if n["state"] == "ready"}

            await until("node 2 no longer ready in GET /v1/nodes", gone, timeout=10)
            # Kamailio's next probe of node 2 finds it gone (VOICEBRIDGE_CLUSTER_PROBE_INTERVAL).
            await asyncio.sleep(3)
            second = await calls(running, tmp_path / "second", 4, 1)
            result = await second.wait(90)
            assert result.successful_calls == 4, (result.errors, result.screen)
            spread = await running.by_node(http)
            assert spread[two] == 2 and spread[one] + spread[three] == 8, spread
            assert min(spread[one], spread[three]) >= 3, f"not shared: {spread}"
    finally:
        await running.kill()
        (tmp_path / "cluster.log").write_text("\n".join(running.lines) + "\n")
