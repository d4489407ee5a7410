"""A closed transport refuses to send, so the transactions whose timers outlive it fail with a
transport error instead of writing to a closed socket (which raised inside asyncio)."""

from __future__ import annotations

import pytest

from bridge.sip.transaction import Peer
from bridge.sip.transport import SipTransport


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_send_after_close_raises_oserror(transport: str) -> None:
    sip = SipTransport("127.0.0.1", 0, lambda message, peer: None)
    with pytest.raises(OSError, match="not open"):
        sip.send(b"early", Peer(transport, ("127.0.0.1", 9)))
    await sip.start()
    sip.send(b"\r\n\r\n", Peer(transport, ("127.0.0.1", sip.port)))
    await sip.close()
    with pytest.raises(OSError, match="not open"):
        sip.send(b"late", Peer(transport, ("127.0.0.1", sip.port)))
