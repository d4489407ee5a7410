"""Ports for the listeners that tests and benchmarks start.

A port the kernel hands out for binding port 0 comes from its ephemeral range, the same range it
takes client connections' source ports from. Between choosing such a port and the listener
binding it, any HTTP or Redis connection of the test run could take it (CI saw exactly that: the
user agent's TCP listener failed with EADDRINUSE). These ports come from below that range
instead, above the bridge's default RTP range (20000-29999) and the benchmarks' (30000-31999),
handed out in turn so one run never gives the same port twice before wrapping round; each is
checked free for both UDP and TCP, as the SIP user agent listens on both.
"""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Iterator
from pathlib import Path

LOWEST = 32000


def _highest() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, LOWEST + 1000)


def _ports() -> Iterator[int]:
    span = range(LOWEST, _highest())
    start = random.randrange(len(span))
    return itertools.cycle([*span[start:], *span[:start]])


_candidates = _ports()


def _free(port: int, host: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(count: int = 1, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports, each free for both UDP and TCP on `host`."""
    for _ in range(_highest() - LOWEST):
        base = next(_candidates)
        if all(_free(port, host) for port in range(base, base + count)):
            for _ in range(count - 1):
                next(_candidates)
            return base
    raise RuntimeError(f"no {count} consecutive free ports from {LOWEST}")
