"""Cutting a byte stream (TCP, later TLS) into SIP messages by Content-Length (RFC 3261 §18.3),
with the RFC 5626 §4.4.1 keep-alives: a CRLFCRLF "ping" between messages is reported so the
transport can answer the single-CRLF "pong"; lone CRLFs there (pongs, or padding that §7.5 says
to ignore) are dropped.

A message without Content-Length is taken to have no body: RFC 3261 requires the header on
streams, and "no body" is the reading that keeps a sloppy body-less request working.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.sip.grammar import WSP, SipParseError, parse_uint
from bridge.sip.headers import canonical_name
from bridge.sip.message import HEAD_END, split_head

PONG = b"\r\n"
_PING = b"\r\n\r\n"
MAX_HEAD_BYTES = 65536
MAX_BODY_BYTES = 65536


@dataclass(frozen=True, slots=True)
class Ping:
    """A keep-alive ping from the peer: write PONG back."""


PING = Ping()


class FramingError(SipParseError):
    """The stream can no longer be cut into messages: close the connection."""


class StreamFramer:
    """Feed it the bytes of one connection in whatever chunks they arrive; it returns each
    complete message (to give to `parse(…, datagram=False)`) and each ping, in order."""

    def __init__(
        self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._message_end: int | None = None
        self._scanned = 0
        self._failure: str | None = None

    @property
    def pending(self) -> int:
        """Bytes received that are not part of a complete message yet."""
        return len(self._buffer)

    @property
    def in_message(self) -> bool:
        """Whether part of a message is waiting for the rest; CRs and LFs between messages (a
        pong, half a ping) are not part of one."""
        return bool(self._buffer) and self._buffer[0] not in b"\r\n"

    def feed(self, data: bytes) -> list[bytes | Ping]:
        """Raises FramingError for a header section over the limit or a Content-Length that
        cannot be used, and again on every later call."""
        if self._failure is not None:
            raise FramingError(self._failure)
        self._buffer += data
        out: list[bytes | Ping] = []
        try:
            while self._next(out):
                pass
        except FramingError as exc:
            self._failure = str(exc)
            raise
        return out

    def _next(self, out: list[bytes | Ping]) -> bool:
        """Take one item off the buffer into `out`; False when more bytes are needed."""
        if self._message_end is None:
            if not self._skip_keepalives(out):
                return False
            end = HEAD_END.search(self._buffer, self._scanned)
            if end is None or end.start() > self.max_head_bytes:
                if len(self._buffer) > self.max_head_bytes:
                    raise FramingError(f"header section over {self.max_head_bytes} bytes")
                # A terminator may straddle this chunk and the next one.
                self._scanned = max(0, len(self._buffer) - 3)
                return False
            self._message_end = end.end() + self._content_length(bytes(self._buffer[: end.start()]))
        if len(self._buffer) < self._message_end:
            return False
        out.append(bytes(self._buffer[: self._message_end]))
        del self._buffer[: self._message_end]
        self._message_end = None
        self._scanned = 0
        return True

    def _skip_keepalives(self, out: list[bytes | Ping]) -> bool:
        """Drop CRs and LFs before a message, reporting pings; True once a message starts."""
        buffer = self._buffer
        while buffer:
            if buffer.startswith(_PING):
                out.append(PING)
                del buffer[:4]
            elif _PING.startswith(buffer):
                return False
            elif buffer[0] in b"\r\n":
                del buffer[: 2 if buffer.startswith(b"\r\n") else 1]
            else:
                return True
        return False

    def _content_length(self, head: bytes) -> int:
        _, rows, _ = split_head(head)
        values = [value for name, value in rows if canonical_name(name) == "Content-Length"]
        if len(values) > 1:
            raise FramingError("more than one Content-Length")
        if not values:
            return 0
        try:
            return parse_uint(values[0].strip(WSP), self.max_body_bytes)
        except SipParseError as exc:
            raise FramingError(f"unusable Content-Length: {exc}") from exc


def is_keepalive(datagram: bytes) -> bool:
    """A datagram of nothing but CRs and LFs: a NAT keep-alive, not a message."""
    return bool(datagram) and not datagram.strip(b"\r\n")
