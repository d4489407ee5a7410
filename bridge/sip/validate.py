"""What a UAS answers to a message before any transaction or dialog logic (RFC 3261 §8.2 and
§18.1.2), and the response builder of §8.2.6.

`check` gives None (go on), a `Reject` (answer with that status) or a `Drop` (say nothing):
responses are never answered, nor is an ACK, nor a request without a Via to copy into the
answer. Requests are checked in §8.2's order, after the structure every request needs: version
(505); To, From, Call-ID and CSeq present once, Max-Forwards at most once, a branch that is not
the bare magic cookie, no headers in the Request-URI (400); then method (405/501), CSeq method
(400), Request-URI scheme (416), Require (420), body (415) and Accept (406). An ACK is never
answered: where another request would be rejected, an ACK is dropped.

Max-Forwards 0 gets 483 Too Many Hops, except on OPTIONS: a request that has run out of hops
reached us through a forwarding loop somewhere (and we are asked to refuse it), while OPTIONS
with Max-Forwards 0 is how SBCs and RFC 4475 §3.3.11 probe the endpoint itself, which then
answers normally.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from bridge.sip.body import MULTIPART_MIXED, find_body
from bridge.sip.fields import MAGIC_COOKIE
from bridge.sip.grammar import SipParseError, is_token
from bridge.sip.headers import Headers
from bridge.sip.message import Envelope, MalformedMessage, Request, Response
from bridge.sip.uri import SipUri, parse_name_addr

SDP = "application/sdp"
# The IANA registry of SIP methods: a method in it that we do not implement gets 405, any other
# 501 (§8.2.1).
KNOWN_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)
SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})
# Methods whose response body is an SDP answer, so their Accept must allow it.
_ANSWERED_WITH_SDP = frozenset({"INVITE", "UPDATE"})
# §12.1.1: a response that can create a dialog carries the request's Record-Route.
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

REASON_PHRASES: Mapping[int, str] = MappingProxyType(
    {
        100: "Trying",
        180: "Ringing",
        181: "Call Is Being Forwarded",
        182: "Queued",
        183: "Session Progress",
        200: "OK",
        202: "Accepted",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        407: "Proxy Authentication Required",
        408: "Request Timeout",
        415: "Unsupported Media Type",
        416: "Unsupported URI Scheme",
        420: "Bad Extension",
        421: "Extension Required",
        422: "Session Interval Too Small",
        480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist",
        482: "Loop Detected",
        483: "Too Many Hops",
        486: "Busy Here",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        489: "Bad Event",
        491: "Request Pending",
        500: "Server Internal Error",
        501: "Not Implemented",
        503: "Service Unavailable",
        504: "Server Time-out",
        505: "Version Not Supported",
        600: "Busy Everywhere",
        603: "Decline",
    }
)


@dataclass(frozen=True, slots=True)
class UasPolicy:
    """What this user agent implements: its methods (the Allow header), the option tags it
    supports (Supported; anything else in Require gets 420) and, per method, the body types it
    reads (a multipart/mixed body is read when one of its parts is such a type)."""

    methods: tuple[str, ...] = (
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "UPDATE",
        "INFO",
        "NOTIFY",
    )
    extensions: tuple[str, ...] = ("timer",)
    bodies: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(
            {
                "INVITE": (SDP,),
                "UPDATE": (SDP,),
                "INFO": ("application/dtmf-relay", "application/dtmf"),
                "NOTIFY": ("message/sipfrag",),
            }
        )
    )

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)

    @property
    def supported(self) -> str:
        return ", ".join(self.extensions)


DEFAULT_POLICY = UasPolicy()


class Reject(NamedTuple):
    """Answer the request with this status, reason phrase and extra headers (build it with
    `response_to`). A request the parser refused may have no usable Via: send such an answer
    back where the request came from."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Drop:
    """Discard the message without an answer; `why` is for the log."""

    why: str


def check(
    item: Request | Response | MalformedMessage, policy: UasPolicy = DEFAULT_POLICY
) -> Reject | Drop | None:
    """The verdict on a parsed message, or on the error `parse` raised for one."""
    if isinstance(item, MalformedMessage):
        return _check_malformed(item)
    if isinstance(item, Response):
        return _check_response(item)
    return _check_request(item, policy)


def _check_malformed(error: MalformedMessage) -> Reject | Drop:
    envelope = error.envelope
    if envelope is None:
        return Drop(f"unreadable message ({error})")
    if envelope.method == "ACK":
        return Drop(f"malformed ACK ({error})")
    if "Via" not in envelope.headers:
        return Drop(f"malformed request without Via ({error})")
    return Reject(400, error.reason)


def _check_response(response: Response) -> Drop | None:
    if response.version != "SIP/2.0":
        return Drop(f"response of version {response.version}")
    vias = len(response.headers.values("Via"))
    if vias != 1:
        # §8.1.3.3: more than one Via means the response was meant for someone else.
        return Drop(f"response with {vias} Via values")
    for name in ("From", "To", "Call-ID", "CSeq"):
        if response.headers.count(name) != 1:
            return Drop(f"response with {response.headers.count(name)} {name} headers")
    return None


def _check_request(request: Request, policy: UasPolicy) -> Reject | Drop | None:
    if "Via" not in request.headers:
        return Drop("request without Via")
    problem = _structure(request) or _method(request, policy)
    if request.method == "ACK":
        return None if problem is None else Drop(f"ACK: {problem.reason}")
    if problem is not None:
        return problem
    if request.max_forwards == 0 and request.method != "OPTIONS":
        return Reject(483, REASON_PHRASES[483])
    if request.uri.scheme not in SUPPORTED_SCHEMES:
        return Reject(416, REASON_PHRASES[416])
    if request.method != "CANCEL":
        return _require(request, policy) or _content(request, policy) or _accept(request)
    return None


def _structure(request: Request) -> Reject | None:
    if request.version != "SIP/2.0":
        return Reject(505, REASON_PHRASES[505])
    headers = request.headers
    for name in ("To", "From", "Call-ID", "CSeq"):
        count = headers.count(name)
        if count != 1:
            return Reject(400, f"{'Missing' if count == 0 else 'Duplicate'} {name} Header")
    if headers.count("Max-Forwards") > 1:
        return Reject(400, "Duplicate Max-Forwards Header")
    if request.top_via.branch == MAGIC_COOKIE:
        # RFC 4475 §3.2.1: the cookie alone claims RFC 3261 matching but identifies nothing.
        return Reject(400, "Invalid Via Branch")
    if isinstance(request.uri, SipUri) and request.uri.headers:
        # §19.1.1 table 1: headers are not allowed in a Request-URI; never act on them.
        return Reject(400, "Headers Not Allowed in Request-URI")
    return None


def _method(request: Request, policy: UasPolicy) -> Reject | None:
    if request.method not in policy.methods:
        status = 405 if request.method in KNOWN_METHODS else 501
        return Reject(status, REASON_PHRASES[status], (("Allow", policy.allow),))
    if request.cseq.method != request.method:
        return Reject(400, "CSeq Method Does Not Match")
    return None


def _require(request: Request, policy: UasPolicy) -> Reject | None:
    supported = {tag.lower() for tag in policy.extensions}
    unknown = [tag for tag in request.require if tag.lower() not in supported]
    if unknown:
        return Reject(420, REASON_PHRASES[420], (("Unsupported", ", ".join(unknown)),))
    return None


def _content(request: Request, policy: UasPolicy) -> Reject | None:
    readable = policy.bodies.get(request.method)
    if readable is None or not request.body:
        return None
    accept = (("Accept", ", ".join((*readable, MULTIPART_MIXED))),)
    encodings = [value.lower() for value in request.headers.values("Content-Encoding") if value]
    if any(encoding != "identity" for encoding in encodings):
        return Reject(415, REASON_PHRASES[415], (*accept, ("Accept-Encoding", "identity")))
    if request.content_type is None:
        return Reject(400, "Missing Content-Type")
    try:
        found = any(find_body(request, mime) is not None for mime in readable)
    except SipParseError:
        return Reject(400, "Malformed Multipart Body")
    return None if found else Reject(415, REASON_PHRASES[415], accept)


def _accept(request: Request) -> Reject | None:
    if request.method not in _ANSWERED_WITH_SDP:
        return None
    try:
        ranges = request.accept
    except SipParseError:
        return Reject(400, "Malformed Accept Header")
    if ranges is None or any(media.accepts(SDP) for media in ranges):
        return None
    warning = '399 voicebridge "Only application/sdp bodies can be sent"'
    return Reject(406, REASON_PHRASES[406], (("Warning", warning),))


def response_to(
    request: Request | Envelope,
    status: int,
    reason: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    to_tag: str | None = None,
    body: bytes = b"",
) -> Response:
    """A response to `request` (§8.2.6.2): its Via rows, From, Call-ID and CSeq copied as they
    were; To copied with a tag added unless it has one or this is a 100 (`to_tag`, else a random
    one); Record-Route copied for a response that can create a dialog; Timestamp echoed in a
    100 (§8.2.6.1). A To the parser could not read is copied without a tag."""
    if to_tag is not None and not is_token(to_tag):
        raise ValueError(f"bad tag {to_tag!r}")
    source = request.headers
    headers = Headers(("Via", value) for value in source.get_all("Via"))
    if 100 < status < 300 and request.method in _DIALOG_CREATING:
        for value in source.get_all("Record-Route"):
            headers.add("Record-Route", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = source.get(name)
        if copied is not None:
            tagged = name == "To" and status != 100
            headers.add(name, _with_tag(copied, to_tag) if tagged else copied)
    timestamp = source.get("Timestamp")
    if status == 100 and timestamp is not None:
        headers.add("Timestamp", timestamp)
    for name, extra in extra_headers:
        headers.add(name, extra)
    phrase = reason if reason is not None else REASON_PHRASES.get(status, "")
    return Response(status, phrase, headers, body)


def _with_tag(to: str, tag: str | None) -> str:
    try:
        if parse_name_addr(to).tag is not None:
            return to
    except SipParseError:
        return to
    return f"{to};tag={tag or secrets.token_hex(8)}"
