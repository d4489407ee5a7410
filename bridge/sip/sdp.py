"""SDP session descriptions (RFC 4566): the model, the parser and the serializer.

The parser is lenient where deployed user agents are sloppy: CRLF, LF or CR line ends, blanks
around lines, blank lines, session-level lines in any order, attributes it does not know (kept
verbatim, in order). It is strict where the text would mean nothing: a line that is not
`<letter>=`, a type letter RFC 4566 does not define (§5 says such a description must be ignored
as a whole), a malformed o=, c=, m=, b= or t= line, or conflicting session-level directions.

What a stream's attributes say (payload types, rtpmap, fmtp, ptime, maxptime, rtcp, direction)
is checked by `MediaDescription.check`, which offer/answer runs on the streams it takes part in
only: a stream it refuses with port 0 needs none of it, and offers carry video streams we cannot
read (`a=rtpmap:31 LPC` without a clock rate, in RFC 4475) or a body that a Content-Length cut
in the middle of an attribute (RFC 5118). Every failure is an `SdpError`.

i=, u=, e=, p=, r=, z= and k= lines are accepted and dropped: nothing in a phone call uses them
and an answer never repeats them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# RFC 3261 §20.43: the codes a 488 Not Acceptable Here explains itself with.
WARNING_TEXTS: dict[int, str] = {
    300: "Incompatible network protocol",
    301: "Incompatible network address formats",
    302: "Incompatible transport protocol",
    304: "Media type not available",
    305: "Incompatible media format",
}


class SdpError(ValueError):
    """A session description we cannot use.

    `status` is the response to a request that carries it: 400 when the body is not SDP, 488 when
    it is SDP we cannot accept. `warning_code`, when set, goes in the response's Warning header.
    """

    def __init__(self, message: str, *, status: int = 400, warning_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.warning_code = warning_code

    def warning(self, agent: str) -> str | None:
        """The Warning header value (`305 bridge.example.com "Incompatible media format"`);
        `agent` is our host or host:port."""
        if self.warning_code is None:
            return None
        return f'{self.warning_code} {agent} "{WARNING_TEXTS[self.warning_code]}"'


class Direction(StrEnum):
    """Which way media flows, as the description's author sees it (RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def of(cls, *, send: bool, receive: bool) -> Direction:
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


@dataclass(frozen=True)
class Origin:
    """The o= line: who made the description and which version of the session it is."""

    username: str
    session_id: str
    version: int
    address: str
    address_type: str = "IP4"


@dataclass(frozen=True)
class Connection:
    """A c= line (network type IN); the address may be a host name in SDP, not in our use."""

    address: str
    address_type: str = "IP4"


@dataclass(frozen=True)
class Bandwidth:
    type: str
    value: int


@dataclass(frozen=True)
class Timing:
    start: int = 0
    stop: int = 0


@dataclass(frozen=True)
class Attribute:
    """An a= line; `value` is None for a property attribute (`a=sendrecv`)."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    parameters: str | None = None

    @classmethod
    def parse(cls, value: str | None) -> RtpMap:
        match = _RTPMAP.fullmatch(value or "")
        if match is None:
            raise SdpError(f"bad a=rtpmap: {_show(value or '')}")
        pt, encoding, clock, parameters = match.groups()
        return cls(_number(pt, "rtpmap payload type", 127), encoding, int(clock), parameters)

    @property
    def value(self) -> str:
        rate = f"{self.encoding}/{self.clock_rate}"
        if self.parameters is not None:
            rate += f"/{self.parameters}"
        return f"{self.payload_type} {rate}"


@dataclass(frozen=True)
class MediaDescription:
    """One m= section. `formats` are RTP payload type numbers for RTP streams, tokens otherwise."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto.upper()

    def payload_types(self) -> tuple[int, ...]:
        return tuple(_number(fmt, "payload type", 127) for fmt in self.formats)

    def rtpmaps(self) -> dict[int, RtpMap]:
        maps: dict[int, RtpMap] = {}
        for value in _values(self.attributes, "rtpmap"):
            rtpmap = RtpMap.parse(value)
            if maps.setdefault(rtpmap.payload_type, rtpmap) != rtpmap:
                raise SdpError(f"conflicting a=rtpmap for payload type {rtpmap.payload_type}")
        return maps

    def fmtps(self) -> dict[int, str]:
        """Format parameters by payload type; `a=fmtp:101` with nothing after counts as ""."""
        params: dict[int, str] = {}
        for value in _values(self.attributes, "fmtp"):
            pt, *rest = re.split(r"[ \t]+", (value or "").strip(" \t"), maxsplit=1)
            number = _number(pt, "fmtp payload type", 127)
            if params.setdefault(number, "".join(rest)) != "".join(rest):
                raise SdpError(f"conflicting a=fmtp for payload type {number}")
        return params

    def ptime(self) -> float | None:
        return _decimal(_one(self.attributes, "ptime"), "a=ptime")

    def maxptime(self) -> float | None:
        return _decimal(_one(self.attributes, "maxptime"), "a=maxptime")

    def direction(self) -> Direction | None:
        return _direction(self.attributes)

    def check(self) -> None:
        """Raise SdpError unless every attribute that negotiation reads from this stream
        parses, so that a bad one fails the offer or answer that carried it (400) instead of
        surfacing later in the dialog."""
        self.direction()
        if self.is_rtp:
            self.payload_types()
            self.rtpmaps()
            self.fmtps()
            self.ptime()
            self.maxptime()
            self.rtcp()

    def rtcp(self) -> tuple[int, Connection | None] | None:
        """RFC 3605 a=rtcp: the port, and the address when it is not the stream's own."""
        value = _one(self.attributes, "rtcp")
        if value is None:
            return None
        port, *rest = _fields(value) or [""]
        number = _number(port, "a=rtcp port", 65535)
        return number, (_connection(rest, "a=rtcp") if rest else None)


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    name: str = ""
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timing: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def direction(self) -> Direction | None:
        """The session-level direction, which holds for every stream that names none."""
        return _direction(self.attributes)


def parse(data: bytes | str) -> SessionDescription:
    """A session description from a message body; SdpError when it is not one we can read."""
    text = data if isinstance(data, str) else _decode(data)
    if "\0" in text:
        raise SdpError("SDP contains a NUL character")
    lines: list[tuple[str, str]] = []
    for raw in _LINE_END.split(text):
        line = raw.strip(" \t")
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or line[0] not in _LINE_TYPES:
            raise SdpError(f"not an SDP line: {_show(line)}")
        lines.append((line[0], line[2:]))
    if not lines or lines[0] != ("v", "0"):
        raise SdpError("SDP must begin with v=0")
    sections: list[list[tuple[str, str]]] = [[]]
    for kind, value in lines[1:]:
        if kind == "m":
            sections.append([])
        sections[-1].append((kind, value))
    description = _session(sections[0], tuple(_media(section) for section in sections[1:]))
    # Every stream inherits the session-level direction, so a bad one fails the request that
    # carried it (400) now instead of surfacing later in the dialog.
    description.direction()
    return description


def serialize(description: SessionDescription) -> bytes:
    """The description as SDP text with CRLF line ends, lines in RFC 4566 order."""
    origin = description.origin
    lines = [
        "v=0",
        f"o={origin.username} {origin.session_id} {origin.version} IN "
        f"{origin.address_type} {origin.address}",
        # RFC 4566 §5.3: a session without a meaningful name is "s= ", never an empty s=.
        f"s={description.name or ' '}",
        *_connection_lines(description.connection),
        *(f"b={b.type}:{b.value}" for b in description.bandwidths),
        *(f"t={t.start} {t.stop}" for t in description.timing or (Timing(),)),
        *_attribute_lines(description.attributes),
    ]
    for media in description.media:
        port = str(media.port) if media.port_count is None else f"{media.port}/{media.port_count}"
        lines.append(" ".join([f"m={media.media}", port, media.proto, *media.formats]))
        lines += _connection_lines(media.connection)
        lines += (f"b={b.type}:{b.value}" for b in media.bandwidths)
        lines += _attribute_lines(media.attributes)
    for line in lines:
        if any(c in line for c in "\r\n\0"):
            raise ValueError(f"SDP line with a control character: {line!r}")
    return "".join(line + "\r\n" for line in lines).encode()


_LINE_END = re.compile(r"\r\n|\r|\n")
_LINE_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_LINE_TYPES = frozenset("icbka")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_RTPMAP = re.compile(r"([0-9]{1,3})[ \t]+([^/ \t]+)/([0-9]{1,10})(?:/([^/ \t]+))?")
_NUMBER = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_DIRECTIONS = frozenset(direction.value for direction in Direction)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # SDP text is UTF-8, but some old user agents put Latin-1 in s= or i=; those names are
        # not worth refusing a call over.
        return data.decode("latin-1")


def _session(
    lines: list[tuple[str, str]], media: tuple[MediaDescription, ...]
) -> SessionDescription:
    origin: Origin | None = None
    name: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    timing: list[Timing] = []
    attributes: list[Attribute] = []
    seen: set[str] = {"v"}
    for kind, value in lines:
        if kind in "vosc":
            if kind in seen:
                raise SdpError(f"more than one {kind}= line")
            seen.add(kind)
        if kind == "o":
            origin = _origin(value)
        elif kind == "s":
            name = value.strip(" \t")
        elif kind == "c":
            connection = _connection(_fields(value), "c=")
        elif kind == "b":
            bandwidths.append(_bandwidth(value))
        elif kind == "t":
            timing.append(_timing(value))
        elif kind == "a":
            attributes.append(_attribute(value))
    if origin is None:
        raise SdpError("SDP without an o= line")
    return SessionDescription(
        origin=origin,
        name=name or "",
        connection=connection,
        bandwidths=tuple(bandwidths),
        # Some gateways leave t= out; "0 0" (unbounded) is what every one of them means.
        timing=tuple(timing) or (Timing(),),
        attributes=tuple(attributes),
        media=media,
    )


def _media(lines: list[tuple[str, str]]) -> MediaDescription:
    (_, value), *rest = lines
    fields = _fields(value)
    if len(fields) < 3:
        raise SdpError(f"bad m= line: {_show(value)}")
    media, port_text, proto, *formats = fields
    port_text, slash, count = port_text.partition("/")
    port = _number(port_text, "m= port", 65535)
    if not _TOKEN.fullmatch(media) or not _PROTO.fullmatch(proto):
        raise SdpError(f"bad m= line: {_show(value)}")
    if not all(_TOKEN.fullmatch(fmt) for fmt in formats) or not (formats or port == 0):
        raise SdpError(f"bad m= formats: {_show(value)}")
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    attributes: list[Attribute] = []
    for kind, line in rest:
        if kind not in _MEDIA_LINE_TYPES:
            raise SdpError(f"{kind}= line inside a media description")
        if kind == "c":
            if connection is not None:
                raise SdpError("more than one c= line in a media description")
            connection = _connection(_fields(line), "c=")
        elif kind == "b":
            bandwidths.append(_bandwidth(line))
        elif kind == "a":
            attributes.append(_attribute(line))
    return MediaDescription(
        media=media,
        port=port,
        proto=proto,
        formats=tuple(formats),
        port_count=_number(count, "m= port count", 65535) if slash else None,
        connection=connection,
        bandwidths=tuple(bandwidths),
        attributes=tuple(attributes),
    )


def _origin(value: str) -> Origin:
    fields = _fields(value)
    if len(fields) != 6:
        raise SdpError(f"bad o= line: {_show(value)}")
    username, session_id, version, *network = fields
    connection = _connection(network, "o=")
    return Origin(
        username=username,
        session_id=session_id,
        version=_number(version, "o= session version"),
        address=connection.address,
        address_type=connection.address_type,
    )


def _connection(fields: list[str], what: str) -> Connection:
    if len(fields) != 3:
        raise SdpError(f"bad {what} address: {_show(' '.join(fields))}")
    network, address_type, address = fields
    if network.upper() != "IN":
        raise SdpError(
            f"{what} network type {_show(network)} is not IN", status=488, warning_code=300
        )
    if address_type.upper() not in ("IP4", "IP6"):
        raise SdpError(
            f"{what} address type {_show(address_type)} is neither IP4 nor IP6",
            status=488,
            warning_code=301,
        )
    return Connection(address, address_type.upper())


def _bandwidth(value: str) -> Bandwidth:
    kind, _, amount = value.partition(":")
    if not _TOKEN.fullmatch(kind):
        raise SdpError(f"bad b= line: {_show(value)}")
    return Bandwidth(kind, _number(amount, "b= bandwidth"))


def _timing(value: str) -> Timing:
    fields = _fields(value)
    if len(fields) != 2:
        raise SdpError(f"bad t= line: {_show(value)}")
    return Timing(_number(fields[0], "t= start time"), _number(fields[1], "t= stop time"))


def _attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError(f"bad a= line: {_show(value)}")
    return Attribute(name, rest if colon else None)


def _values(attributes: Iterable[Attribute], name: str) -> list[str | None]:
    return [a.value for a in attributes if a.name.lower() == name]


def _one(attributes: Iterable[Attribute], name: str) -> str | None:
    """The value of an attribute that means one thing per stream; a repeat must agree."""
    values = set(_values(attributes, name))
    if len(values) > 1:
        raise SdpError(f"conflicting a={name} attributes")
    if None in values:
        raise SdpError(f"a={name} without a value")
    return values.pop() if values else None


def _direction(attributes: Iterable[Attribute]) -> Direction | None:
    found = {Direction(a.name.lower()) for a in attributes if a.name.lower() in _DIRECTIONS}
    if len(found) > 1:
        raise SdpError(f"conflicting direction attributes: {', '.join(sorted(found))}")
    return found.pop() if found else None


def _connection_lines(connection: Connection | None) -> list[str]:
    if connection is None:
        return []
    return [f"c=IN {connection.address_type} {connection.address}"]


def _attribute_lines(attributes: Iterable[Attribute]) -> list[str]:
    return [f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}" for a in attributes]


def _fields(value: str) -> list[str]:
    return [field for field in re.split(r"[ \t]+", value) if field]


def _number(text: str, what: str, maximum: int | None = None) -> int:
    if not _NUMBER.fullmatch(text) or (maximum is not None and int(text) > maximum):
        raise SdpError(f"bad {what}: {_show(text)}")
    return int(text)


def _decimal(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    if not _DECIMAL.fullmatch(text.strip(" \t")):
        raise SdpError(f"bad {what}: {_show(text)}")
    return float(text)


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")
