"""Trunk security against SIPp over loopback: digest-authenticated calls, bans after failed
attempts, scanners and sources outside the allow-list answered with silence (the latter's TCP
connections closed unread), a flood throttled, and the default limits leaving a load test
alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridge.sip.access import Verdict
from bridge.sip.useragent import UserAgent, UserAgentConfig
from tests.integration.test_sip_calls import FakeMedia, Handler, until
from tests.sipp import EXIT_FATAL, SIPP, SippOptions, SippResult, run_sipp, scenario_path

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)

PASSWORD = "s3cret"
# SIPp 3.6 answers only the first challenge and knows MD5 alone.
AUTH = {"auth_username": "trunk", "auth_password": PASSWORD, "auth_algorithms": ("MD5",)}


@asynccontextmanager
async def agent(**config: object) -> AsyncIterator[tuple[UserAgent, Handler]]:
    handler = Handler()
    ua = UserAgent(
        handler,
        FakeMedia,
        UserAgentConfig(host="127.0.0.1", port=0, **config),  # type: ignore[arg-type]
    )
    await ua.start()
    try:
        yield ua, handler
    finally:
        await ua.close()


async def sipp(
    ua: UserAgent,
    scenario: str,
    tmp_path: Path,
    name: str,
    *,
    calls: int = 1,
    rate: float | None = None,
    transport: str = "u1",
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    recv_timeout_ms: int | None = None,
    timeout: float = 60.0,
) -> SippResult:
    return await run_sipp(
        SippOptions(
            scenario_path(scenario),
            remote=f"127.0.0.1:{ua.port}",
            service="bot",
            calls=calls,
            rate=rate,
            transport=transport,
            keys=keys or {},
            recv_timeout_ms=recv_timeout_ms,
            extra_args=extra,
        ),
        timeout=timeout,
        workdir=tmp_path / name,
    )


def credentials(password: str = PASSWORD) -> tuple[str, ...]:
    return ("-au", "trunk", "-ap", password, "-d", "200")


def dropped(ua: UserAgent) -> Callable[[Verdict], int]:
    return lambda verdict: ua.access.counters.dropped[verdict]


async def test_digest_authenticated_calls(tmp_path: Path) -> None:
    async with agent(**AUTH) as (ua, handler):
        result = await sipp(
            ua, "invite_digest_auth", tmp_path, "auth", calls=10, rate=10, extra=credentials()
        )
        assert result.ok and result.successful_calls == 10, result.describe()
        await until(lambda: len(handler.ended) == 10)
        assert len(handler.established) == 10
        counters = ua.access.counters
        assert (counters.auth_challenges, counters.auth_failures) == (10, 0)
        await until(lambda: ua.calls == [])


async def test_failed_attempts_ban_the_source(tmp_path: Path) -> None:
    # Loopback is trusted (so never banned) by default.
    async with agent(trusted_networks=(), **AUTH) as (ua, handler):
        result = await sipp(
            ua,
            "invite_digest_auth",
            tmp_path,
            "guess",
            calls=5,
            rate=10,
            extra=credentials("guess"),
            # SIPp takes the second 401 for a retransmission of the first and waits on.
            recv_timeout_ms=1500,
        )
        assert result.failed_calls == 5, result.describe()
        assert (ua.access.counters.auth_failures, ua.access.counters.bans) == (5, 1)
        # Banned: the right password gets no answer now, nor does anything else.
        result = await sipp(
            ua, "invite_digest_auth", tmp_path, "banned", extra=credentials(), recv_timeout_ms=1500
        )
        assert result.successful_calls == 0, result.describe()
        result = await sipp(
            ua, "options_unanswered", tmp_path, "banned-ping", keys={"agent": "SIPp"}
        )
        assert result.ok, result.describe()
        assert dropped(ua)(Verdict.BANNED) >= 2
        assert handler.established == []


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_scanner_gets_no_answer(tmp_path: Path, transport: str) -> None:
    async with agent() as (ua, _):
        result = await sipp(
            ua,
            "options_unanswered",
            tmp_path,
            "scanner",
            transport=transport,
            keys={"agent": "friendly-scanner"},
        )
        assert result.ok, result.describe()
        assert dropped(ua)(Verdict.SCANNER) == 1
        # The same probe with another User-Agent is answered, which the scenario takes for a
        # failure: it does tell an answer from silence.
        result = await sipp(
            ua,
            "options_unanswered",
            tmp_path,
            "not-a-scanner",
            transport=transport,
            keys={"agent": "Asterisk PBX 20"},
        )
        assert result.failed_calls == 1, result.describe()


async def test_source_outside_the_allow_list_gets_no_answer(tmp_path: Path) -> None:
    async with agent(allowed_networks=("10.0.0.0/8",), trusted_networks=("10.0.0.0/8",)) as (
        ua,
        handler,
    ):
        result = await sipp(
            ua, "options_unanswered", tmp_path, "outside-ping", keys={"agent": "SIPp"}
        )
        assert result.ok, result.describe()
        result = await sipp(
            ua, "call_caller_hangup", tmp_path, "outside-call", recv_timeout_ms=1500
        )
        assert result.successful_calls == 0, result.describe()
        assert handler.calls == [] and ua.calls == []
        assert dropped(ua)(Verdict.NOT_ALLOWED) >= 2


async def test_tcp_from_outside_the_allow_list_is_closed_unread(tmp_path: Path) -> None:
    """The connection is closed as soon as it is accepted: SIPp finds it gone when it sends."""
    async with agent(allowed_networks=("10.0.0.0/8",), trusted_networks=("10.0.0.0/8",)) as (
        ua,
        handler,
    ):
        for scenario, keys in (
            ("options_unanswered", {"agent": "SIPp"}),
            ("call_caller_hangup", None),
        ):
            result = await sipp(
                ua, scenario, tmp_path, scenario, transport="t1", keys=keys, recv_timeout_ms=1500
            )
            assert result.returncode == EXIT_FATAL, result.describe()
            assert "remote peer probably closed the socket" in result.errors, result.describe()
            assert result.successful_calls == 0, result.describe()
        assert handler.calls == [] and ua.calls == []
        # One connection each, refused before anything was read from it.
        assert ua.access.counters.dropped == {Verdict.NOT_ALLOWED: 2}


async def test_a_flood_is_throttled(tmp_path: Path) -> None:
    async with agent(rate_limit=20.0, rate_burst=20) as (ua, _):
        result = await sipp(
            ua, "options_ping", tmp_path, "flood", calls=300, rate=300, recv_timeout_ms=1500
        )
        # About the burst and a second's worth of tokens get through, retransmissions
        # included; the rest time out unanswered.
        assert 20 <= result.successful_calls <= 120, result.describe()
        assert result.failed_calls >= 150, result.describe()
        assert dropped(ua)(Verdict.RATE_LIMITED) >= 150
        # Throttled, not banned: with its bucket refilled (while SIPp waited out the dropped
        # pings) the source is answered again.
        result = await sipp(ua, "options_ping", tmp_path, "after", calls=5, rate=5)
        assert result.ok, result.describe()


async def test_default_limits_leave_a_load_test_alone(tmp_path: Path) -> None:
    async with agent() as (ua, handler):
        result = await sipp(ua, "options_ping", tmp_path, "pings", calls=600, rate=300)
        assert result.ok and result.successful_calls == 600, result.describe()
        result = await sipp(
            ua,
            "call_caller_hangup",
            tmp_path,
            "calls",
            calls=200,
            rate=100,
            extra=("-d", "200", "-l", "200"),
        )
        assert result.ok and result.successful_calls == 200, result.describe()
        await until(lambda: len(handler.ended) == 200, timeout=20)
        assert ua.access.counters.dropped == {}
