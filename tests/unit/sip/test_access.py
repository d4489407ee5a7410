"""The source allow-list, scanner recognition, per-source rate limit and bans, on a manual
clock."""

from __future__ import annotations

import pytest

from bridge.sip.access import (
    AccessControl,
    AccessPolicy,
    DropLog,
    Verdict,
    contains,
    is_scanner,
    networks,
    request_source,
)
from bridge.sip.timers import ManualClock
from bridge.sip.transaction import Peer

TRUNK = "198.51.100.7"


def control(**policy: object) -> tuple[AccessControl, ManualClock]:
    clock = ManualClock()
    settings = {"allowed": ("127.0.0.0/8", "198.51.100.0/24"), **policy}
    return AccessControl(AccessPolicy(**settings), clock), clock  # type: ignore[arg-type]


def test_networks_and_addresses() -> None:
    nets = networks(["10.0.0.0/8", "2001:db8::/32"])
    assert contains(nets, "10.1.2.3")
    assert contains(nets, "[2001:db8::1]")
    assert contains(nets, "::ffff:10.0.0.1"), "an IPv4-mapped address is its IPv4 address"
    assert not contains(nets, "11.0.0.1")
    assert not contains(nets, "trunk.example.com")
    assert not contains(nets, "")


def test_only_allowed_sources_pass() -> None:
    access, _ = control()
    assert access.check("127.0.0.1", None) is Verdict.ACCEPT
    assert access.check(TRUNK, "Asterisk PBX 20.5.0") is Verdict.ACCEPT
    assert access.check("203.0.113.9", None) is Verdict.NOT_ALLOWED
    assert access.check("::1", None) is Verdict.NOT_ALLOWED
    assert access.counters.dropped == {Verdict.NOT_ALLOWED: 2}


def test_outside_sources_take_no_memory() -> None:
    access, _ = control()
    for n in range(1000):
        access.check(f"203.0.{n // 256}.{n % 256}", "friendly-scanner")
    assert len(access) == 0
    assert access.counters.dropped[Verdict.NOT_ALLOWED] == 1000


@pytest.mark.parametrize(
    "agent",
    [
        "friendly-scanner",
        "Friendly-Scanner",
        "sipvicious",
        "sipcli/v1.8",
        "VaxSIPUserAgent/3.1",
        "sundayddr",
        "iWar",
        "pplsip",
        "SIPScan 1.0",
        "Nmap NSE",
    ],
)
def test_scanners_are_recognised(agent: str) -> None:
    assert is_scanner(agent)
    access, _ = control()
    assert access.check("127.0.0.1", agent) is Verdict.SCANNER


@pytest.mark.parametrize(
    "agent",
    [
        "Asterisk PBX 18.20.0",
        "FPBX-16.0.40(18.20.0)",
        "Linphone/5.2.0 (belle-sip/5.2.0)",
        "Yealink SIP-T46S 66.86.0.15",
        "Cisco-SIPGateway/IOS-15.x",
        "PJSUA v2.14 Linux-6.1",
        "Kamailio (5.7.0 (x86_64/linux))",
        "Diwari 1.0",
    ],
)
def test_real_user_agents_are_not_scanners(agent: str) -> None:
    assert not is_scanner(agent)


def test_rate_limit_per_source() -> None:
    access, clock = control(rate=10.0, burst=5)
    assert [access.check(TRUNK, None) for _ in range(6)] == [Verdict.ACCEPT] * 5 + [
        Verdict.RATE_LIMITED
    ]
    # Another source has a bucket of its own.
    assert access.check("127.0.0.1", None) is Verdict.ACCEPT
    # Requests that take no token pass with the bucket empty.
    assert access.check(TRUNK, None, rated=False) is Verdict.ACCEPT
    clock.advance(0.1)
    assert access.check(TRUNK, None) is Verdict.ACCEPT
    assert access.check(TRUNK, None) is Verdict.RATE_LIMITED
    # A long quiet spell refills to the burst, no further.
    clock.advance(3600)
    verdicts = [access.check(TRUNK, None) for _ in range(6)]
    assert verdicts.count(Verdict.ACCEPT) == 5
    assert access.counters.dropped[Verdict.RATE_LIMITED] == 3


def test_rate_zero_is_no_limit() -> None:
    access, _ = control(rate=0.0, burst=1)
    assert all(access.check(TRUNK, None) is Verdict.ACCEPT for _ in range(1000))


def test_failed_attempts_ban_a_source_for_a_while() -> None:
    access, clock = control(max_failures=3, failure_window=60.0, ban_seconds=600.0)
    assert not access.auth_failed(TRUNK)
    assert not access.auth_failed(TRUNK)
    assert access.auth_failed(TRUNK)
    assert access.check(TRUNK, None) is Verdict.BANNED
    assert access.check(TRUNK, None, rated=False) is Verdict.BANNED
    assert access.check("198.51.100.8", None) is Verdict.ACCEPT
    clock.advance(599)
    assert access.check(TRUNK, None) is Verdict.BANNED
    clock.advance(1)
    assert access.check(TRUNK, None) is Verdict.ACCEPT
    assert (access.counters.auth_failures, access.counters.bans) == (3, 1)
    assert access.counters.dropped[Verdict.BANNED] == 3


def test_failures_spread_out_or_followed_by_success_do_not_ban() -> None:
    access, clock = control(max_failures=3, failure_window=60.0)
    access.auth_failed(TRUNK)
    access.auth_failed(TRUNK)
    clock.advance(61)
    assert not access.auth_failed(TRUNK)
    assert not access.auth_failed(TRUNK)
    access.auth_succeeded(TRUNK)
    assert not access.auth_failed(TRUNK)
    assert not access.auth_failed(TRUNK)
    assert access.check(TRUNK, None) is Verdict.ACCEPT


def test_never_banned_networks() -> None:
    access, _ = control(max_failures=1, never_banned=("198.51.100.0/24",))
    assert not access.auth_failed(TRUNK)
    assert access.check(TRUNK, None) is Verdict.ACCEPT
    assert access.counters.auth_failures == 1
    assert access.auth_failed("127.0.0.1")


def test_the_source_table_is_bounded() -> None:
    access, _ = control(max_sources=3, rate=1.0, burst=1, allowed=("10.0.0.0/8",))
    for n in range(100):
        access.check(f"10.0.0.{n}", None)
    assert len(access) == 3
    # The least recently seen went first: 10.0.0.97 is still known (and out of tokens),
    # 10.0.0.1 starts afresh.
    assert access.check("10.0.0.97", None) is Verdict.RATE_LIMITED
    assert access.check("10.0.0.1", None) is Verdict.ACCEPT


def test_drop_log_once_a_minute_per_source_and_bounded() -> None:
    clock = ManualClock()
    drops = DropLog(clock, interval=60.0, capacity=2)
    assert drops.should_log("a")
    assert not drops.should_log("a")
    assert drops.should_log("b")
    assert not drops.should_log("c"), "full: no line rather than a line per packet"
    clock.advance(59)
    assert not drops.should_log("a")
    clock.advance(1)
    assert drops.should_log("c")
    assert drops.should_log("a")


def test_admit_judges_the_source_alone() -> None:
    """The check for what comes before a request: allow-list and bans, no scanner check (there
    is no User-Agent to read) and no rate limit."""
    access, _ = control(rate=1.0, burst=1, max_failures=1)
    assert access.admit("203.0.113.9") is Verdict.NOT_ALLOWED
    assert access.admit("127.0.0.1") is Verdict.ACCEPT
    assert len(access) == 0, "nothing is kept for a source admit alone has seen"
    assert access.check(TRUNK, None) is Verdict.ACCEPT
    assert access.check(TRUNK, None) is Verdict.RATE_LIMITED
    assert [access.admit(TRUNK) for _ in range(3)] == [Verdict.ACCEPT] * 3
    assert access.auth_failed(TRUNK)
    assert access.admit(TRUNK) is Verdict.BANNED
    assert access.counters.dropped == {
        Verdict.NOT_ALLOWED: 1,
        Verdict.RATE_LIMITED: 1,
        Verdict.BANNED: 1,
    }


def test_request_source_is_the_address_the_transport_saw() -> None:
    """Not where responses go, which a UDP request's Via decides (received=, maddr=)."""
    peer = Peer("UDP", ("127.0.0.1", 5060), source=("203.0.113.9", 31000))
    assert request_source(peer) == "203.0.113.9"
    tcp = Peer("TCP", ("203.0.113.9", 40000), ("127.0.0.1", 5060), source=("203.0.113.9", 40000))
    assert request_source(tcp) == "203.0.113.9"


def test_a_peer_the_transport_did_not_hand_up_has_no_source() -> None:
    with pytest.raises(ValueError, match="no source"):
        request_source(Peer("UDP", ("127.0.0.1", 5060)))
