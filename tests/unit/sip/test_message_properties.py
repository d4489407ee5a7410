"""Properties over random and mutated input: nothing but SipParseError ever escapes the message
layer, and serializing a parsed message is a fixed point."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.sip.body import find_body
from bridge.sip.framing import FramingError, StreamFramer
from bridge.sip.grammar import SipParseError
from bridge.sip.message import MalformedMessage, Request, Response, SipMessage, parse
from bridge.sip.uri import parse_name_addr, parse_uri, uri_equal
from bridge.sip.validate import check, response_to

TORTURE = sorted((Path(__file__).parents[2] / "data" / "sip-torture").glob("rfc*/*.dat"))
SAMPLES = [path.read_bytes() for path in TORTURE]
# Bytes that mean something to a SIP parser, so mutations hit the interesting paths.
SPECIAL = [*b'\r\n\t :;,<>"\\%@[]/=?*\x00\x7f\xff0123456789abcdefSIP.', 0xC3, 0xA9]
ACCESSORS = [name for name, value in vars(SipMessage).items() if isinstance(value, property)] + [
    "start_line"
]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        byte = draw(st.sampled_from(SPECIAL) | st.integers(0, 255))
        if kind == "insert":
            data[position:position] = bytes([byte])
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "replace" and position < len(data):
            data[position] = byte
        else:
            start = data.rfind(b"\n", 0, position) + 1
            end = data.find(b"\n", position) + 1 or len(data)
            data[start:start] = data[start:end]
    return bytes(data)


messages = st.one_of(mutated(), st.binary(max_size=600), st.sampled_from(SAMPLES))


def _exercise(message: Request | Response) -> None:
    """Every accessor either answers or raises SipParseError; so do the builders over it."""
    for name in ACCESSORS:
        try:
            value = getattr(message, name)
            if callable(value):
                value()
        except SipParseError:
            pass
    with contextlib.suppress(SipParseError):
        find_body(message, "application/sdp")
    if isinstance(message, Request):
        response_to(message, 400).to_bytes()
    message.to_bytes()


def _outcome(data: bytes, *, datagram: bool) -> Request | Response | MalformedMessage:
    try:
        message = parse(data, datagram=datagram)
    except MalformedMessage as exc:
        if exc.envelope is not None:
            response_to(exc.envelope, 400, exc.reason).to_bytes()
        check(exc)
        return exc
    _exercise(message)
    check(message)
    return message


@SETTINGS
@given(messages)
def test_only_parse_errors_escape(data: bytes) -> None:
    _outcome(data, datagram=True)
    _outcome(data, datagram=False)


@SETTINGS
@given(messages, st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_the_framer_only_raises_framing_errors(data: bytes, chunks: list[int]) -> None:
    framer = StreamFramer(max_head_bytes=512, max_body_bytes=512)
    position = 0
    try:
        for size in [*chunks, len(data)]:
            for item in framer.feed(data[position : position + size]):
                if isinstance(item, bytes):
                    _outcome(item, datagram=False)
            position += size
    except FramingError:
        pass


@SETTINGS
@given(messages)
def test_serializing_a_parsed_message_is_a_fixed_point(data: bytes) -> None:
    try:
        message = parse(data, datagram=True)
    except MalformedMessage:
        return
    wire = message.to_bytes()
    again = parse(wire, datagram=True)
    assert again.to_bytes() == wire
    assert parse(wire, datagram=False) == again
    assert StreamFramer().feed(wire) == [wire]
    for name in ("start_line", "vias", "call_id", "cseq", "from_addr", "to_addr", "contacts"):
        try:
            before = getattr(message, name)
        except SipParseError:
            continue
        after = getattr(again, name)
        assert (before() == after()) if callable(before) else before == after


URI_CHARS = st.sampled_from(list("sip:tel+@[]%;=?&,.-_!~*'()/$ 0123456789abcdefSIPxyz<>\""))


@SETTINGS
@given(st.one_of(st.text(URI_CHARS, max_size=40), st.text(max_size=40)))
def test_uris_and_addresses_only_raise_parse_errors(text: str) -> None:
    for candidate in (text, "sip:" + text, "sip:u@" + text, "tel:" + text):
        try:
            uri = parse_uri(candidate)
        except SipParseError:
            pass
        else:
            assert str(uri) == uri.scheme + candidate[candidate.index(":") :]
            assert uri_equal(uri, uri)
            assert parse_uri(str(uri)) == uri
        try:
            address = parse_name_addr(candidate)
        except SipParseError:
            pass
        else:
            assert parse_name_addr(str(address)) == address
