"""Trunk security in the user agent: who gets an answer, and digest authentication of INVITEs.
Parsed messages in, captured bytes out, on a manual clock."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from bridge.settings import SettingsError, load_settings
from bridge.sip.access import Verdict
from bridge.sip.call_interfaces import EndReason
from bridge.sip.digest import parse_digest_params
from bridge.sip.message import Request, Response, parse
from bridge.sip.transport import response_peer, stamp_via
from bridge.sip.useragent import UserAgent, UserAgentConfig
from tests.unit.sip.test_call import FakeMedia, Handler, Harness, offer, settle
from tests.unit.sip.test_transport_limits import QUICK, closed_within
from tests.unit.sip.test_transport_source import options, udp_socket

OUTSIDE = "203.0.113.9"
PASSWORD = "s3cret"
HOST = "127.0.0.1"
OTHER_SOURCE = "127.0.0.2"


def from_source(
    h: Harness, request: Request, address: str, transport: str = "UDP", *, via: str | None = None
) -> None:
    """Hand `request` to the user agent as the transport does when it came from `address`,
    its top Via naming that address (or `via`)."""
    if via is None:
        via = f"{address}:5062;branch={request.top_via.branch};rport"
    request.headers.remove("Via")
    request.headers.add("Via", f"SIP/2.0/{transport} {via}")
    source = (address, 5062)
    stamp_via(request, source)
    h.ua.receive(request, replace(response_peer(request, source, transport), source=source))


def statuses(h: Harness) -> list[int]:
    return [r.status for r in h.responses()]


async def test_outside_sources_get_no_answer() -> None:
    h = Harness(Handler())
    from_source(h, h.request("OPTIONS", in_dialog=False), OUTSIDE)
    from_source(h, h.request("INVITE", body=offer(), in_dialog=False), OUTSIDE, "TCP")
    await settle()
    assert h.sent == [] and h.ua.calls == []
    assert h.ua.access.counters.dropped == {Verdict.NOT_ALLOWED: 2}
    from_source(h, h.request("OPTIONS", in_dialog=False), "127.0.0.1")
    assert statuses(h) == [200]


async def test_allowed_and_trusted_networks() -> None:
    h = Harness(Handler(), allowed_networks=("198.51.100.0/24",), trusted_networks=())
    from_source(h, h.request("OPTIONS", in_dialog=False), "198.51.100.7")
    from_source(h, h.request("OPTIONS", in_dialog=False), "127.0.0.1")
    assert statuses(h) == [200]
    h = Harness(Handler(), allowed_networks=(), trusted_networks=("198.51.100.0/24",))
    from_source(h, h.request("OPTIONS", in_dialog=False), "198.51.100.7")
    assert statuses(h) == [200]


async def test_a_via_claiming_loopback_does_not_let_an_outsider_in() -> None:
    h = Harness(Handler())
    for via in (
        "127.0.0.1:5060;branch=z9hG4bK1",
        f"{OUTSIDE};branch=z9hG4bK2;received=127.0.0.1",
        f"{OUTSIDE};branch=z9hG4bK3;maddr=127.0.0.1",
        "127.0.0.1;branch=z9hG4bK4;received=127.0.0.1;rport=5060",
    ):
        from_source(h, h.request("OPTIONS", in_dialog=False), OUTSIDE, via=via)
    assert h.sent == []
    assert h.ua.access.counters.dropped == {Verdict.NOT_ALLOWED: 4}


async def test_a_peer_behind_nat_without_rport_is_judged_by_where_it_sends_from() -> None:
    """Its Via names its private address, outside the allow-list, and asks for no rport; its
    packets come from an allowed address, where the answer goes (received=, sent-by port)."""
    h = Harness(Handler())
    request = h.request("OPTIONS", in_dialog=False)
    from_source(h, request, "127.0.0.1", via="10.1.1.1:5070;branch=z9hG4bKnat")
    ((response, peer),) = h.sent
    assert isinstance(response, Response) and response.status == 200
    assert peer.address == ("127.0.0.1", 5070)


async def test_scanners_get_no_answer_even_from_allowed_sources() -> None:
    h = Harness(Handler())
    h.send(h.request("OPTIONS", "User-Agent: friendly-scanner", in_dialog=False))
    h.send(h.request("INVITE", "User-Agent: sipcli/v1.8", body=offer(), cseq=1))
    await settle()
    assert h.sent == [] and h.ua.calls == []
    assert h.ua.access.counters.dropped == {Verdict.SCANNER: 2}


async def test_requests_of_a_live_call_pass_from_anywhere() -> None:
    """The far end of a dialog may send from another address than the INVITE came from (its
    Contact); only a party to the call knows the dialog's tags."""
    handler = Handler()
    h = Harness(handler)
    await h.establish()
    from_source(h, h.request("BYE"), OUTSIDE)
    assert statuses(h) == [200]
    assert handler.ended == [EndReason.CALLER_HANGUP]
    # Once the call is over, the same dialog's requests are an outsider's again.
    from_source(h, h.request("BYE"), OUTSIDE)
    assert h.sent == []


async def test_rate_limit_drops_new_requests_but_not_a_live_calls() -> None:
    handler = Handler()
    h = Harness(handler, rate_limit=1.0, rate_burst=3)
    await h.establish()
    for n in range(4):
        h.send(h.request("OPTIONS", in_dialog=False, call_id=f"ping-{n}"))
    assert statuses(h) == [200, 200]
    assert h.ua.access.counters.dropped == {Verdict.RATE_LIMITED: 2}
    # The bucket is empty; in-dialog requests and ACKs still pass.
    h.send(h.request("INFO", "Content-Type: application/dtmf-relay", body="Signal=1\r\n"))
    h.send(h.request("ACK", cseq=1, branch="ack1-again"))
    h.send(h.request("BYE"))
    assert statuses(h) == [200, 200]
    assert handler.ended == [EndReason.CALLER_HANGUP]
    h.clock.advance(1.0)
    h.send(h.request("OPTIONS", in_dialog=False, call_id="ping-later"))
    assert statuses(h) == [200]


async def test_a_cancel_passes_with_the_bucket_empty() -> None:
    handler = Handler(hold=asyncio.Event())
    h = Harness(handler, rate_limit=1.0, rate_burst=1)
    h.send(h.request("INVITE", body=offer(), cseq=1))
    await settle()
    assert statuses(h) == [100, 180]
    h.send(h.request("OPTIONS", in_dialog=False, call_id="ping"))
    assert h.sent == []
    h.send(h.request("CANCEL", cseq=1, branch="INVITE1"))
    await settle()
    assert sorted(statuses(h)) == [200, 487]


def digest_answer(
    challenge: str, password: str = PASSWORD, cnonce: str = "c1", uri: str = "sip:bot@127.0.0.1"
) -> str:
    params = parse_digest_params(challenge.split(" ", 1)[1])
    name = {"MD5": "md5", "SHA-256": "sha256"}[params["algorithm"]]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h(f"trunk:{params['realm']}:{password}")
    response = h(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{h(f'INVITE:{uri}')}")
    return (
        f'Authorization: Digest username="trunk", realm="{params["realm"]}", '
        f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", '
        f'algorithm={params["algorithm"]}, qop=auth, nc=00000001, cnonce="{cnonce}"'
    )


def auth_harness(**config: object) -> Harness:
    return Harness(Handler(), auth_username="trunk", auth_password=PASSWORD, **config)


def challenged(h: Harness, *extra: str, cseq: int = 1) -> Response:
    """Send an INVITE, expect 100 and 401, ACK the 401; the 401."""
    h.send(h.request("INVITE", *extra, body=offer(), cseq=cseq, branch=f"inv{cseq}"))
    responses = h.responses()
    assert [r.status for r in responses] == [100, 401]
    unauthorized = responses[1]
    h.to_tag = unauthorized.to_tag
    h.send(h.request("ACK", cseq=cseq, branch=f"inv{cseq}"))
    h.to_tag = None
    return unauthorized


async def test_invite_is_challenged_then_accepted() -> None:
    h = auth_harness()
    unauthorized = challenged(h)
    sha, md5 = unauthorized.headers.get_all("WWW-Authenticate")
    assert 'realm="voicebridge"' in sha and "algorithm=SHA-256" in sha and 'qop="auth"' in sha
    assert "algorithm=MD5" in md5
    # The ACK stopped the 401's retransmissions, and made no call.
    h.clock.advance(5)
    assert h.sent == [] and h.ua.calls == []
    h.send(h.request("INVITE", digest_answer(sha), body=offer(), cseq=2, branch="inv2"))
    await settle()
    assert statuses(h) == [100, 180, 200]
    assert len(h.ua.calls) == 1
    assert h.ua.access.counters.auth_challenges == 1
    assert h.ua.access.counters.auth_failures == 0


async def test_md5_answer_and_md5_only_configuration() -> None:
    h = auth_harness(auth_algorithms=("MD5",))
    (md5,) = challenged(h).headers.get_all("WWW-Authenticate")
    assert "algorithm=MD5" in md5
    h.send(h.request("INVITE", digest_answer(md5), body=offer(), cseq=2, branch="inv2"))
    await settle()
    assert statuses(h) == [100, 180, 200]


async def test_wrong_password_is_challenged_again_and_bans_after_five() -> None:
    h = auth_harness(trusted_networks=())
    for attempt in range(1, 6):
        unauthorized = challenged(h, cseq=2 * attempt - 1)
        challenge = unauthorized.headers.get_all("WWW-Authenticate")[0]
        h.send(
            h.request(
                "INVITE",
                digest_answer(challenge, password="guess"),
                body=offer(),
                cseq=2 * attempt,
                branch=f"inv{2 * attempt}",
            )
        )
        assert statuses(h) == [100, 401]
    assert h.ua.access.counters.auth_failures == 5
    assert h.ua.access.counters.bans == 1
    # Banned: no answer at all, to INVITE or anything else.
    h.send(h.request("INVITE", body=offer(), cseq=20, branch="inv20"))
    h.send(h.request("OPTIONS", in_dialog=False, call_id="ping"))
    assert h.sent == []
    assert h.ua.access.counters.dropped[Verdict.BANNED] == 2
    h.clock.advance(600)
    h.take()  # the unacknowledged 401s' retransmissions
    h.send(h.request("OPTIONS", in_dialog=False, call_id="ping-later"))
    assert statuses(h) == [200]


async def test_trusted_sources_are_never_banned() -> None:
    h = auth_harness()
    for attempt in range(1, 8):
        challenge = challenged(h, cseq=2 * attempt - 1).headers.get_all("WWW-Authenticate")[0]
        h.send(
            h.request(
                "INVITE",
                digest_answer(challenge, password="guess"),
                body=offer(),
                cseq=2 * attempt,
                branch=f"inv{2 * attempt}",
            )
        )
        assert statuses(h) == [100, 401]
    assert h.ua.access.counters.bans == 0


async def test_stale_nonce_and_replay_get_a_stale_challenge() -> None:
    h = auth_harness()
    challenge = challenged(h).headers.get_all("WWW-Authenticate")[0]
    h.clock.advance(31)
    h.send(h.request("INVITE", digest_answer(challenge), body=offer(), cseq=2, branch="inv2"))
    responses = h.responses()
    assert [r.status for r in responses] == [100, 401]
    assert "stale=true" in responses[1].headers.get_all("WWW-Authenticate")[0]
    assert h.ua.access.counters.auth_failures == 0
    # A right answer works once: the same Authorization in another transaction is stale.
    fresh = challenged(h, cseq=3).headers.get_all("WWW-Authenticate")[0]
    authorization = digest_answer(fresh)
    h.send(h.request("INVITE", authorization, body=offer(), cseq=4, branch="inv4"))
    await settle()
    assert statuses(h) == [100, 180, 200]
    h.send(h.request("INVITE", authorization, body=offer(), cseq=5, branch="inv5", call_id="c2"))
    responses = h.responses()
    assert [r.status for r in responses] == [100, 401]
    assert "stale=true" in responses[1].headers.get_all("WWW-Authenticate")[0]


async def test_credentials_for_another_realm_count_as_none() -> None:
    h = auth_harness()
    challenge = challenged(h).headers.get_all("WWW-Authenticate")[0]
    foreign = digest_answer(challenge.replace('realm="voicebridge"', 'realm="carrier"'))
    h.send(h.request("INVITE", foreign, body=offer(), cseq=2, branch="inv2"))
    assert statuses(h) == [100, 401]
    assert h.ua.access.counters.auth_failures == 0
    assert h.ua.calls == []


async def test_only_new_invites_are_challenged() -> None:
    h = auth_harness()
    h.send(h.request("OPTIONS", in_dialog=False, call_id="ping"))
    assert statuses(h) == [200]
    challenge = challenged(h).headers.get_all("WWW-Authenticate")[0]
    h.cseq = 2
    h.send(h.request("INVITE", digest_answer(challenge), body=offer(), cseq=2, branch="inv2"))
    await settle()
    responses = h.responses()
    assert [r.status for r in responses] == [100, 180, 200]
    h.to_tag = responses[-1].to_tag
    h.send(h.request("ACK", cseq=2, branch="ack2"))
    # A re-INVITE within the call needs no credentials.
    h.send(h.request("INVITE", body=offer(version=2), cseq=3, branch="reinv"))
    await settle()
    assert [s for s in statuses(h) if s >= 200] == [200]


async def test_no_auth_configured_takes_invites_as_before() -> None:
    h = Harness(Handler())
    responses = await h.invite()
    assert [r.status for r in responses] == [100, 180, 200]
    assert h.ua.access.counters.auth_challenges == 0


def test_settings() -> None:
    settings = load_settings(
        sip_allowed_networks=["192.0.2.0/24"],
        sip_auth_username="trunk",
        sip_auth_password=PASSWORD,
        sip_auth_algorithms=["MD5"],
    )
    assert PASSWORD not in repr(settings)
    assert settings.sip_auth_password is not None
    assert settings.sip_auth_password.get_secret_value() == PASSWORD
    for bad in (
        {"sip_allowed_networks": ["192.0.2.0/33"]},
        {"sip_auth_password": PASSWORD},
        {"sip_auth_algorithms": ["SHA-512"]},
        {"sip_auth_algorithms": ["MD5", "MD5"]},
        {"sip_auth_realm": 'a"b'},
        {"sip_rate_burst": 0},
    ):
        with pytest.raises(SettingsError):
            load_settings(**bad)
    assert PASSWORD not in repr(auth_harness().ua.config)


# --- on real sockets: what the transport asks before there is a request ------------------------


@asynccontextmanager
async def started(**config: object) -> AsyncIterator[UserAgent]:
    ua = UserAgent(
        Handler(),
        FakeMedia,
        UserAgentConfig(host=HOST, port=0, **config),  # type: ignore[arg-type]
    )
    await ua.start()
    try:
        yield ua
    finally:
        await ua.close()


async def test_a_malformed_request_from_a_refused_source_gets_no_400() -> None:
    async with started(allowed_networks=(f"{HOST}/32",), trusted_networks=()) as ua:
        refused, refused_socket, refused_port = await udp_socket(OTHER_SOURCE)
        allowed, allowed_socket, allowed_port = await udp_socket(HOST)
        try:
            for sender, port in ((refused, refused_port), (allowed, allowed_port)):
                broken = options(f"{HOST}:{port};branch=z9hG4bKbad;rport", cseq="one")
                sender.sendto(broken, (HOST, ua.port))
            answer = await asyncio.wait_for(allowed_socket.received.get(), 2)
            assert answer.startswith(b"SIP/2.0 400 ")
            # Loopback datagrams are read in order: the refused one was dealt with first.
            assert refused_socket.received.empty()
            assert ua.access.counters.dropped == {Verdict.NOT_ALLOWED: 1}
        finally:
            refused.close()
            allowed.close()


async def test_a_tcp_connection_from_outside_the_allow_list_is_closed_at_once() -> None:
    async with started(allowed_networks=("10.0.0.0/8",), trusted_networks=()) as ua:
        reader, writer = await asyncio.open_connection(HOST, ua.port)
        try:
            assert await closed_within(reader, QUICK)
        finally:
            writer.close()
        assert ua.access.counters.dropped == {Verdict.NOT_ALLOWED: 1}


async def test_a_tcp_connection_from_a_banned_source_is_closed_at_once() -> None:
    async with started(trusted_networks=()) as ua:
        kept, kept_writer = await asyncio.open_connection(HOST, ua.port)
        try:
            assert not await closed_within(kept, QUICK)
            for _ in range(ua.access.policy.max_failures):
                ua.access.auth_failed(HOST)
            reader, writer = await asyncio.open_connection(HOST, ua.port)
            writer.close()
            assert await closed_within(reader, QUICK)
            assert ua.access.counters.dropped == {Verdict.BANNED: 1}
            # A ban refuses new connections; the one already open is judged request by request.
            assert not kept.at_eof()
        finally:
            kept_writer.close()


async def test_a_peer_behind_nat_is_answered_over_real_sockets() -> None:
    """The Via names a private address outside the allow-list, without rport; the datagram
    comes from loopback, which is allowed. The answer goes to received= and the sent-by port."""
    async with started() as ua:
        sender, protocol, port = await udp_socket(HOST)
        try:
            sender.sendto(options(f"10.1.1.1:{port};branch=z9hG4bKnat"), (HOST, ua.port))
            response = parse(await asyncio.wait_for(protocol.received.get(), 2), datagram=True)
            assert isinstance(response, Response) and response.status == 200
            assert response.top_via.received == HOST
            assert ua.access.counters.dropped == {}
        finally:
            sender.close()
