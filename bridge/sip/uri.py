"""URIs (RFC 3261 §19.1, RFC 3966 tel:, anything else kept opaque) and name-addr/addr-spec
addresses (§20.10: display name, URI, header parameters such as tag).

A parsed URI keeps every component as written, %-escapes included, so it serializes to the text
it came from: peers (and SBCs that hide state in Record-Route users) get their URIs back
unchanged. Decoded values and the §19.1.4 comparison rules are separate accessors.
"""

from __future__ import annotations

import functools
import ipaddress
import string
from dataclasses import dataclass, replace

from bridge.sip.grammar import (
    ALPHANUM,
    PARSED_KEPT,
    TOKEN_CHARS,
    WSP,
    Params,
    SipParseError,
    at_end,
    format_params,
    has_param,
    param,
    parse_uint,
    quote,
    read_params,
    read_quoted,
    read_token,
    skip_ws,
    with_param,
)

_UNRESERVED = ALPHANUM | frozenset("-_.!~*'()")
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$")
# §19.1.4: an escaped character from this set is not the same as the character itself.
_RESERVED = frozenset(";/?:@&=+$,")
_HEX = frozenset(string.hexdigits)
_SCHEME_CHARS = ALPHANUM | frozenset("+-.")
_LABEL_CHARS = ALPHANUM | frozenset("-_")
_TEL_SEPARATORS = frozenset("-.()")
_TEL_PARAM_NAME = ALPHANUM | frozenset("-")
# §19.1.1 table 1: the parameters that must match whenever either URI has them.
_SIGNIFICANT_PARAMS = (b"user", b"ttl", b"method", b"maddr", b"transport")


@dataclass(frozen=True, slots=True, kw_only=True)
class SipUri:
    """A sip: or sips: URI. `user`, `password`, parameter and header names and values are
    as written (escaped); `host` keeps the brackets of an IPv6 reference."""

    host: str
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        out.append(format_params(self.params))
        if self.headers:
            out += ["?", "&".join(f"{name}={value}" for name, value in self.headers)]
        return "".join(out)

    @property
    def decoded_user(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def host_address(self) -> str:
        """The host as a socket address wants it: lower case, IPv6 without brackets."""
        return self.host.strip("[]").lower()

    def param(self, name: str) -> str | None:
        """The decoded value of URI parameter `name`; None when absent or valueless."""
        value = param(self.params, name)
        return None if value is None else unescape(value)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelUri:
    """A tel: URI (RFC 3966), validated but otherwise opaque: `number` as written (visual
    separators kept), then its parameters."""

    number: str
    params: Params = ()

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    @property
    def scheme(self) -> str:
        return "tel"


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsoluteUri:
    """A URI of any other scheme, kept as written: enough to answer 416 or to carry it along."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddr:
    """An address in From, To, Contact, Route, Refer-To…: optional display name (decoded),
    the URI, and the header parameters as written. Serialized always in the `<uri>` form,
    which is unambiguous whatever the URI holds."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return replace(self, params=with_param(self.params, name, value))


@functools.lru_cache(maxsize=PARSED_KEPT)
def parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not scheme[0].isalpha() or not _all_in(scheme, _SCHEME_CHARS):
        raise SipParseError("URI scheme expected")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if not rest or not all(0x21 <= ord(char) <= 0x7E and char not in '<>"' for char in rest):
        raise SipParseError("malformed URI")
    return AbsoluteUri(scheme=scheme, rest=rest)


@functools.lru_cache(maxsize=PARSED_KEPT)
def parse_name_addr(text: str) -> NameAddr:
    """name-addr or addr-spec, then header parameters, the whole of `text`."""
    pos = skip_ws(text, 0)
    display: str | None = None
    if pos < len(text) and text[pos] == '"':
        display, pos = read_quoted(text, pos)
        pos = skip_ws(text, pos)
    elif pos < len(text) and text[pos] != "<":
        display, pos = _display_tokens(text, pos)
    if display is None and (pos >= len(text) or text[pos] != "<"):
        return _addr_spec(text, pos)
    if pos >= len(text) or text[pos] != "<":
        raise SipParseError("'<' expected after the display name")
    close = text.find(">", pos)
    if close < 0:
        raise SipParseError("'>' missing")
    inner = text[pos + 1 : close]
    if any(char in WSP for char in inner):
        raise SipParseError("whitespace inside <>")
    uri = parse_uri(inner)
    params, pos = read_params(text, close + 1)
    at_end(text, pos)
    return NameAddr(uri=uri, display_name=display, params=params)


def _display_tokens(text: str, pos: int) -> tuple[str | None, int]:
    """`*(token LWS)` before '<'; (None, start) when the text is an addr-spec instead."""
    start = pos
    words: list[str] = []
    while pos < len(text) and text[pos] in TOKEN_CHARS:
        word, pos = read_token(text, pos)
        words.append(word)
        pos = skip_ws(text, pos)
    if words and pos < len(text) and text[pos] == "<":
        return " ".join(words), pos
    return None, start


def _addr_spec(text: str, pos: int) -> NameAddr:
    end = pos
    while end < len(text) and text[end] not in ";" + WSP:
        end += 1
    uri_text = text[pos:end]
    # §20: a URI holding a comma, question mark or semicolon must be in angle brackets; without
    # them those characters would be read as separators.
    if "," in uri_text or "?" in uri_text:
        raise SipParseError("URI with ',' or '?' must be enclosed in <>")
    uri = parse_uri(uri_text)
    params, end = read_params(text, end)
    at_end(text, end)
    return NameAddr(uri=uri, params=params)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    if rest.count("@") > 1:
        raise SipParseError("more than one '@'")
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user, colon, pass_text = userinfo.partition(":")
        if not user or not _escaped_in(user, _USER_CHARS):
            raise SipParseError("malformed user")
        if colon:
            if not _escaped_in(pass_text, _PASSWORD_CHARS):
                raise SipParseError("malformed password")
            password = pass_text
    host, after = _split_host(hostpart)
    port: int | None = None
    if after.startswith(":"):
        end = _first_of(after, ";?", 1)
        try:
            port = parse_uint(after[1:end], 65535)
        except SipParseError as exc:
            raise SipParseError("malformed port") from exc
        after = after[end:]
    params_text, question, headers_text = after.partition("?")
    if params_text and not params_text.startswith(";"):
        raise SipParseError("malformed host")
    params = tuple(_uri_param(item) for item in params_text.split(";")[1:])
    headers = tuple(_uri_header(item) for item in headers_text.split("&")) if question else ()
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )


def _split_host(text: str) -> tuple[str, str]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise SipParseError("unclosed IPv6 reference")
        host = text[: close + 1]
        _check_ipv6(host[1:-1])
        return host, text[close + 1 :]
    end = _first_of(text, ":;?", 0)
    host = text[:end]
    if not _valid_host(host):
        raise SipParseError("malformed host")
    return host, text[end:]


def _valid_host(host: str) -> bool:
    labels = (host[:-1] if host.endswith(".") else host).split(".")
    if not all(label and _all_in(label, _LABEL_CHARS) for label in labels):
        return False
    if any(label[0] == "-" or label[-1] == "-" for label in labels):
        return False
    if all(label.isdigit() for label in labels):
        return len(labels) == 4 and all(len(label) <= 3 and int(label) <= 255 for label in labels)
    # hostname: the top label starts with a letter, so "1.2.3" is neither name nor address.
    return not labels[-1][0].isdigit()


def _check_ipv6(text: str) -> None:
    # ipaddress also takes a "%zone" suffix, which has no place in a SIP URI.
    if not text or not _all_in(text, _HEX | frozenset(":.")):
        raise SipParseError("malformed IPv6 reference")
    try:
        ipaddress.IPv6Address(text)
    except ValueError as exc:
        raise SipParseError("malformed IPv6 reference") from exc


def is_ip_address(text: str) -> bool:
    """An IPv4 address, or an IPv6 address with or without brackets (Via received=, maddr=)."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if ":" in inner:
        try:
            _check_ipv6(inner)
        except SipParseError:
            return False
        return True
    parts = inner.split(".")
    return len(parts) == 4 and all(
        part.isascii() and part.isdigit() and len(part) <= 3 and int(part) <= 255 for part in parts
    )


def is_host(text: str) -> bool:
    """A hostname, IPv4 address or bracketed IPv6 reference."""
    if text.startswith("["):
        return text.endswith("]") and is_ip_address(text)
    return _valid_host(text)


def _uri_param(item: str) -> tuple[str, str | None]:
    name, equals, value = item.partition("=")
    if not name or not _escaped_in(name, _PARAM_CHARS):
        raise SipParseError("malformed URI parameter")
    if not equals:
        return name, None
    if not value or not _escaped_in(value, _PARAM_CHARS):
        raise SipParseError("malformed URI parameter value")
    return name, value


def _uri_header(item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals or not name or not _escaped_in(name, _HEADER_CHARS):
        raise SipParseError("malformed URI header")
    if not _escaped_in(value, _HEADER_CHARS):
        raise SipParseError("malformed URI header value")
    return name, value


def _parse_tel(rest: str) -> TelUri:
    number, semicolon, params_text = rest.partition(";")
    if number.startswith("+"):
        digits = number[1:]
        valid = _all_in(digits, frozenset(string.digits) | _TEL_SEPARATORS)
        valid = valid and any(char.isdigit() for char in digits)
    else:
        allowed = _HEX | frozenset("*#")
        valid = _all_in(number, allowed | _TEL_SEPARATORS) and any(c in allowed for c in number)
    if not valid:
        raise SipParseError("malformed telephone number")
    params: list[tuple[str, str | None]] = []
    for item in params_text.split(";") if semicolon else ():
        name, equals, value = item.partition("=")
        if not name or not _all_in(name, _TEL_PARAM_NAME):
            raise SipParseError("malformed tel: parameter")
        if equals and (not value or not _escaped_in(value, _PARAM_CHARS)):
            raise SipParseError("malformed tel: parameter value")
        params.append((name, value if equals else None))
    return TelUri(number=number, params=tuple(params))


def unescape(text: str) -> str:
    """%HH escapes decoded (as UTF-8; bytes that are not survive as surrogate escapes)."""
    return _unescape_bytes(text, keep=frozenset()).decode("utf-8", "surrogateescape")


def _unescape_bytes(text: str, *, keep: frozenset[str]) -> bytes:
    """Decode %HH escapes, except those of characters in `keep`, which stay as upper-case %HH."""
    out = bytearray()
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "%" and _is_escape(text, pos):
            code = int(text[pos + 1 : pos + 3], 16)
            if chr(code) in keep:
                out += f"%{code:02X}".encode()
            else:
                out.append(code)
            pos += 3
            continue
        out += char.encode("utf-8", "surrogateescape")
        pos += 1
    return bytes(out)


def _is_escape(text: str, pos: int) -> bool:
    return pos + 2 < len(text) and text[pos + 1] in _HEX and text[pos + 2] in _HEX


def _escaped_in(text: str, allowed: frozenset[str]) -> bool:
    """Every character of `text` is in `allowed` or part of a well-formed %HH escape."""
    pos = 0
    while pos < len(text):
        if text[pos] == "%":
            if not _is_escape(text, pos):
                return False
            pos += 3
        elif text[pos] in allowed:
            pos += 1
        else:
            return False
    return True


def _all_in(text: str, allowed: frozenset[str]) -> bool:
    return allowed.issuperset(text)


def _first_of(text: str, chars: str, start: int) -> int:
    positions = [i for i in (text.find(char, start) for char in chars) if i >= 0]
    return min(positions, default=len(text))


def uri_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence: RFC 3261 §19.1.4 for sip/sips, RFC 3966 §4 for tel, and for other
    schemes the text with the scheme compared without case. Not transitive (a parameter only
    one URI has is ignored), hence not `__eq__`."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _sip_equal(a, b)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        return _tel_key(a) == _tel_key(b)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme == b.scheme and a.rest == b.rest
    return False


def _sip_equal(a: SipUri, b: SipUri) -> bool:
    if a.scheme != b.scheme or a.port != b.port or _host_key(a.host) != _host_key(b.host):
        return False
    if _userinfo_key(a) != _userinfo_key(b):
        return False
    params_a, params_b = _param_map(a.params), _param_map(b.params)
    if any((name in params_a) != (name in params_b) for name in _SIGNIFICANT_PARAMS):
        return False
    if any(params_a[name] != params_b[name] for name in params_a.keys() & params_b.keys()):
        return False
    return {_key(k): _key(v) for k, v in a.headers} == {_key(k): _key(v) for k, v in b.headers}


def _key(text: str, *, fold: bool = True) -> bytes:
    decoded = _unescape_bytes(text, keep=_RESERVED)
    return decoded.lower() if fold else decoded


def _userinfo_key(uri: SipUri) -> tuple[bytes | None, bytes | None]:
    # The only case-sensitive part of a SIP URI.
    user = None if uri.user is None else _key(uri.user, fold=False)
    password = None if uri.password is None else _key(uri.password, fold=False)
    return user, password


def _host_key(host: str) -> str:
    if host.startswith("["):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            return host
    return host.lower().removesuffix(".")


def _param_map(params: Params) -> dict[bytes, bytes | None]:
    return {_key(name): None if value is None else _key(value) for name, value in params}


def _tel_key(uri: TelUri) -> tuple[str, frozenset[tuple[str, str | None]]]:
    number = "".join(char for char in uri.number if char not in _TEL_SEPARATORS).lower()
    params = frozenset(
        (name.lower(), None if value is None else unescape(value).lower())
        for name, value in uri.params
    )
    return number, params
