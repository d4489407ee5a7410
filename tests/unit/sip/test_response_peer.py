"""Where responses to a UDP request go when its top Via has a maddr (RFC 3261 §18.2.2): there
when it is an IP address; a host name is ignored, since resolving it would block the loop."""

from __future__ import annotations

import pytest

from bridge.sip.message import Request, parse
from bridge.sip.transaction import Peer
from bridge.sip.transport import response_peer, stamp_via

SOURCE = ("203.0.113.9", 31000)


def _request(via_params: str) -> Request:
    text = (
        "OPTIONS sip:bot@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP client.example:5070;branch=z9hG4bKmaddr{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bot@192.0.2.10>\r\n"
        "Call-ID: maddr@example.com\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse(text.encode(), datagram=True)
    assert isinstance(message, Request)
    stamp_via(message, SOURCE)
    return message


@pytest.mark.parametrize(
    ("params", "address"),
    [
        (";maddr=239.255.255.1", ("239.255.255.1", 5070)),
        (";maddr=[2001:db8::1]", ("2001:db8::1", 5070)),
        (";maddr=resolver-stall.example", ("203.0.113.9", 5070)),
        (";maddr=resolver-stall.example;rport", SOURCE),
    ],
)
def test_maddr(params: str, address: tuple[str, int]) -> None:
    assert response_peer(_request(params), SOURCE, "UDP") == Peer("UDP", address)
