from __future__ import annotations

import pytest

from bridge.sip.framing import PING, PONG, FramingError, Ping, StreamFramer, is_keepalive
from bridge.sip.message import Request, parse


def _message(body: bytes = b"", *, length: str | None = None, extra: str = "") -> bytes:
    cl = str(len(body)) if length is None else length
    head = (
        "MESSAGE sip:bot@bridge.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
        f"{extra}Content-Length: {cl}\r\n\r\n"
    )
    return head.encode() + body


FIRST = _message(b"binary\r\n\r\nwith blank lines\x00")
SECOND = _message(extra="X-N: 2\r\n")


def test_messages_come_out_whatever_the_chunking() -> None:
    stream = b"\r\n" + FIRST + b"\r\n\r\n" + SECOND + b"\r\n"
    for cut in range(len(stream) + 1):
        for second_cut in (cut, min(len(stream), cut + 7)):
            framer = StreamFramer()
            items = framer.feed(stream[:cut])
            items += framer.feed(stream[cut:second_cut])
            items += framer.feed(stream[second_cut:])
            assert items == [FIRST, PING, SECOND], (cut, second_cut)
    framer = StreamFramer()
    assert [framer.feed(bytes([byte])) for byte in stream].count([PING]) == 1


def test_a_framed_message_parses_as_a_stream_message() -> None:
    (frame,) = StreamFramer().feed(FIRST)
    assert isinstance(frame, bytes)
    message = parse(frame, datagram=False)
    assert isinstance(message, Request) and message.body == b"binary\r\n\r\nwith blank lines\x00"


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [PING, PING]
    assert framer.feed(b"\r\n") == []  # a pong, or the start of a ping
    assert framer.pending == 2
    assert framer.feed(b"\r\n") == [PING]
    assert framer.feed(b"\r\n" + SECOND) == [SECOND]  # a lone CRLF before a message is dropped
    assert framer.feed(b"\n\r" + SECOND) == [SECOND]
    assert framer.pending == 0
    assert isinstance(PING, Ping) and PONG == b"\r\n"


def test_partial_messages_wait() -> None:
    framer = StreamFramer()
    assert framer.feed(FIRST[:-1]) == []
    assert framer.pending == len(FIRST) - 1
    assert framer.feed(FIRST[-1:] + SECOND[:10]) == [FIRST]
    assert framer.pending == 10


def test_missing_content_length_means_no_body() -> None:
    head = FIRST.split(b"Content-Length")[0] + b"\r\n"
    assert StreamFramer().feed(head + SECOND) == [head, SECOND]


def test_compact_content_length() -> None:
    message = _message(b"hello").replace(b"Content-Length", b"l")
    assert StreamFramer().feed(message + SECOND) == [message, SECOND]


@pytest.mark.parametrize(
    "message",
    [
        _message(length="-5"),
        _message(length="five"),
        _message(length="99999999999999999999999"),
        _message(length="65537"),
        _message(extra="l: 0\r\n"),
    ],
)
def test_unusable_content_length_breaks_the_stream(message: bytes) -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError):
        framer.feed(message)
    with pytest.raises(FramingError):
        framer.feed(SECOND)


def test_header_section_limit() -> None:
    padding = "X-Pad: " + "a" * 100 + "\r\n"
    big = _message(extra=padding * 700)
    assert len(big) > 65536
    framer = StreamFramer()
    with pytest.raises(FramingError, match="65536"):
        framer.feed(big)
    endless = StreamFramer(max_head_bytes=1000)
    endless.feed(b"INVITE sip:a@example.com SIP/2.0\r\n")
    with pytest.raises(FramingError):
        for _ in range(100):
            endless.feed(b"X-Pad: aaaaaaaa\r\n")
    limited = StreamFramer(max_head_bytes=len(SECOND) - 4)
    assert limited.feed(SECOND) == [SECOND]
    with pytest.raises(FramingError):
        StreamFramer(max_head_bytes=len(SECOND) - 5).feed(SECOND)


def test_body_limit() -> None:
    framer = StreamFramer(max_body_bytes=10)
    assert framer.feed(_message(b"0123456789")) == [_message(b"0123456789")]
    with pytest.raises(FramingError):
        framer.feed(_message(b"0123456789a"))


def test_datagram_keepalives() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(SECOND)


def test_in_message_is_part_of_a_message_not_keepalive_bytes() -> None:
    framer = StreamFramer()
    assert not framer.in_message
    framer.feed(b"\r\n")  # a pong, or half a ping
    assert framer.pending == 2 and not framer.in_message
    framer.feed(b"\r\n" + FIRST[:1])
    assert framer.in_message
    framer.feed(FIRST[1:])
    assert framer.pending == 0 and not framer.in_message
