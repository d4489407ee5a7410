"""Which agent takes a call, and who the caller is: the dialed number picks the agent (or the
configured default agent); a number nobody takes is 404, a paused agent's 480; the caller's
identity comes from P-Asserted-Identity only when the source is trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import StartUserAgent
from tests.e2e.phone import NUMBER, Client, ended, make_agent, refused_with, the_conversation
from tests.sipp import SIPP, SippOptions, run_sipp, scenario_path, start_sipp

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

ASSERTED = "+15551234567"


async def call(
    port: int, service: str, tmp_path: Path, scenario: str = "call_caller_hangup"
) -> None:
    result = await run_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{port}",
            service=service,
            keys={"pai": f"sip:{ASSERTED}@pbx.example.com"},
            extra_args=("-d", "1500"),
        ),
        timeout=60,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)


async def test_a_number_nobody_takes_is_not_found_and_a_paused_agents_unavailable(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str]
) -> None:
    ua = await start_user_agent()
    agent = await make_agent(voice_client, auth)
    assert await refused_with(ua.port, "+15559999999") == 404
    paused = await voice_client.patch(
        f"/v1/agents/{agent['agent_id']}", json={"status": "inactive"}, headers=auth
    )
    assert paused.status == 200, await paused.text()
    assert await refused_with(ua.port, NUMBER) == 480
    listed = await (await voice_client.get("/v1/conversations", headers=auth)).json()
    assert listed["data"] == []


async def test_the_default_agent_takes_numbers_nobody_claims(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str], tmp_path: Path
) -> None:
    await make_agent(voice_client, auth)
    fallback = await make_agent(
        voice_client, auth, name="Front desk", phone_numbers=[], custom_responses={}
    )
    ua = await start_user_agent(default_agent_id=fallback["agent_id"])
    await call(ua.port, "+15559999999", tmp_path)
    conversation = await the_conversation(voice_client, auth, ended)
    assert conversation["agent_id"] == fallback["agent_id"]
    assert conversation["call"]["to"].startswith("sip:+15559999999@")


@pytest.mark.parametrize(
    ("trusted", "caller"),
    [(("127.0.0.0/8",), ASSERTED), (("10.0.0.0/8",), "anonymous")],
    ids=["trusted-source", "untrusted-source"],
)
async def test_the_caller_is_who_a_trusted_pbx_asserts(
    voice_client: Client,
    start_user_agent: StartUserAgent,
    auth: dict[str, str],
    tmp_path: Path,
    trusted: tuple[str, ...],
    caller: str,
) -> None:
    ua = await start_user_agent(sip_trusted_networks=trusted)
    await make_agent(voice_client, auth)
    await call(ua.port, NUMBER, tmp_path, "call_identity")
    conversation = await the_conversation(voice_client, auth, ended)
    assert conversation["user_id"] == caller
    assert conversation["call"]["from"] == "sip:anonymous@anonymous.invalid"


async def test_a_full_bridge_refuses_new_calls_with_503(
    voice_client: Client, start_user_agent: StartUserAgent, auth: dict[str, str], tmp_path: Path
) -> None:
    ua = await start_user_agent(sip_max_calls=1)
    await make_agent(voice_client, auth)
    holding = await start_sipp(
        SippOptions(
            scenario_path("call_caller_hangup"),
            remote=f"127.0.0.1:{ua.port}",
            service=NUMBER,
            extra_args=("-d", "4000"),
        ),
        tmp_path / "sipp",
    )
    try:
        await the_conversation(voice_client, auth, lambda c: c["status"] == "active")
        assert await refused_with(ua.port, NUMBER) == 503
        assert await refused_with(ua.port, NUMBER, "OPTIONS") == 503
        result = await holding.wait(30)
    finally:
        await holding.kill()
    assert result.successful_calls == 1, (result.errors, result.screen)
    await the_conversation(voice_client, auth, ended)
    # The call is over: the bridge takes calls again.
    assert await refused_with(ua.port, "+15559999999") == 404
