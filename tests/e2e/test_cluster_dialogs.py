"""In-dialog requests of calls placed through real Kamailio reach the node that holds the call
(Record-Route, both ways): re-INVITE hold and resume, session refresh by UPDATE and re-INVITE,
keys relayed as SIP INFO, and the REFER handoff with its NOTIFYs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.cluster import KAMAILIO, Cluster
from tests.e2e.phone import NUMBER, ended
from tests.e2e.test_cluster import until
from tests.e2e.test_phone_call import pressed
from tests.sipp import SIPP, SippOptions, dtmf_to_pcap, run_sipp, scenario_path, start_sipp

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed (Debian package sip-tester)"),
    pytest.mark.skipif(KAMAILIO is None, reason="kamailio is not installed (Debian kamailio)"),
]

TRANSFERS = "+15550101"


@pytest.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, system_redis_url: str
) -> AsyncIterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster-dialogs")
    running = Cluster(directory, system_redis_url, 2)
    await running.start()
    try:
        async with aiohttp.ClientSession() as http:
            for body in (
                {"name": "Support line", "phone_numbers": [NUMBER]},
                {
                    "name": "Transfers",
                    "phone_numbers": [TRANSFERS],
                    "handoff_target": "sip:desk@pbx.example.com",
                },
            ):
                made = await http.post(
                    f"{running.base_url}/v1/agents", json=body, headers=running.headers
                )
                assert made.status == 201, await made.text()
        yield running
    finally:
        await running.kill()
        (directory / "cluster.log").write_text("\n".join(running.lines) + "\n")


async def call(
    cluster: Cluster,
    tmp_path: Path,
    scenario: str,
    pause_ms: int,
    *,
    service: str = NUMBER,
    keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One call through Kamailio; the conversation it made, once ended."""
    result = await run_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{cluster.sip_port}",
            service=service,
            keys=keys or {},
            recv_timeout_ms=30_000,
            extra_args=("-d", str(pause_ms)),
        ),
        timeout=90,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    async with aiohttp.ClientSession() as http:

        async def newest_ended() -> dict[str, Any] | None:
            newest = (await cluster.conversations(http))[0]
            return newest if ended(newest) else None

        conversation: dict[str, Any] = await until("the call's conversation ends", newest_ended)
    return conversation


@pytest.mark.parametrize(
    ("scenario", "pause_ms"), [("reinvite_hold_resume", 500), ("session_refresh", 1500)]
)
async def test_in_dialog_requests_reach_the_node_through_kamailio(
    cluster: Cluster, tmp_path: Path, scenario: str, pause_ms: int
) -> None:
    conversation = await call(cluster, tmp_path, scenario, pause_ms)
    assert conversation["end_reason"] == "caller_hangup"
    assert conversation["node"] in (cluster.node_id(1), cluster.node_id(2))


async def test_keys_relayed_as_sip_info_reach_the_agent(cluster: Cluster, tmp_path: Path) -> None:
    conversation = await call(cluster, tmp_path, "dtmf_sip_info", 2000)
    assert pressed(conversation) == ["5", "7"]


async def test_a_handoff_refers_the_caller_through_kamailio(
    cluster: Cluster, tmp_path: Path
) -> None:
    pcap = tmp_path / "zero.pcap"
    dtmf_to_pcap("0", pcap, duration_ms=120)
    conversation = await call(
        cluster,
        tmp_path,
        "refer_target_accepts",
        8000,
        service=TRANSFERS,
        keys={"pcap": str(pcap)},
    )
    assert (conversation["status"], conversation["end_reason"]) == ("transferred", "transferred")


TORTURE = Path(__file__).resolve().parents[1] / "data" / "sip-torture"


async def test_the_nodes_survive_the_torture_set_sent_to_kamailio_with_a_call_up(
    cluster: Cluster, tmp_path: Path
) -> None:
    """What Kamailio lets through reaches the nodes; whatever it is, they stay up, the live
    call ends normally, and a new call is answered."""
    before = {name: cluster.pid_of(name) for name in ("node-1", "node-2", "kamailio")}
    caller = await start_sipp(
        SippOptions(
            scenario_path("call_caller_hangup"),
            remote=f"127.0.0.1:{cluster.sip_port}",
            service=NUMBER,
            extra_args=("-d", "6000"),
        ),
        tmp_path / "caller",
    )
    try:
        await asyncio.sleep(1)
        messages = sorted(TORTURE.glob("rfc*/*.dat"))
        assert len(messages) >= 60
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", cluster.sip_port)
        )
        try:
            for message in messages:
                transport.sendto(message.read_bytes())
                await asyncio.sleep(0.01)
        finally:
            transport.close()
        result = await caller.wait(60)
        assert result.successful_calls == 1, (result.errors, result.screen)
    finally:
        await caller.kill()
    after = await call(cluster, tmp_path / "after", "call_caller_hangup", 1000)
    assert after["end_reason"] == "caller_hangup"
    assert {name: cluster.pid_of(name) for name in before} == before
    assert not [line for line in cluster.lines if "Traceback" in line or " ERROR " in line]
