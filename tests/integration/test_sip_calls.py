"""The user agent against SIPp over loopback: each scenario of sipp-scenarios/ that needs no RTP
from us, with a fake media endpoint and a handler whose behaviour the Request-URI user picks."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.sip.call import Call
from bridge.sip.call_interfaces import (
    AcceptCall,
    EndReason,
    RejectCall,
    RouteDecision,
    TransferOutcome,
    TransferResult,
)
from bridge.sip.message import Request
from bridge.sip.offer_answer import NegotiatedMedia
from bridge.sip.uri import NameAddr, SipUri
from bridge.sip.useragent import UserAgent, UserAgentConfig
from tests.ports import free_port
from tests.sipp import (
    SIPP,
    SippOptions,
    SippResult,
    run_sipp,
    scenario_path,
    wav_to_pcap,
)

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

TRANSFER_TARGET = "sip:human@127.0.0.1:5099"


class FakeMedia:
    def __init__(self) -> None:
        self.local_address = "127.0.0.1"
        self.local_port = free_port()
        self.applied: list[NegotiatedMedia] = []
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    def apply(self, media: NegotiatedMedia) -> None:
        self.applied.append(media)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Handler:
    """Routes by Request-URI user: `slow` rings for 10 s before answering, `hangup` answers and
    hangs up after 2 s, `refer` answers and transfers after 1 s, `nobody` is not found."""

    calls: list[Call] = field(default_factory=list)
    established: list[Call] = field(default_factory=list)
    ended: dict[str, EndReason] = field(default_factory=dict)
    transfers: list[TransferResult] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def route(self, invite: Request, caller: NameAddr) -> RouteDecision:
        user = invite.uri.user if isinstance(invite.uri, SipUri) else None
        if user == "nobody":
            return RejectCall(404)
        if user == "slow":
            await asyncio.sleep(10)
        return AcceptCall(agent=user or "default", listener=self)

    def call_established(self, call: Call) -> None:
        self.established.append(call)
        user = call.callee.uri.user if isinstance(call.callee.uri, SipUri) else None
        if user == "hangup":
            self._spawn(self._hangup_later(call))
        elif user == "refer":
            self._spawn(self._transfer_later(call))

    def dtmf(self, call: Call, digit: str, duration_ms: int | None) -> None:
        self.digits.append(digit)

    def call_ended(self, call: Call, reason: EndReason) -> None:
        self.ended[call.call_id] = reason

    def _spawn(self, coroutine: object) -> None:
        assert asyncio.iscoroutine(coroutine)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _hangup_later(self, call: Call) -> None:
        await asyncio.sleep(2)
        call.hangup(EndReason.AGENT_HANGUP)

    async def _transfer_later(self, call: Call) -> None:
        await asyncio.sleep(1)
        result = await call.transfer(TRANSFER_TARGET)
        self.transfers.append(result)
        if result.succeeded:
            call.hangup(EndReason.TRANSFERRED)


@pytest.fixture
async def agent() -> AsyncIterator[tuple[UserAgent, Handler]]:
    handler = Handler()
    ua = UserAgent(handler, FakeMedia, UserAgentConfig(host="127.0.0.1", port=0))
    await ua.start()
    yield ua, handler
    await ua.close()


@pytest.fixture(scope="module")
def silence_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pcap")
    wav_path = directory / "silence.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8000)
    pcap = directory / "silence.pcap"
    wav_to_pcap(wav_path, pcap, "PCMU")
    return pcap


async def sipp(
    ua: UserAgent,
    scenario: str,
    service: str,
    tmp_path: Path,
    *,
    timeout: float = 30.0,
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    recv_timeout_ms: int | None = None,
) -> SippResult:
    result = await run_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{ua.port}",
            service=service,
            keys=keys or {},
            recv_timeout_ms=recv_timeout_ms,
            extra_args=extra,
        ),
        timeout=timeout,
        workdir=tmp_path / scenario,
    )
    assert result.successful_calls == 1, (result.errors, result.screen)
    assert result.failed_calls == 0
    return result


async def until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    for _ in range(int(timeout * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_call_caller_hangup(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, handler = agent
    await sipp(ua, "call_caller_hangup", "bot", tmp_path, extra=("-d", "500"))
    await until(lambda: len(handler.ended) == 1)
    assert list(handler.ended.values()) == [EndReason.CALLER_HANGUP]
    assert len(handler.established) == 1
    media = handler.established[0].media
    assert isinstance(media, FakeMedia) and media.applied and media.closed
    assert ua.calls == []


async def test_call_wait_agent_bye(
    agent: tuple[UserAgent, Handler], tmp_path: Path, silence_pcap: Path
) -> None:
    ua, handler = agent
    await sipp(
        ua,
        "call_wait_agent_bye",
        "hangup",
        tmp_path,
        keys={"pcap": str(silence_pcap)},
        recv_timeout_ms=10000,
    )
    await until(lambda: len(handler.ended) == 1)
    assert list(handler.ended.values()) == [EndReason.AGENT_HANGUP]


async def test_cancel_before_answer(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, handler = agent
    await sipp(ua, "cancel_before_answer", "slow", tmp_path)
    assert handler.established == []
    assert ua.calls == []


async def test_options_ping(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, _ = agent
    await sipp(ua, "options_ping", "bot", tmp_path)


async def test_invite_no_sdp(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, handler = agent
    await sipp(ua, "invite_no_sdp", "bot", tmp_path, extra=("-d", "500"))
    await until(lambda: len(handler.ended) == 1)
    media = handler.established[0].media
    assert isinstance(media, FakeMedia)
    assert [applied.codec.name for applied in media.applied] == ["PCMU"]


async def test_reinvite_hold_resume(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, handler = agent
    await sipp(ua, "reinvite_hold_resume", "bot", tmp_path, extra=("-d", "300"))
    await until(lambda: len(handler.ended) == 1)
    media = handler.established[0].media
    assert isinstance(media, FakeMedia)
    assert [applied.on_hold for applied in media.applied] == [False, True, False]


async def test_session_refresh(agent: tuple[UserAgent, Handler], tmp_path: Path) -> None:
    ua, handler = agent
    await sipp(ua, "session_refresh", "bot", tmp_path, extra=("-d", "500"))
    await until(lambda: len(handler.ended) == 1)
    assert list(handler.ended.values()) == [EndReason.CALLER_HANGUP]


@pytest.mark.parametrize(
    "scenario",
    [
        "malformed_bad_cseq",
        "malformed_content_length",
        "malformed_garbage",
        "max_forwards_zero",
        "unknown_method",
    ],
)
async def test_rejections(agent: tuple[UserAgent, Handler], tmp_path: Path, scenario: str) -> None:
    ua, handler = agent
    await sipp(ua, scenario, "bot", tmp_path)
    assert handler.calls == [] and ua.calls == []


async def test_refer_target_accepts(
    agent: tuple[UserAgent, Handler], tmp_path: Path, silence_pcap: Path
) -> None:
    ua, handler = agent
    await sipp(
        ua,
        "refer_target_accepts",
        "refer",
        tmp_path,
        keys={"pcap": str(silence_pcap)},
        recv_timeout_ms=10000,
    )
    await until(lambda: len(handler.ended) == 1)
    assert handler.transfers == [TransferResult(TransferOutcome.SUCCEEDED, 200)]
    assert list(handler.ended.values()) == [EndReason.TRANSFERRED]


async def test_refer_target_rejects(
    agent: tuple[UserAgent, Handler], tmp_path: Path, silence_pcap: Path
) -> None:
    ua, handler = agent
    await sipp(
        ua,
        "refer_target_rejects",
        "refer",
        tmp_path,
        keys={"pcap": str(silence_pcap)},
        recv_timeout_ms=10000,
        extra=("-d", "500"),
    )
    await until(lambda: len(handler.ended) == 1)
    assert [(t.outcome, t.status) for t in handler.transfers] == [(TransferOutcome.REJECTED, 603)]
    assert list(handler.ended.values()) == [EndReason.CALLER_HANGUP]


async def test_refer_target_silent(
    agent: tuple[UserAgent, Handler], tmp_path: Path, silence_pcap: Path
) -> None:
    ua, handler = agent
    await sipp(
        ua,
        "refer_target_silent",
        "refer",
        tmp_path,
        keys={"pcap": str(silence_pcap)},
        recv_timeout_ms=10000,
        timeout=70.0,
    )
    await until(lambda: len(handler.ended) == 1)
    assert [t.outcome for t in handler.transfers] == [TransferOutcome.TIMEOUT]
    assert list(handler.ended.values()) == [EndReason.CALLER_HANGUP]
