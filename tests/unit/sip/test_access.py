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
from bridge.sip.message import Request, parse
from bridge.sip.timers import ManualClock
from bridge.sip.transaction import Peer
from bridge.sip.transport import response_peer, stamp_via

TRUNK = ("198.51.100.7",)


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
    assert access.check(("127.0.0.1",), None) is Verdict.ACCEPT
    assert access.check(TRUNK, "Asterisk PBX 20.5.0") is Verdict.ACCEPT
    assert access.check(("203.0.113.9",), None) is Verdict.NOT_ALLOWED
    assert access.check(("::1",), None) is Verdict.NOT_ALLOWED
    # A source the Via leaves open passes only when both of its addresses are allowed.
    assert access.check(("198.51.100.7", "203.0.113.9"), None) is Verdict.NOT_ALLOWED
    assert access.check(("198.51.100.7", "127.0.0.1"), None) is Verdict.ACCEPT
    assert access.counters.dropped == {Verdict.NOT_ALLOWED: 3}


def test_outside_sources_take_no_memory() -> None:
    access, _ = control()
    for n in range(1000):
        access.check((f"203.0.{n // 256}.{n % 256}",), "friendly-scanner")
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
    assert access.check(("127.0.0.1",), agent) is Verdict.SCANNER


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
    assert access.check(("127.0.0.1",), None) is Verdict.ACCEPT
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
    assert access.check(("198.51.100.8",), None) is Verdict.ACCEPT
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
    assert access.auth_failed(("127.0.0.1",))


def test_the_source_table_is_bounded() -> None:
    access, _ = control(max_sources=3, rate=1.0, burst=1, allowed=("10.0.0.0/8",))
    for n in range(100):
        access.check((f"10.0.0.{n}",), None)
    assert len(access) == 3
    # The least recently seen went first: 10.0.0.97 is still known (and out of tokens),
    # 10.0.0.1 starts afresh.
    assert access.check(("10.0.0.97",), None) is Verdict.RATE_LIMITED
    assert access.check(("10.0.0.1",), None) is Verdict.ACCEPT


def test_drop_log_once_a_minute_per_source_and_bounded() -> None:
    clock = ManualClock()
    drops = DropLog(clock, interval=60.0, capacity=2)
    assert drops.should_log(("a",))
    assert not drops.should_log(("a",))
    assert drops.should_log(("b",))
    assert not drops.should_log(("c",)), "full: no line rather than a line per packet"
    clock.advance(59)
    assert not drops.should_log(("a",))
    clock.advance(1)
    assert drops.should_log(("c",))
    assert drops.should_log(("a",))


def options(via: str) -> Request:
    text = (
        f"OPTIONS sip:bot@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:bot@192.0.2.1>\r\nCall-ID: x\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n"
    )
    message = parse(text.encode(), datagram=True)
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        # The sent-by host is the source: the transport writes nothing.
        ("198.51.100.7:5060;branch=z9hG4bK1", "198.51.100.7", ("198.51.100.7",)),
        # rport asked for: received= is always the transport's.
        ("10.1.1.1:5060;branch=z9hG4bK1;rport", "198.51.100.7", ("198.51.100.7",)),
        ("127.0.0.1;branch=z9hG4bK1;received=127.0.0.1;rport", "203.0.113.9", ("203.0.113.9",)),
        # A hostname is never the source address, so received= is the transport's.
        ("pbx.example.com;branch=z9hG4bK1;received=127.0.0.1", "203.0.113.9", ("203.0.113.9",)),
        # Behind NAT without rport: the transport writes received=.
        ("10.1.1.1;branch=z9hG4bK1", "198.51.100.7", ("10.1.1.1", "198.51.100.7")),
        # The sender's own received= where its host is the source: both must pass.
        (
            "203.0.113.9;branch=z9hG4bK1;received=127.0.0.1",
            "203.0.113.9",
            ("203.0.113.9", "127.0.0.1"),
        ),
        ("[2001:db8::9]:5060;branch=z9hG4bK1", "2001:db8::9", ("2001:db8::9",)),
    ],
)
def test_request_source_over_udp(via: str, source: str, expected: tuple[str, ...]) -> None:
    request = options(via)
    stamp_via(request, (source, 5062))
    peer = response_peer(request, (source, 5062), "UDP")
    assert request_source(request, peer) == expected


def test_request_source_over_tcp_is_the_connection() -> None:
    request = options("127.0.0.1;branch=z9hG4bK1;received=127.0.0.1")
    stamp_via(request, ("203.0.113.9", 40000))
    peer = response_peer(request, ("203.0.113.9", 40000), "TCP")
    assert request_source(request, peer) == ("203.0.113.9",)


def test_maddr_does_not_fake_the_source() -> None:
    request = options("203.0.113.9;branch=z9hG4bK1;maddr=127.0.0.1")
    stamp_via(request, ("203.0.113.9", 5060))
    peer = response_peer(request, ("203.0.113.9", 5060), "UDP")
    assert peer.address[0] == "127.0.0.1"
    assert request_source(request, peer) == ("203.0.113.9",)


def test_a_request_without_via_is_its_peer() -> None:
    request = options("x;branch=z9hG4bK1")
    request.headers.remove("Via")
    assert request_source(request, Peer("UDP", ("203.0.113.9", 5060))) == ("203.0.113.9",)
