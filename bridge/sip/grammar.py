"""RFC 3261 §25 lexical rules shared by URIs, addresses and header values, and the one error
every SIP parsing failure raises.

The scanners work on header text whose folding is already undone (a fold is a single space),
take a position and return the next one, so each caller decides what may follow.
"""

from __future__ import annotations

import re
import string

ALPHANUM = frozenset(string.ascii_letters + string.digits)
TOKEN_CHARS = ALPHANUM | frozenset("-.!%*_+`'~")
# gen-value is token / host / quoted-string; ":" and "[]" let an IPv6 host through (RFC 5118
# §4.5 asks receivers to take `received=2001:db8::9:255` as well as the bracketed form).
GEN_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")
WSP = " \t"
_TOKEN = re.compile(f"[{re.escape(''.join(sorted(TOKEN_CHARS)))}]+")

Params = tuple[tuple[str, str | None], ...]
PARSED_KEPT = 4096
"""How many parsed values the URI, name-addr and Via parsers remember: what they return is
immutable, and the same From, To and Via text comes back several times in each message and in
every message of a dialog (each message read them ~10 times over)."""


class SipParseError(ValueError):
    """Anything the SIP message layer cannot read. Parsing untrusted input raises nothing else."""


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in WSP:
        pos += 1
    return pos


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def read_token(text: str, pos: int) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] in TOKEN_CHARS:
        end += 1
    if end == pos:
        raise SipParseError(f"token expected at {pos}")
    return text[pos:end], end


def expect(text: str, pos: int, char: str) -> int:
    """Skip whitespace, `char` and whitespace again (SWS around separators)."""
    pos = skip_ws(text, pos)
    if pos >= len(text) or text[pos] != char:
        raise SipParseError(f"{char!r} expected at {pos}")
    return skip_ws(text, pos + 1)


def at_end(text: str, pos: int) -> None:
    if skip_ws(text, pos) != len(text):
        raise SipParseError(f"unexpected text at {pos}")


def parse_uint(text: str, limit: int) -> int:
    """A decimal number of at most `limit`. Checked before int() so neither non-ASCII digits
    nor a huge digit string (int() refuses more than 4300 digits) reach it."""
    if not text or not text.isascii() or not text.isdigit():
        raise SipParseError("number expected")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise SipParseError(f"number larger than {limit}")
    return int(digits)


def read_quoted(text: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at `pos`: its decoded content and the position after it."""
    if pos >= len(text) or text[pos] != '"':
        raise SipParseError(f"quoted string expected at {pos}")
    chars: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(chars), pos + 1
        if char == "\\":
            if pos + 1 >= len(text) or not _quotable(text[pos + 1]):
                raise SipParseError("bad quoted-pair")
            chars.append(text[pos + 1])
            pos += 2
            continue
        if not _qdtext(char):
            raise SipParseError(f"control character in quoted string at {pos}")
        chars.append(char)
        pos += 1
    raise SipParseError("unterminated quoted string")


def quote(text: str) -> str:
    """The quoted-string that decodes to `text`."""
    out = ['"']
    for char in text:
        if char in "\r\n":
            raise ValueError("CR and LF cannot be quoted")
        out.append(char if _qdtext(char) and char not in '"\\' else "\\" + char)
    out.append('"')
    return "".join(out)


def _quotable(char: str) -> bool:
    # quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
    return ord(char) <= 0x7F and char not in "\r\n"


def _qdtext(char: str) -> bool:
    # qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII; the backslash starts a pair.
    code = ord(char)
    return char in WSP or (0x21 <= code <= 0x7E and char != "\\") or code >= 0x80


def read_params(text: str, pos: int) -> tuple[Params, int]:
    """`*( SEMI generic-param )`: names as written, values as written (quotes kept)."""
    params: list[tuple[str, str | None]] = []
    while True:
        start = skip_ws(text, pos)
        if start >= len(text) or text[start] != ";":
            return tuple(params), pos
        pos = skip_ws(text, start + 1)
        name, pos = read_token(text, pos)
        after = skip_ws(text, pos)
        value: str | None = None
        if after < len(text) and text[after] == "=":
            pos = skip_ws(text, after + 1)
            value, pos = _read_gen_value(text, pos)
        params.append((name, value))


def _read_gen_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        _, end = read_quoted(text, pos)
        return text[pos:end], end
    end = pos
    while end < len(text) and text[end] in GEN_VALUE_CHARS:
        end += 1
    if end == pos:
        raise SipParseError(f"parameter value expected at {pos}")
    return text[pos:end], end


def param(params: Params, name: str) -> str | None:
    """The value of parameter `name` (case-insensitive), unquoted; None when it is absent or has
    no value (`has_param` tells those apart)."""
    wanted = name.lower()
    for key, value in params:
        if key.lower() == wanted:
            if value is not None and value.startswith('"'):
                return read_quoted(value, 0)[0]
            return value
    return None


def has_param(params: Params, name: str) -> bool:
    wanted = name.lower()
    return any(key.lower() == wanted for key, _ in params)


def with_param(params: Params, name: str, value: str | None) -> Params:
    """`params` with `name` set to `value` (as written: a token, host or quoted string), in place
    when present, else appended."""
    if not is_token(name) or (value is not None and not _is_gen_value(value)):
        raise ValueError(f"bad parameter {name}={value}")
    wanted = name.lower()
    out: list[tuple[str, str | None]] = []
    placed = False
    for key, old in params:
        if key.lower() != wanted:
            out.append((key, old))
        elif not placed:
            out.append((key, value))
            placed = True
    if not placed:
        out.append((name, value))
    return tuple(out)


def _is_gen_value(value: str) -> bool:
    try:
        return _read_gen_value(value, 0)[1] == len(value)
    except SipParseError:
        return False


def format_params(params: Params) -> str:
    return "".join(f";{key}" if value is None else f";{key}={value}" for key, value in params)


def split_top_level(text: str) -> list[str]:
    """Split on commas outside quoted strings and angle brackets, stripping each element."""
    if '"' not in text and "<" not in text:
        return [part.strip(WSP) for part in text.split(",")]
    parts: list[str] = []
    start = 0
    pos = 0
    in_angle = False
    while pos < len(text):
        char = text[pos]
        if char == '"':
            pos = _skip_quoted(text, pos)
            continue
        if char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            parts.append(text[start:pos].strip(WSP))
            start = pos + 1
        pos += 1
    parts.append(text[start:].strip(WSP))
    return parts


def _skip_quoted(text: str, pos: int) -> int:
    """Past the quoted string at `pos`, or to the end when it is unterminated (the element's own
    parser reports that)."""
    pos += 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == '"':
            return pos + 1
        else:
            pos += 1
    return len(text)
