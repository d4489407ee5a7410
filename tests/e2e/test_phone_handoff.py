"""agent.handoff on a phone call: the caller presses 0, the built-in agent says its handoff line
and REFERs the caller (SIPp plays the transfer target's side). A target that takes the call ends
the conversation as `transferred`; one that refuses, or accepts and then reports a failure in
its NOTIFY, leaves the caller with the agent, who says so, and the call goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.session import HANDOFF_FAILED_LINE
from bridge.sip.useragent import UserAgent
from bridge.store import Store
from media.wer import word_error_rate
from tests.e2e.phone import NUMBER, Client, ended, make_agent, the_conversation
from tests.e2e.test_voice_conversation import stream_events
from tests.sipp import SIPP, SippOptions, dtmf_to_pcap, run_sipp, scenario_path

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

TARGET = "sip:desk@pbx.example.com"
HANDOFF_LINE = "Let me transfer you to a colleague. One moment, please."


async def hand_off(
    client: Client, ua: UserAgent, auth: dict[str, str], tmp_path: Path, scenario: str
) -> dict[str, Any]:
    """A call to an agent with a handoff target, in which the caller presses 0; the stored
    conversation once it has ended."""
    await make_agent(client, auth, handoff_target=TARGET)
    pcap = tmp_path / "zero.pcap"
    dtmf_to_pcap("0", pcap, duration_ms=120)
    result = await run_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{ua.port}",
            service=NUMBER,
            keys={"pcap": str(pcap)},
            recv_timeout_ms=30_000,
            # After a failed transfer the caller stays on long enough to hear the agent say so.
            extra_args=("-d", "8000"),
        ),
        timeout=90,
        workdir=tmp_path / "sipp",
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    return await the_conversation(client, auth, ended)


def agent_lines(conversation: dict[str, Any]) -> list[str]:
    return [m["content"] for m in conversation["messages"] if m["type"] == "agent"]


async def test_a_target_that_takes_the_call_transfers_the_caller(
    phone: tuple[Client, Any], auth: dict[str, str], tmp_path: Path, store: Store
) -> None:
    client, ua = phone
    conversation = await hand_off(client, ua, auth, tmp_path, "refer_target_accepts")

    assert conversation["status"] == "transferred"
    assert conversation["end_reason"] == "transferred"
    assert conversation["metrics"]["resolution_status"] == "handed_off"
    said = agent_lines(conversation)
    assert word_error_rate(HANDOFF_LINE, said[-1]) == 0, said
    events = await stream_events(store, conversation["conversation_id"])
    handoffs = [e["data"] for e in events if e["event"] == "agent.handoff"]
    assert [(h["target"], h["status"]) for h in handoffs] == [(TARGET, "succeeded")]
    assert [e["event"] for e in events if e["event"] == "error.occurred"] == []
    assert events[-1]["event"] == "conversation.ended"
    assert ua.calls == []


@pytest.mark.parametrize(
    ("scenario", "why"),
    [("refer_target_rejects", "603"), ("refer_target_fails_later", "486")],
    ids=["refer-refused", "notify-reports-busy"],
)
async def test_a_failed_transfer_keeps_the_caller_with_the_agent(
    phone: tuple[Client, Any],
    auth: dict[str, str],
    tmp_path: Path,
    store: Store,
    scenario: str,
    why: str,
) -> None:
    client, ua = phone
    conversation = await hand_off(client, ua, auth, tmp_path, scenario)

    # The caller hung up after hearing the agent out: the call was never released by us.
    assert conversation["status"] == "completed"
    assert conversation["end_reason"] == "caller_hangup"
    said = agent_lines(conversation)
    handoff_at = next(i for i, line in enumerate(said) if word_error_rate(HANDOFF_LINE, line) == 0)
    assert word_error_rate(HANDOFF_FAILED_LINE, said[handoff_at + 1]) == 0, said
    events = await stream_events(store, conversation["conversation_id"])
    handoffs = [e["data"] for e in events if e["event"] == "agent.handoff"]
    assert [(h["target"], h["status"]) for h in handoffs] == [(TARGET, "failed")]
    assert why in handoffs[0]["reason"], handoffs[0]
    errors = [e["data"]["error"] for e in events if e["event"] == "error.occurred"]
    assert [e["code"] for e in errors] == ["handoff_failed"]
    assert ua.calls == []
