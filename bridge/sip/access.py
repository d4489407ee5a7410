"""Who may talk to the user agent: a source allow-list, scanner recognition by User-Agent,
per-source rate limiting and fail2ban-like bans after repeated failed digest attempts.

Pure logic on an injected `Clock`; the user agent asks `AccessControl.check` about each new
request before the transaction layer sees it and drops, without any answer, what is refused:
a scanner learns nothing from the user agent. What the transport meets before there is a
request to judge, a TCP connection or a message too malformed to parse, it has judged by its
source alone (`AccessControl.admit`): the allow-list and bans. A source is always the address
the packet or connection came from (`request_source`), never one a Via names.

What is kept per source lives in one table bounded by `AccessPolicy.max_sources`, least
recently seen evicted first. Only sources inside the allow-list get an entry, so a flood of
spoofed outside addresses costs a network lookup per packet and no memory; the drop log keeps
its own small table, which never evicts before an entry's minute is up and skips the log line
when full, so no flood makes it log per packet.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from bridge.sip.timers import Clock
from bridge.sip.transaction import Peer

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
# The User-Agent words of the SIP scanners seen in the wild: SIPVicious (svmap, svwar,
# svcrack) and its forks, sipcli, the VaxSIP and sundayddr war-diallers, iWar, SIPScan, pplsip,
# SIP Army Knife, Nmap's SIP scripts. Whole words only, so a product name that merely contains
# one is not taken for a scanner.
SCANNER_AGENTS = re.compile(
    r"(?<![a-z0-9])(friendly-scanner|sipvicious|sipcli|vaxsipuseragent|vaxipuseragent"
    r"|sundayddr|iwar|sipscan|sip-scan|pplsip|siparmyknife|nmap)(?![a-z0-9])",
    re.IGNORECASE,
)


class Verdict(Enum):
    ACCEPT = "accept"
    NOT_ALLOWED = "not allowed"
    SCANNER = "scanner"
    BANNED = "banned"
    RATE_LIMITED = "rate limited"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    allowed: tuple[str, ...] = LOOPBACK
    """Networks whose requests are taken at all."""
    never_banned: tuple[str, ...] = ()
    """Networks that failed digest attempts never ban: a proxy there carries many callers,
    and its address may be spoofed over UDP to get it banned."""
    rate: float = 200.0
    """New requests a second, per source, over the long run; 0: no limit."""
    burst: int = 400
    """New requests a source may send at once after a quiet spell."""
    max_failures: int = 5
    """Failed digest attempts within `failure_window` that ban a source..."""
    failure_window: float = 600.0
    ban_seconds: float = 600.0
    """...for this long."""
    max_sources: int = 10_000


@dataclass
class AccessCounters:
    """What was refused, and why, since the start: requests, and TCP connections refused
    before anything was read from them."""

    dropped: Counter[Verdict] = field(default_factory=Counter)
    auth_challenges: int = 0
    auth_failures: int = 0
    bans: int = 0


@dataclass(slots=True)
class _SourceState:
    tokens: float
    refilled: float
    failures: int = 0
    first_failure: float = 0.0
    banned_until: float = 0.0


@dataclass
class AccessControl:
    policy: AccessPolicy
    clock: Clock
    counters: AccessCounters = field(default_factory=AccessCounters)

    def __post_init__(self) -> None:
        self._allowed = networks(self.policy.allowed)
        self._never_banned = networks(self.policy.never_banned)
        self._sources: OrderedDict[str, _SourceState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sources)

    def check(self, source: str, user_agent: str | None, *, rated: bool = True) -> Verdict:
        """The verdict on a new request from `source`, counted when it is a refusal. `rated`
        False: the request takes no token (an ACK, which is never answered, so a flood of them
        earns nothing and a live call's must not be lost)."""
        return self._counted(self._verdict(source, user_agent, rated))

    def admit(self, source: str) -> Verdict:
        """The verdict on `source` alone, counted when it is a refusal: NOT_ALLOWED or BANNED,
        for what the transport meets before there is a request to judge (a TCP connection, a
        message too malformed to parse). It takes no token, since each request a connection
        carries takes its own, and keeps nothing for a source not seen before."""
        if not contains(self._allowed, source):
            return self._counted(Verdict.NOT_ALLOWED)
        state = self._sources.get(source)
        if state is not None and state.banned_until > self.clock.now():
            return self._counted(Verdict.BANNED)
        return Verdict.ACCEPT

    def _counted(self, verdict: Verdict) -> Verdict:
        if verdict is not Verdict.ACCEPT:
            self.counters.dropped[verdict] += 1
        return verdict

    def _verdict(self, source: str, user_agent: str | None, rated: bool) -> Verdict:
        if not contains(self._allowed, source):
            return Verdict.NOT_ALLOWED
        if user_agent is not None and is_scanner(user_agent):
            return Verdict.SCANNER
        state = self._state(source)
        now = self.clock.now()
        if state.banned_until > now:
            return Verdict.BANNED
        if not rated or self.policy.rate <= 0:
            return Verdict.ACCEPT
        state.tokens = min(
            float(self.policy.burst), state.tokens + (now - state.refilled) * self.policy.rate
        )
        state.refilled = now
        if state.tokens < 1.0:
            return Verdict.RATE_LIMITED
        state.tokens -= 1.0
        return Verdict.ACCEPT

    def auth_failed(self, source: str) -> bool:
        """Record a failed digest attempt; True when it bans the source."""
        self.counters.auth_failures += 1
        if contains(self._never_banned, source):
            return False
        state = self._state(source)
        now = self.clock.now()
        if state.failures == 0 or now - state.first_failure > self.policy.failure_window:
            state.failures = 0
            state.first_failure = now
        state.failures += 1
        if state.failures < self.policy.max_failures:
            return False
        state.failures = 0
        state.banned_until = now + self.policy.ban_seconds
        self.counters.bans += 1
        return True

    def auth_succeeded(self, source: str) -> None:
        state = self._sources.get(source)
        if state is not None:
            state.failures = 0

    def _state(self, source: str) -> _SourceState:
        state = self._sources.get(source)
        if state is not None:
            self._sources.move_to_end(source)
            return state
        if len(self._sources) >= self.policy.max_sources:
            self._sources.popitem(last=False)
        state = _SourceState(tokens=float(self.policy.burst), refilled=self.clock.now())
        self._sources[source] = state
        return state


class DropLog:
    """Says whether a drop from a source is worth a log line: the first in each `interval`
    seconds, for at most `capacity` sources an interval."""

    def __init__(self, clock: Clock, interval: float = 60.0, capacity: int = 1024) -> None:
        self._clock = clock
        self._interval = interval
        self._capacity = capacity
        self._logged: OrderedDict[str, float] = OrderedDict()

    def should_log(self, source: str) -> bool:
        now = self._clock.now()
        # Entries go in in time order, so the expired ones are at the front.
        while self._logged and now - next(iter(self._logged.values())) >= self._interval:
            self._logged.popitem(last=False)
        if source in self._logged or len(self._logged) >= self._capacity:
            return False
        self._logged[source] = now
        return True


def networks(texts: Iterable[str]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


def contains(nets: tuple[IpNetwork, ...], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in nets)


def is_scanner(user_agent: str) -> bool:
    return SCANNER_AGENTS.search(user_agent) is not None


def request_source(peer: Peer) -> str:
    """The address a request came from, as the transport saw it. Raises ValueError for a peer
    the transport did not hand up: where responses go is no source, since a UDP request's Via
    names it."""
    if peer.source is None:
        raise ValueError(f"no source known for a request from {peer}")
    return peer.source[0]
