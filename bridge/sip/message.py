"""SIP requests and responses: parsing from bytes (RFC 3261 §7 and §18.3), typed access to the
header fields a user agent reads, and serialization.

`parse` is strict about what a user agent relies on and lenient about the rest (§8.2.2: a UAS
ignores malformed header fields it does not need). It refuses a message whose start line, header
section, Content-Length or any of the *core* headers (Via, From, To, Call-ID, CSeq,
Max-Forwards, Contact, Route, Record-Route, Content-Type, Require) is malformed. Missing and
duplicated mandatory headers are `validate`'s business, not the parser's; so on a message that
`parse` returned and `validate.check` passed, the accessors of the core headers never raise.
The other accessors parse on use and raise SipParseError when their header is malformed: only
the code that needs that header decides what it means.

Also refused, to bound the work one datagram can cause: more than MAX_HEADER_ROWS header rows or
more than MAX_VALUES values of one header.

Tolerated: lines ending in a bare LF, runs of spaces in the request line, CRLFs before the start
line, a datagram whose header section lacks its final empty line, a datagram without
Content-Length (its body runs to the end of the datagram), and bytes after the body of a
datagram (dropped).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bridge.sip.fields import (
    MAX_FORWARDS,
    CSeq,
    EventHeader,
    MediaType,
    SessionExpires,
    Via,
    check_call_id,
    parse_cseq,
    parse_delta_seconds,
    parse_event,
    parse_media_type,
    parse_min_se,
    parse_option_tags,
    parse_session_expires,
    parse_via,
)
from bridge.sip.grammar import WSP, SipParseError, is_token, parse_uint
from bridge.sip.headers import Headers, elements
from bridge.sip.uri import NameAddr, Uri, parse_name_addr, parse_uri

HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_WS_RUN = re.compile(r"[ \t]+")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE | re.ASCII)
_STATUS_LINE = re.compile(
    r"(SIP/[0-9]+\.[0-9]+)[ \t]+([0-9]{3})(?:[ \t]+(.*))?", re.IGNORECASE | re.ASCII
)
MAX_CONTENT_LENGTH = 2**31 - 1
# Bounds on the work one datagram can cause (a 64 KiB one could otherwise hold thousands of
# Route values, each a URI to parse). Real messages stay far below: a Via per hop, and
# Max-Forwards allows 70 hops by default.
MAX_HEADER_ROWS = 256
MAX_VALUES = 128
_TOO_MANY_ROWS = "too many header fields"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a request the parser refused still tells: its method and raw header rows, enough to
    answer it with a 400 (see validate.response_to)."""

    method: str
    headers: Headers


class MalformedMessage(SipParseError):
    """`parse` refused the message. `reason` is a fixed phrase fit for a 400's reason phrase
    (it never echoes the input); `envelope` is set when the message was a recognizable request."""

    def __init__(self, reason: str, envelope: Envelope | None = None, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.envelope = envelope


class SipMessage(ABC):
    """What requests and responses share: headers, body, typed header access, serialization."""

    headers: Headers
    body: bytes
    version: str

    @abstractmethod
    def start_line(self) -> str: ...

    def to_bytes(self) -> bytes:
        """The message on the wire, with one Content-Length that matches the body."""
        headers = self.headers.copy()
        headers.set("Content-Length", str(len(self.body)))
        lines = [self.start_line(), *(f"{name}: {value}" for name, value in headers), "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    @property
    def vias(self) -> list[Via]:
        return [parse_via(value) for value in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.values("Via")
        if not values:
            raise SipParseError("no Via")
        return parse_via(values[0])

    def set_top_via(self, via: Via) -> None:
        """Rewrite the first Via element, where a server transport records received= and
        rport= (RFC 3261 §18.2.1, RFC 3581); the other elements of its row stay as they were."""
        row = self.headers.get("Via")
        if row is None:
            raise SipParseError("no Via")
        self.headers.replace_first("Via", ", ".join([str(via), *elements("Via", row)[1:]]))

    @property
    def from_addr(self) -> NameAddr:
        return parse_name_addr(self._required("From"))

    @property
    def to_addr(self) -> NameAddr:
        return parse_name_addr(self._required("To"))

    @property
    def from_tag(self) -> str | None:
        return self.from_addr.tag

    @property
    def to_tag(self) -> str | None:
        return self.to_addr.tag

    @property
    def call_id(self) -> str:
        return check_call_id(self._required("Call-ID"))

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self._required("CSeq"))

    @property
    def max_forwards(self) -> int | None:
        return self._optional("Max-Forwards", _parse_max_forwards)

    @property
    def contacts(self) -> list[NameAddr]:
        """The Contact addresses; empty for none and for the `*` of a REGISTER."""
        values = self.headers.values("Contact")
        if "*" in values:
            if len(values) > 1:
                raise SipParseError("Contact '*' with other contacts")
            return []
        return [parse_name_addr(value) for value in values]

    @property
    def contact_is_wildcard(self) -> bool:
        return self.headers.values("Contact") == ["*"]

    @property
    def routes(self) -> list[NameAddr]:
        return [parse_name_addr(value) for value in self.headers.values("Route")]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [parse_name_addr(value) for value in self.headers.values("Record-Route")]

    @property
    def content_type(self) -> MediaType | None:
        return self._optional("Content-Type", parse_media_type)

    @property
    def content_length(self) -> int | None:
        """The header's value (the body's length is what `to_bytes` writes)."""
        return self._optional("Content-Length", _parse_content_length)

    @property
    def require(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.values("Require"))

    @property
    def supported(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.values("Supported"))

    @property
    def unsupported(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.values("Unsupported"))

    @property
    def allow(self) -> tuple[str, ...] | None:
        """The methods of Allow; None when there is no Allow (which says nothing), unlike an
        empty one."""
        if "Allow" not in self.headers:
            return None
        return parse_option_tags(self.headers.values("Allow"))

    @property
    def accept(self) -> list[MediaType] | None:
        """The media ranges of Accept; None without Accept, [] for an empty one (which §20.1
        reads as: no body is acceptable)."""
        if "Accept" not in self.headers:
            return None
        return [parse_media_type(value) for value in self.headers.values("Accept") if value]

    @property
    def expires(self) -> int | None:
        return self._optional("Expires", parse_delta_seconds)

    @property
    def session_expires(self) -> SessionExpires | None:
        return self._optional("Session-Expires", parse_session_expires)

    @property
    def min_se(self) -> int | None:
        return self._optional("Min-SE", parse_min_se)

    @property
    def event(self) -> EventHeader | None:
        return self._optional("Event", parse_event)

    @property
    def refer_to(self) -> NameAddr | None:
        return self._optional("Refer-To", parse_name_addr)

    @property
    def referred_by(self) -> NameAddr | None:
        return self._optional("Referred-By", parse_name_addr)

    @property
    def p_asserted_identity(self) -> list[NameAddr]:
        return [parse_name_addr(value) for value in self.headers.values("P-Asserted-Identity")]

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"no {name}")
        return value

    def _optional(self, name: str, parser: Callable[[str], T]) -> T | None:
        value = self.headers.get(name)
        return None if value is None else parser(value)


@dataclass
class Request(SipMessage):
    method: str
    uri: Uri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass
class Response(SipMessage):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


def _parse_max_forwards(value: str) -> int:
    return parse_uint(value.strip(WSP), MAX_FORWARDS)


def _parse_content_length(value: str) -> int:
    return parse_uint(value.strip(WSP), MAX_CONTENT_LENGTH)


def _contact_element(value: str) -> object:
    return None if value == "*" else parse_name_addr(value)


def _require_element(value: str) -> object:
    return parse_option_tags([value])


# The headers `parse` checks up front: whatever reads a request relies on them.
_CORE: dict[str, Callable[[str], object]] = {
    "Via": parse_via,
    "From": parse_name_addr,
    "To": parse_name_addr,
    "Call-ID": check_call_id,
    "CSeq": parse_cseq,
    "Max-Forwards": _parse_max_forwards,
    "Contact": _contact_element,
    "Route": parse_name_addr,
    "Record-Route": parse_name_addr,
    "Content-Type": parse_media_type,
    "Require": _require_element,
}


def split_head(head: bytes) -> tuple[str, list[tuple[str, str]], str | None]:
    """The start line, the header rows (name as written, value unfolded and trimmed) and the
    first problem met, if any: rows that could not be read are left out, so a 400 can still be
    built from the others."""
    lines = _LINE_END.split(head.decode("utf-8", "surrogateescape"))
    rows, problem = _read_rows(lines[1:])
    if "\r" in lines[0]:
        problem = "bare CR in the start line"
    return lines[0], rows, problem


def parse_header_block(block: bytes) -> Headers:
    """Header lines without a start line (a MIME body part's headers)."""
    rows, problem = _read_rows(_LINE_END.split(block.decode("utf-8", "surrogateescape")))
    if problem:
        raise SipParseError(problem)
    return Headers(rows)


def _read_rows(lines: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    rows: list[tuple[str, list[str]]] = []
    problem: str | None = None
    for line in lines:
        if "\r" in line:
            problem = problem or "bare CR in a header line"
        elif line[:1] in (" ", "\t"):
            if rows:
                rows[-1][1].append(line.strip(WSP))
            else:
                problem = problem or "continuation line before any header"
        elif line:
            name, colon, value = line.partition(":")
            name = name.rstrip(WSP)
            if colon and is_token(name):
                rows.append((name, [value.strip(WSP)]))
            else:
                problem = problem or "malformed header line"
    return [(name, " ".join(part for part in parts if part)) for name, parts in rows], problem


def parse(data: bytes, *, datagram: bool) -> Request | Response:
    """One message: a whole UDP datagram (`datagram=True`), or one message framed out of a
    stream by Content-Length (see framing.StreamFramer). Raises MalformedMessage."""
    start = 0
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    end = HEAD_END.search(data, start)
    if end is not None:
        head, body_start = data[start : end.start()], end.end()
    elif datagram:
        head, body_start = data[start:].rstrip(b"\r\n"), len(data)
    else:
        raise MalformedMessage("Incomplete Message", detail="no end of the header section")
    if not head:
        raise MalformedMessage("Empty Message")
    start_line, rows, problem = split_head(head)
    if len(rows) > MAX_HEADER_ROWS:
        rows, problem = rows[:MAX_HEADER_ROWS], problem or _TOO_MANY_ROWS
    headers = Headers(rows)
    if start_line[:4].upper() == "SIP/":
        return _response(start_line, headers, problem, data, body_start, datagram)
    return _request(start_line, headers, problem, data, body_start, datagram)


def _request(
    start_line: str,
    headers: Headers,
    problem: str | None,
    data: bytes,
    body_start: int,
    datagram: bool,
) -> Request:
    parts = _WS_RUN.split(start_line.strip(WSP))
    if len(parts) < 3 or not is_token(parts[0]) or not _VERSION.fullmatch(parts[-1]):
        raise MalformedMessage("Malformed Request-Line")
    envelope = Envelope(parts[0], headers)
    if problem:
        raise _header_problem(problem, envelope)
    if len(parts) != 3:
        raise MalformedMessage("Malformed Request-Line", envelope, "whitespace in Request-URI")
    try:
        uri = parse_uri(parts[1])
    except SipParseError as exc:
        raise MalformedMessage("Malformed Request-URI", envelope, str(exc)) from exc
    body = _body(headers, data, body_start, datagram, envelope)
    _check_headers(headers, envelope)
    return Request(parts[0], uri, headers, body, parts[2].upper())


def _response(
    start_line: str,
    headers: Headers,
    problem: str | None,
    data: bytes,
    body_start: int,
    datagram: bool,
) -> Response:
    match = _STATUS_LINE.fullmatch(start_line)
    if match is None or not 100 <= int(match[2]) <= 699:
        raise MalformedMessage("Malformed Status-Line")
    if problem:
        raise _header_problem(problem, None)
    body = _body(headers, data, body_start, datagram, None)
    _check_headers(headers, None)
    return Response(int(match[2]), match[3] or "", headers, body, match[1].upper())


def _header_problem(problem: str, envelope: Envelope | None) -> MalformedMessage:
    reason = "Too Many Header Fields" if problem == _TOO_MANY_ROWS else "Malformed Header Line"
    return MalformedMessage(reason, envelope, problem)


def _body(
    headers: Headers, data: bytes, start: int, datagram: bool, envelope: Envelope | None
) -> bytes:
    values = headers.get_all("Content-Length")
    if len(values) > 1:
        raise MalformedMessage("Multiple Content-Length Headers", envelope)
    available = len(data) - start
    if not values:
        if not datagram and available:
            raise MalformedMessage("Missing Content-Length", envelope)
        return data[start:]
    try:
        length = _parse_content_length(values[0])
    except SipParseError as exc:
        raise MalformedMessage("Malformed Content-Length", envelope, str(exc)) from exc
    if length > available or (not datagram and length != available):
        raise MalformedMessage("Content-Length Mismatch", envelope)
    return data[start : start + length]


def _check_headers(headers: Headers, envelope: Envelope | None) -> None:
    counts: dict[str, int] = {}
    for name, row in headers:
        values = elements(name, row)
        counts[name] = counts.get(name, 0) + len(values)
        if counts[name] > MAX_VALUES:
            raise MalformedMessage(f"Too Many {name} Values", envelope)
        parser = _CORE.get(name)
        if parser is None:
            continue
        try:
            for value in values:
                parser(value)
        except SipParseError as exc:
            raise MalformedMessage(f"Malformed {name} Header", envelope, str(exc)) from exc
    if "*" in headers.values("Contact") and len(headers.values("Contact")) > 1:
        raise MalformedMessage("Malformed Contact Header", envelope, "'*' with other contacts")
