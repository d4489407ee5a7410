"""RTP/RTCP port pairs for calls: an even port for RTP and the next odd one for RTCP (RFC 3550
§11), from a configured range.

Allocation rotates through the range instead of reusing the lowest free pair, so a port just
released is the last to be handed out again: a stray packet of the previous call then finds no
one, instead of landing in a new call. A pair is bound as soon as it is chosen and handed over
bound, so no other process can take it in between (aiortp's allocator probed a pair by binding
and closing it, leaving that race open).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


class RtpPortsExhausted(RuntimeError):
    pass


@dataclass
class PortPair:
    port: int
    """The RTP port; RTCP is on the next one."""
    rtp: socket.socket
    rtcp: socket.socket


class RtpPorts:
    def __init__(self, low: int, high: int) -> None:
        first = low + low % 2
        if not 0 < first < high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd pair")
        self.low = first
        self.high = high
        self.capacity = (high - first + 1) // 2
        self._in_use: set[int] = set()
        self._next = 0

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def reserve(self) -> int:
        """The next free even port, in rotation; it stays reserved until released."""
        for step in range(self.capacity):
            index = (self._next + step) % self.capacity
            port = self.low + 2 * index
            if port not in self._in_use:
                self._in_use.add(port)
                self._next = (index + 1) % self.capacity
                return port
        raise RtpPortsExhausted(
            f"all {self.capacity} RTP port pairs in {self.low}-{self.high} are in use by calls"
        )

    def release(self, port: int) -> None:
        self._in_use.discard(port)

    def bind(self, host: str) -> PortPair:
        """A reserved pair with both UDP sockets bound on `host`; skips pairs that another
        process holds."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        busy: set[int] = set()
        while True:
            port = self.reserve()
            if port in busy:
                self.release(port)
                break
            try:
                rtp = _bound(family, host, port)
                try:
                    return PortPair(port, rtp, _bound(family, host, port + 1))
                except OSError:
                    rtp.close()
                    raise
            except OSError as exc:
                self.release(port)
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.add(port)
        raise RtpPortsExhausted(
            f"no free RTP port pair in {self.low}-{self.high}: {self.in_use} in use by calls, "
            f"{len(busy)} held by other processes"
        )


def _bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
