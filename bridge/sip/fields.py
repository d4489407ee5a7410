"""Typed values of the header fields a user agent reads: Via, CSeq, media types, option tags,
delta-seconds, Session-Expires (RFC 4028), Event (RFC 6665). Each parser takes one element
(one comma-separated value) and raises SipParseError for anything its grammar refuses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from bridge.sip.grammar import (
    PARSED_KEPT,
    WSP,
    Params,
    SipParseError,
    at_end,
    expect,
    format_params,
    has_param,
    is_token,
    param,
    parse_uint,
    read_params,
    read_token,
    skip_ws,
    with_param,
)
from bridge.sip.uri import is_host, is_ip_address

MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5
MAX_DELTA_SECONDS = 2**32 - 1
MAX_FORWARDS = 255
# §17.2.3: a branch starting with this cookie is unique per transaction (RFC 3261 senders).
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via element: `SIP/2.0/UDP host:port;params`."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    @property
    def rfc3261_branch(self) -> bool:
        """Whether the branch identifies the transaction by itself (§17.2.3); when not, the
        transaction layer falls back to RFC 2543 matching."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and branch != MAGIC_COOKIE

    @property
    def received(self) -> str | None:
        return param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value a proxy or server filled in; None when absent or empty."""
        value = param(self.params, "rport")
        return None if value is None else int(value)

    @property
    def wants_rport(self) -> bool:
        """RFC 3581: the client asks for the response at the source port of its request."""
        return has_param(self.params, "rport")

    @property
    def maddr(self) -> str | None:
        return param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        value = param(self.params, "ttl")
        return None if value is None else int(value)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=with_param(self.params, name, value))


@functools.lru_cache(maxsize=PARSED_KEPT)
def parse_via(text: str) -> Via:
    pos = skip_ws(text, 0)
    name, pos = read_token(text, pos)
    version, pos = read_token(text, expect(text, pos, "/"))
    transport, pos = read_token(text, expect(text, pos, "/"))
    if pos >= len(text) or text[pos] not in WSP:
        raise SipParseError("whitespace expected before sent-by")
    pos = skip_ws(text, pos)
    if text.startswith("[", pos):
        end = text.find("]", pos) + 1
        if end == 0:
            raise SipParseError("unclosed IPv6 reference")
    else:
        end = pos
        while end < len(text) and text[end] not in ":;" + WSP:
            end += 1
    host = text[pos:end]
    if not is_host(host):
        raise SipParseError("malformed sent-by host")
    port: int | None = None
    pos = skip_ws(text, end)
    if pos < len(text) and text[pos] == ":":
        start = skip_ws(text, pos + 1)
        pos = start
        while pos < len(text) and text[pos].isdigit():
            pos += 1
        port = parse_uint(text[start:pos], 65535)
    params, pos = read_params(text, pos)
    at_end(text, pos)
    via = Via(
        protocol=f"{name.upper()}/{version}",
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
    )
    _check_via_params(via)
    return via


def _check_via_params(via: Via) -> None:
    received = via.received
    if via.has_param("received") and (received is None or not is_ip_address(received)):
        raise SipParseError("received is not an IP address")
    rport = param(via.params, "rport")
    if rport is not None:
        parse_uint(rport, 65535)
    if via.has_param("ttl"):
        parse_uint(param(via.params, "ttl") or "", 255)
    maddr = via.maddr
    if via.has_param("maddr") and (maddr is None or not is_host(maddr)):
        raise SipParseError("bad maddr")
    if via.has_param("branch") and not is_token(via.branch or ""):
        raise SipParseError("bad branch")


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    text = text.strip(WSP)
    split = next((i for i, char in enumerate(text) if char in WSP), len(text))
    number = parse_uint(text[:split], MAX_CSEQ)
    method = text[split:].strip(WSP)
    if not is_token(method):
        raise SipParseError("CSeq method expected")
    return CSeq(number, method)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaType:
    """`type/subtype;params` of Content-Type, or one media-range of Accept (`*` allowed)."""

    type: str
    subtype: str
    params: Params = ()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"

    @property
    def mime(self) -> str:
        """`type/subtype` in lower case, for comparisons."""
        return f"{self.type}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def accepts(self, mime: str) -> bool:
        """Whether this media range (from Accept) covers `mime`."""
        wanted_type, _, wanted_subtype = mime.lower().partition("/")
        own_type, own_subtype = self.type.lower(), self.subtype.lower()
        if own_type == "*":
            return True
        return own_type == wanted_type and own_subtype in ("*", wanted_subtype)


def parse_media_type(text: str) -> MediaType:
    pos = skip_ws(text, 0)
    type_, pos = read_token(text, pos)
    subtype, pos = read_token(text, expect(text, pos, "/"))
    params, pos = read_params(text, pos)
    at_end(text, pos)
    return MediaType(type=type_, subtype=subtype, params=params)


def parse_option_tags(elements: list[str]) -> tuple[str, ...]:
    """Require, Supported, Unsupported, Allow (methods are tokens too). Empty elements are
    skipped: `Supported:` with no value is legal, and a stray comma harms nobody."""
    tags = tuple(element for element in elements if element)
    if not all(is_token(tag) for tag in tags):
        raise SipParseError("option tag expected")
    return tags


def parse_delta_seconds(text: str) -> int:
    return parse_uint(text.strip(WSP), MAX_DELTA_SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpires:
    """RFC 4028 Session-Expires: the interval and who refreshes (`uac`, `uas` or None)."""

    seconds: int
    params: Params = ()

    def __str__(self) -> str:
        return f"{self.seconds}{format_params(self.params)}"

    @property
    def refresher(self) -> str | None:
        value = param(self.params, "refresher")
        return None if value is None else value.lower()


def parse_session_expires(text: str) -> SessionExpires:
    seconds, params = _number_with_params(text)
    refresher = param(params, "refresher")
    if has_param(params, "refresher") and (refresher or "").lower() not in ("uac", "uas"):
        raise SipParseError("refresher must be uac or uas")
    return SessionExpires(seconds=seconds, params=params)


def parse_min_se(text: str) -> int:
    return _number_with_params(text)[0]


def _number_with_params(text: str) -> tuple[int, Params]:
    pos = skip_ws(text, 0)
    end = pos
    while end < len(text) and text[end].isdigit():
        end += 1
    seconds = parse_uint(text[pos:end], MAX_DELTA_SECONDS)
    params, end = read_params(text, end)
    at_end(text, end)
    return seconds, params


@dataclass(frozen=True, slots=True, kw_only=True)
class EventHeader:
    """RFC 6665 Event: the package (`refer` for RFC 3515 NOTIFYs) and its parameters."""

    package: str
    params: Params = ()

    def __str__(self) -> str:
        return f"{self.package}{format_params(self.params)}"

    @property
    def id(self) -> str | None:
        return param(self.params, "id")


def parse_event(text: str) -> EventHeader:
    package, pos = read_token(text, skip_ws(text, 0))
    params, pos = read_params(text, pos)
    at_end(text, pos)
    return EventHeader(package=package, params=params)


def check_call_id(text: str) -> str:
    """Call-IDs are compared byte for byte and only ever echoed, so any run of visible
    characters is taken: deployed stacks use characters (`=`, `#`) that RFC 3261's `word`
    does not list."""
    if not text or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in text):
        raise SipParseError("malformed Call-ID")
    return text
