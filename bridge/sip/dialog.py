"""The UAS side of an RFC 3261 §12 dialog: its identity, sequence numbers, route set and remote
target, the in-dialog requests we send and the checks on those we receive. Pure logic.

A dialog here is always one we accepted (the bridge answers calls, it does not place them), so
its state comes from the INVITE: the route set is the INVITE's Record-Route in order
(§12.1.1), the remote target its Contact, `secure` whether it came over sips.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field, replace

from bridge.sip.fields import MAX_CSEQ, CSeq, Via
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import Headers
from bridge.sip.message import Request
from bridge.sip.transaction import Peer, new_branch
from bridge.sip.uri import NameAddr, SipUri, Uri

DialogId = tuple[str, str, str]
"""(Call-ID, local tag, remote tag)."""


def new_tag() -> str:
    return secrets.token_hex(8)


def without_tag(address: NameAddr) -> NameAddr:
    return replace(address, params=tuple(p for p in address.params if p[0].lower() != "tag"))


def dialog_id_of(request: Request) -> DialogId:
    """The id of the dialog an in-dialog request names, seen from our side: its To tag is ours."""
    return (request.call_id, request.to_tag or "", request.from_tag or "")


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local: NameAddr
    """Our address (the INVITE's To), without tag."""
    remote: NameAddr
    """The caller's address (the INVITE's From), without tag."""
    remote_target: Uri
    contact: NameAddr
    """Our Contact, sent in every request and 2xx."""
    route_set: list[NameAddr] = field(default_factory=list)
    secure: bool = False
    local_cseq: int = 0
    remote_cseq: int | None = None

    @classmethod
    def from_invite(cls, invite: Request, local_tag: str, contact: NameAddr) -> Dialog:
        """§12.1.1. An INVITE without Contact (illegal, but seen) leaves the remote target at
        the From URI, the best guess for where the caller can be reached."""
        contacts = invite.contacts
        from_addr = invite.from_addr
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=from_addr.tag or "",
            local=without_tag(invite.to_addr),
            remote=without_tag(from_addr),
            remote_target=contacts[0].uri if contacts else from_addr.uri,
            contact=contact,
            route_set=invite.record_routes,
            secure=invite.uri.scheme == "sips",
            local_cseq=secrets.randbelow(2**16) + 1,
            remote_cseq=invite.cseq.number,
        )

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    def accept_cseq(self, request: Request) -> bool:
        """§12.2.2 for a request in this dialog (not ACK or CANCEL, which reuse the CSeq of the
        request they belong to): False when its CSeq is below the last one, out of order (the
        caller answers 500); otherwise its CSeq becomes the remote CSeq."""
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, request: Request) -> None:
        """§12.2.2: a target refresh request (re-INVITE, UPDATE) replaces the remote target
        with its Contact."""
        try:
            contacts = request.contacts
        except SipParseError:
            return
        if contacts:
            self.remote_target = contacts[0].uri

    def request(
        self,
        method: str,
        via: Via,
        *,
        headers: Headers | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
    ) -> Request:
        """A new request in the dialog (§12.2.1.1): the next local CSeq (or `cseq`, for the ACK
        of a 2xx, which takes its INVITE's), Request-URI and Route by loose or strict routing, a
        fresh branch on `via`."""
        if cseq is None:
            self.local_cseq = min(self.local_cseq + 1, MAX_CSEQ)
            cseq = self.local_cseq
        uri, routes = self.request_uri_and_routes()
        out = Headers()
        out.add("Via", str(via.with_param("branch", new_branch())))
        out.add("Max-Forwards", "70")
        for route in routes:
            out.add("Route", str(route))
        out.add("From", str(self.local.with_param("tag", self.local_tag)))
        out.add("To", str(self.remote.with_param("tag", self.remote_tag)))
        out.add("Call-ID", self.call_id)
        out.add("CSeq", str(CSeq(cseq, method)))
        out.add("Contact", str(self.contact))
        for name, value in headers or ():
            out.add(name, value)
        if content_type is not None:
            out.add("Content-Type", content_type)
        return Request(method, uri, out, body)

    def request_uri_and_routes(self) -> tuple[Uri, list[NameAddr]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.has_param("lr"):
            return self.remote_target, list(self.route_set)
        # §12.2.1.1 strict routing: the first route becomes the Request-URI (without the
        # parameters a Request-URI may not carry) and the remote target the last Route.
        uri: Uri = first.uri
        if isinstance(uri, SipUri):
            uri = SipUri(
                scheme=uri.scheme,
                user=uri.user,
                password=uri.password,
                host=uri.host,
                port=uri.port,
                params=tuple(p for p in uri.params if p[0].lower() not in ("method", "maddr")),
            )
        return uri, [*self.route_set[1:], NameAddr(uri=self.remote_target)]

    def next_hop(self, fallback: Peer) -> Peer:
        """Where our requests go (§8.1.2): the first Route, else the remote target. Only an IP
        address is used as is; a host name (which would need RFC 3263 lookups) or a non-SIP URI
        sends to `fallback`, the peer the INVITE came from, which is where a trunk's requests
        come from in practice."""
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        if not isinstance(uri, SipUri):
            return fallback
        host = uri.host_address
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return fallback
        transport = (uri.param("transport") or "").upper()
        if uri.scheme == "sips" or transport in ("TCP", "TLS"):
            transport = "TCP"
        elif transport != "UDP":
            transport = fallback.transport
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        if transport == "UDP":
            return Peer("UDP", (host, port))
        if fallback.reliable:
            # The caller's connection first: its Contact port is often one nobody listens on.
            return Peer("TCP", fallback.address, (host, port))
        return Peer("TCP", (host, port))
