"""The pure rules a call applies to single messages: RFC 4028 session-timer negotiation, DTMF in
INFO bodies, sipfrag status lines, and whose identity a caller has (RFC 3325)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bridge.sip.dialog import without_tag
from bridge.sip.grammar import SipParseError
from bridge.sip.message import Request
from bridge.sip.uri import NameAddr
from bridge.sip.validate import DEFAULT_POLICY

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SIPFRAG = "message/sipfrag"
DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
# RFC 4028 §4: no interval below 90 s, and the refresher acts at half the interval.
MIN_SE = 90
DEFAULT_SESSION_EXPIRES = 1800
_SIPFRAG_STATUS = re.compile(r"^SIP/2\.0\s+([1-6][0-9]{2})\b")
_DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")


@dataclass(frozen=True, slots=True)
class CallConfig:
    server: str = "voicebridge"
    allow: str = DEFAULT_POLICY.allow
    supported: str = "timer"
    session_expires: int = DEFAULT_SESSION_EXPIRES
    """The interval we ask for when the caller names none."""
    min_se: int = MIN_SE
    transfer_notify_timeout: float = 30.0
    """How long after the REFER's 2xx a final NOTIFY may take."""


@dataclass(frozen=True, slots=True)
class SessionTimer:
    seconds: int
    refresher: str
    """`uac` (the caller refreshes) or `uas` (we do)."""


def negotiate_session_timer(request: Request, config: CallConfig) -> SessionTimer | int | None:
    """RFC 4028 §9 for an INVITE or UPDATE: the timer to run, or the Min-SE to answer 422 with
    when the asked interval is too small, or None when the caller neither asks for nor supports
    session timers (we then run none: nothing guarantees a refresh we could rely on)."""
    asked = request.session_expires
    floor = max(config.min_se, request.min_se or 0)
    supports = any(tag.lower() == "timer" for tag in request.supported)
    if asked is not None and asked.seconds < floor:
        return floor
    if asked is None and not supports:
        return None
    seconds = asked.seconds if asked is not None else max(config.session_expires, floor)
    refresher = asked.refresher if asked is not None else None
    if refresher is None:
        refresher = "uac" if supports else "uas"
    return SessionTimer(seconds, refresher)


def parse_dtmf_info(content_type: str, body: bytes) -> tuple[str, int | None] | None:
    """The key and duration (ms) of an INFO body: application/dtmf-relay (`Signal=5`,
    `Duration=160`) or application/dtmf (the key alone). None when it names no key."""
    text = body.decode("utf-8", "replace")
    if content_type == DTMF:
        digit = text.strip()
        return (digit.upper(), None) if len(digit) == 1 and digit in _DTMF_DIGITS else None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    signal = fields.get("signal", "")
    if len(signal) != 1 or signal not in _DTMF_DIGITS:
        return None
    duration = fields.get("duration", "")
    return signal.upper(), int(duration) if duration.isdigit() else None


def sipfrag_status(body: bytes) -> int | None:
    match = _SIPFRAG_STATUS.match(body.decode("utf-8", "replace").lstrip())
    return int(match.group(1)) if match else None


def caller_identity(request: Request, source: str, trusted: tuple[Network, ...]) -> NameAddr:
    """Who calls: P-Asserted-Identity (RFC 3325) when the request comes from a trusted network,
    which is the only case where anybody vouched for it; else From."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        address = None
    if address is not None and any(address in network for network in trusted):
        try:
            asserted = request.p_asserted_identity
        except SipParseError:
            asserted = []
        if asserted:
            return asserted[0]
    return without_tag(request.from_addr)
