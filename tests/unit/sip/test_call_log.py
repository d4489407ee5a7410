"""Each call writes one INFO line for what became of it (refused, or answered then ended), on
the `bridge.calls` logger, with its fields as record attributes for the JSON log format."""

from __future__ import annotations

import asyncio

import pytest

from bridge.sip.call_interfaces import RejectCall
from tests.unit.sip.test_call import Handler, Harness, offer, settle


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.calls"]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="bridge.calls")


async def test_an_answered_call_logs_its_answer_then_its_end_with_the_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(Handler())
    await h.establish()
    h.clock.advance(12.5)
    h.send(h.request("BYE"))
    await settle()
    assert lines(caplog) == [
        "call call-1 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 answered by agent bot (PCMU)",
        "call call-1 ended: caller_hangup after 12.5 s",
    ]
    ended = [r for r in caplog.records if r.name == "bridge.calls"][-1]
    assert (ended.call_id, ended.reason, ended.duration_s) == (  # type: ignore[attr-defined]
        "call-1",
        "caller_hangup",
        12.5,
    )


async def test_a_refused_call_logs_the_status_and_why_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(Handler(decision=RejectCall(404, why="no agent answers 1234")))
    await h.invite()
    assert lines(caplog) == [
        "call call-1 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 refused: "
        "404 no agent answers 1234"
    ]
    (record,) = [r for r in caplog.records if r.name == "bridge.calls"]
    assert (record.status, record.caller) == (404, "sip:alice@127.0.0.1")  # type: ignore[attr-defined]


async def test_an_offer_without_a_common_codec_is_logged_with_the_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(Handler())
    body = offer().replace("RTP/AVP 0 8 101", "RTP/AVP 18").replace("a=rtpmap:0", "a=x:0")
    await h.invite(body=body)
    (line,) = lines(caplog)
    assert " refused: 488 Not Acceptable Here: 30" in line, line


async def test_a_caller_who_hangs_up_while_it_rings_is_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hold = asyncio.Event()
    h = Harness(Handler(hold=hold))
    await h.invite()
    h.send(h.request("CANCEL", cseq=1, branch="INVITE1"))
    hold.set()
    await settle()
    assert lines(caplog) == ["call call-1 ended before it was answered: caller_hangup"]


async def test_calls_refused_by_the_user_agent_say_why(caplog: pytest.LogCaptureFixture) -> None:
    full = Harness(Handler(), max_calls=1)
    await full.establish()
    full.send(
        full.request("INVITE", body=offer(), cseq=1, branch="i2", call_id="call-2", in_dialog=False)
    )
    await settle()
    draining = Harness(Handler())
    draining.ua.drain()
    await draining.invite()
    short = Harness(Handler())
    await short.invite("Session-Expires: 30", "Supported: timer")
    loading = Harness(Handler())
    loading.ua.not_ready = "speech models loading"
    await loading.invite()
    assert lines(caplog)[1:] == [
        "call call-2 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 refused: "
        "503 at capacity (1 calls)",
        "call call-1 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 refused: 503 draining",
        "call call-1 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 refused: "
        "422 session interval below our minimum of 90 s",
        "call call-1 from sip:alice@127.0.0.1 to sip:bot@127.0.0.1 refused: "
        "503 speech models loading",
    ]
