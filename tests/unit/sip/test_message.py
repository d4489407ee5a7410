from __future__ import annotations

import pytest

from bridge.sip.fields import CSeq, MediaType, Via, parse_via
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import COMPACT_FORMS, Headers, canonical_name
from bridge.sip.message import MalformedMessage, Request, Response, parse
from bridge.sip.uri import SipUri

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1:5060>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n"
)


def _request(text: str, *, datagram: bool = True) -> Request:
    message = parse(text.encode(), datagram=datagram)
    assert isinstance(message, Request)
    return message


def _malformed(data: bytes, *, datagram: bool = True) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse(data, datagram=datagram)
    return caught.value


def test_parse_a_plain_invite() -> None:
    request = _request(INVITE)
    assert request.method == "INVITE"
    assert request.uri == SipUri(user="bob", host="example.com")
    assert request.version == "SIP/2.0"
    assert request.body == b"v=0\n"
    assert request.call_id == "a84b4c76e66710@pc33.example.com"
    assert request.cseq == CSeq(314159, "INVITE")
    assert request.max_forwards == 70
    assert request.from_addr.display_name == "Alice"
    assert request.from_tag == "1928301774"
    assert request.to_tag is None
    assert [str(c.uri) for c in request.contacts] == ["sip:alice@192.0.2.1:5060"]
    assert request.content_type == MediaType(type="application", subtype="sdp")
    assert request.content_length == 4
    via = request.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5060)
    assert via.branch == "z9hG4bK776asdhds" and via.rfc3261_branch
    assert via.wants_rport and via.rport is None


def test_serialization_is_stable() -> None:
    request = _request(INVITE)
    assert request.to_bytes() == INVITE.encode()
    assert parse(request.to_bytes(), datagram=False) == request


def test_to_bytes_writes_the_body_length() -> None:
    request = _request(INVITE)
    request.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    data = request.to_bytes()
    assert b"Content-Length: 31\r\n" in data and b"Content-Length: 4" not in data
    request.headers.remove("Content-Length")
    assert request.to_bytes().endswith(b"Content-Length: 31\r\n\r\n" + request.body)
    built = Response(200, "OK", Headers([("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bKx")]))
    assert built.to_bytes() == (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKx\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_compact_forms_read_as_long_names() -> None:
    headers = Headers((letter, f"x{letter}") for letter in COMPACT_FORMS)
    assert [name for name, _ in headers] == list(COMPACT_FORMS.values())
    for letter, name in COMPACT_FORMS.items():
        assert headers.get(name.upper()) == headers.get(letter.upper()) == f"x{letter}"
    assert canonical_name("I") == "Call-ID"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("x-Custom") == "x-Custom"
    request = _request(
        "INVITE sip:a@example.com SIP/2.0\r\nv: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        "f: <sip:b@example.com>;tag=1\r\nt: sip:a@example.com\r\ni: 1@h\r\n"
        "m: <sip:b@h.example.com>\r\nc: application/sdp\r\nk: timer\r\nl: 0\r\n\r\n"
    )
    assert request.from_tag == "1" and request.call_id == "1@h"
    assert request.supported == ("timer",) and request.content_length == 0
    assert request.to_bytes().startswith(
        b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"From: <sip:b@example.com>;tag=1\r\nTo: sip:a@example.com\r\nCall-ID: 1@h\r\n"
    )


def test_headers_multimap() -> None:
    headers = Headers([("via", "a"), ("X-Thing", "1"), ("V", "b, c"), ("x-thing", "2")])
    assert list(headers) == [("Via", "a"), ("X-Thing", "1"), ("Via", "b, c"), ("x-thing", "2")]
    assert headers.get("VIA") == "a"
    assert headers.get_all("v") == ["a", "b, c"]
    assert headers.values("Via") == ["a", "b", "c"]
    assert headers.values("X-THING") == ["1", "2"]
    assert headers.count("x-thing") == 2
    assert "via" in headers and "Route" not in headers and 3 not in headers
    headers.set("Via", "z")
    assert list(headers) == [("Via", "z"), ("X-Thing", "1"), ("x-thing", "2")]
    headers.set("Route", "<sip:r.example.com;lr>")
    assert list(headers)[-1] == ("Route", "<sip:r.example.com;lr>")
    copied = headers.copy()
    copied.remove("x-THING")
    assert len(copied) == 2 and len(headers) == 4
    assert copied != headers and copied == Headers(
        [("v", "z"), ("Route", "<sip:r.example.com;lr>")]
    )
    with pytest.raises(ValueError):
        headers.add("Bad Name", "x")
    with pytest.raises(ValueError):
        headers.add("X-Inject", "a\r\nVia: evil")


def test_lookups_see_every_change_made_after_them() -> None:
    headers = Headers([("Via", "a, b"), ("Contact", "<sip:1@h>")])
    returned = headers.values("Via")
    returned.append("not stored")
    assert headers.values("Via") == ["a", "b"] and headers.get("Route") is None
    headers.add("v", "c")
    assert headers.values("Via") == ["a", "b", "c"] and headers.count("Via") == 2
    headers.replace_first("Via", "z")
    assert headers.get_all("Via") == ["z", "c"] and headers.values("via") == ["z", "c"]
    headers.set("Route", "<sip:r@h;lr>")
    assert headers.get("Route") == "<sip:r@h;lr>" and "route" in headers
    headers.remove("Via")
    assert headers.values("Via") == [] and headers.get("Via") is None and "Via" not in headers
    copied = headers.copy()
    copied.add("Contact", "<sip:2@h>")
    assert headers.values("m") == ["<sip:1@h>"]
    assert copied.values("m") == ["<sip:1@h>", "<sip:2@h>"]


def test_list_headers_split_outside_quotes_and_angles() -> None:
    headers = Headers(
        [
            ("Contact", '"Doe, John" <sip:jd@example.com;p=1,2>;q=0.5, <sip:x@example.com>'),
            ("Allow", "INVITE, ACK,BYE"),
            ("Supported", ""),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b", qop="auth"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("X-Unknown", "a, b"),
        ]
    )
    assert headers.values("Contact") == [
        '"Doe, John" <sip:jd@example.com;p=1,2>;q=0.5',
        "<sip:x@example.com>",
    ]
    assert headers.values("Allow") == ["INVITE", "ACK", "BYE"]
    assert headers.values("Supported") == [""]
    assert headers.values("WWW-Authenticate") == ['Digest realm="a", nonce="b", qop="auth"']
    assert headers.values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.values("X-Unknown") == ["a, b"]


def test_folding_and_line_ends() -> None:
    text = (
        "\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP\r\n   host.example.com\r\n\t;branch=z9hG4bK1\n"
        "To: <sip:a@example.com>\n"
        "Subject:\r\n \r\n   hello\r\n     world\n"
        "l: 0\n\n"
    )
    request = _request(text)
    assert request.headers.get("Via") == "SIP/2.0/UDP host.example.com ;branch=z9hG4bK1"
    assert request.top_via.host == "host.example.com"
    assert request.headers.get("Subject") == "hello world"


def test_datagram_bodies() -> None:
    head = "MESSAGE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com\r\n"
    assert _request(head + "\r\nhello").body == b"hello"
    assert _request(head + "l: 2\r\n\r\nhello").body == b"he"
    assert _request(head + "l: 0").body == b""
    too_short = _malformed((head + "l: 9\r\n\r\nhello").encode())
    assert too_short.reason == "Content-Length Mismatch" and too_short.envelope is not None


def test_stream_bodies_are_exact() -> None:
    head = "MESSAGE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example.com\r\n"
    assert _request(head + "l: 5\r\n\r\nhello", datagram=False).body == b"hello"
    assert _request(head + "\r\n", datagram=False).body == b""
    assert _malformed((head + "l: 4\r\n\r\nhello").encode(), datagram=False).envelope
    assert _malformed((head + "\r\nhello").encode(), datagram=False).reason == (
        "Missing Content-Length"
    )
    assert _malformed(head.encode(), datagram=False).reason == "Incomplete Message"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Content-Length: 12x", "Malformed Content-Length"),
        ("Content-Length: " + "9" * 5000, "Malformed Content-Length"),
        ("Content-Length: ٣", "Malformed Content-Length"),
        ("CSeq: 4294967296 INVITE", "Malformed CSeq Header"),
        ("CSeq: INVITE", "Malformed CSeq Header"),
        ("Max-Forwards: 256", "Malformed Max-Forwards Header"),
        ("Via: SIP/2.0/UDP host;received=example.com", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP host;rport=x", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP host;ttl=256", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP host;maddr=a..b", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP host:70000", "Malformed Via Header"),
        ("Via: SIP/2.0/UDPhost", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP [::1", "Malformed Via Header"),
        ("Via: SIP/2.0/UDP host, ", "Malformed Via Header"),
        ("Contact: *, <sip:a@example.com>", "Malformed Contact Header"),
        ("Route: <sip:a@example.com>,,<sip:b@example.com>", "Malformed Route Header"),
        ("Content-Type: application", "Malformed Content-Type Header"),
        ("Require: a b", "Malformed Require Header"),
        ("Call-ID: a b", "Malformed Call-ID Header"),
        ("No colon here", "Malformed Header Line"),
        ("Bad Name: x", "Malformed Header Line"),
        ("Bare: c\rr", "Malformed Header Line"),
    ],
)
def test_malformed_core_headers(header: str, reason: str) -> None:
    text = (
        f"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com\r\n{header}\r\n\r\n"
    )
    error = _malformed(text.encode())
    assert error.reason == reason
    assert error.envelope is not None and error.envelope.method == "OPTIONS"


def test_work_per_message_is_bounded() -> None:
    head = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com\r\n"
    many = "".join(f"X-Row-{i}: 1\r\n" for i in range(256))
    rows = _malformed((head + many + "\r\n").encode())
    assert rows.reason == "Too Many Header Fields"
    assert rows.envelope is not None and len(rows.envelope.headers) == 256
    assert len(_request(head + many[: many.index("X-Row-255")] + "\r\n").headers) == 256
    routes = "Route: " + ", ".join(["<sip:p.example.com;lr>"] * 64) + "\r\n"
    assert _malformed((head + routes * 2 + "Route: <sip:q>\r\n\r\n").encode()).reason == (
        "Too Many Route Values"
    )
    assert len(_request(head + routes * 2 + "\r\n").routes) == 128
    supported = "Supported: " + ",".join(["x"] * 129) + "\r\n\r\n"
    assert _malformed((head + supported).encode()).reason == "Too Many Supported Values"


def test_continuation_before_any_header() -> None:
    error = _malformed(b"OPTIONS sip:a@example.com SIP/2.0\r\n folded\r\n\r\n")
    assert error.reason == "Malformed Header Line"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"INVITE\r\n\r\n",
        b"INVITE sip:a@example.com\r\n\r\n",
        b"INV@TE sip:a@example.com SIP/2.0\r\n\r\n",
        b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n",
        b"SIP/2.0 099 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
    ],
)
def test_unanswerable_garbage_has_no_envelope(data: bytes) -> None:
    assert _malformed(data).envelope is None


def test_status_lines() -> None:
    ok = parse(b"sip/2.0 200 OK\r\n\r\n", datagram=True)
    assert isinstance(ok, Response) and (ok.version, ok.status, ok.reason) == ("SIP/2.0", 200, "OK")
    bare = parse(b"SIP/2.0 180\r\n\r\n", datagram=True)
    assert isinstance(bare, Response) and bare.reason == ""
    spaced = parse(b"SIP/2.0 486  Busy  Here \r\n\r\n", datagram=True)
    assert isinstance(spaced, Response) and spaced.reason == "Busy  Here "


def test_bytes_that_are_not_utf8_survive_a_round_trip() -> None:
    data = b"OPTIONS sip:a@example.com SIP/2.0\r\nX-Latin1: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    request = parse(data, datagram=True)
    assert request.to_bytes() == data


def test_request_line_whitespace_is_tolerated() -> None:
    request = _request("OPTIONS  sip:a@example.com \t SIP/2.0  \r\n\r\n")
    assert request.start_line() == "OPTIONS sip:a@example.com SIP/2.0"


def test_via_accessors() -> None:
    request = _request(
        "BYE sip:a@example.com SIP/2.0\r\n"
        "Via: SIP / 2.0 / tcp [2001:db8::9:1] : 6050 ; branch = z9hG4bKas3 ; received=192.0.2.9"
        ";rport=6051;maddr=224.2.0.1;ttl=16, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
        "v: SIP/2.0/UDP h.example.com\r\n\r\n"
    )
    first, second, third = request.vias
    assert first.protocol == "SIP/2.0" and first.transport == "TCP"
    assert (first.host, first.port) == ("[2001:db8::9:1]", 6050)
    assert first.received == "192.0.2.9" and first.rport == 6051 and first.wants_rport
    assert first.maddr == "224.2.0.1" and first.ttl == 16
    assert str(first) == (
        "SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKas3;received=192.0.2.9;rport=6051"
        ";maddr=224.2.0.1;ttl=16"
    )
    assert not second.rfc3261_branch and not second.wants_rport
    assert third.branch is None and not third.rfc3261_branch
    updated = second.with_param("received", "198.51.100.7").with_param("rport", "5062")
    assert str(updated) == "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK;received=198.51.100.7;rport=5062"
    assert parse_via(str(updated)) == updated
    assert Via(transport="UDP", host="example.com").branch is None


def test_set_top_via_keeps_the_other_values() -> None:
    request = _request(
        "OPTIONS sip:a@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p.example.com\r\n"
        "Via: SIP/2.0/UDP q.example.com\r\n\r\n"
    )
    via = request.top_via
    request.set_top_via(via.with_param("received", "198.51.100.1").with_param("rport", "40312"))
    assert request.headers.get_all("Via") == [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=40312;received=198.51.100.1, "
        "SIP/2.0/UDP p.example.com",
        "SIP/2.0/UDP q.example.com",
    ]
    assert request.top_via.rport == 40312 and request.top_via.received == "198.51.100.1"
    with pytest.raises(SipParseError):
        Request("OPTIONS", request.uri).set_top_via(via)


def test_extension_accessors() -> None:
    request = _request(
        "REFER sip:a@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        "Expires: 3600\r\n"
        "k: timer, replaces\r\n"
        "Allow: INVITE, BYE\r\n"
        "Accept: application/sdp;level=1, text/*\r\n"
        "x: 1800;refresher=UAS\r\n"
        "Min-SE: 90\r\n"
        "o: refer;id=93809824\r\n"
        "r: <sip:agent@pbx.example.com?Replaces=abc%40x%3Bto-tag%3D1>\r\n"
        'b: "Bot" <sip:bot@bridge.example.com>;cid="x@y"\r\n'
        "P-Asserted-Identity: <sip:+15550100@example.com>, <tel:+15550100>\r\n"
        "Require: timer\r\n"
        "Unsupported: 100rel\r\n"
        "\r\n"
    )
    assert request.expires == 3600
    assert request.supported == ("timer", "replaces")
    assert request.allow == ("INVITE", "BYE")
    assert request.require == ("timer",)
    assert request.unsupported == ("100rel",)
    accept = request.accept
    assert accept is not None and [m.mime for m in accept] == ["application/sdp", "text/*"]
    assert accept[1].accepts("text/plain") and not accept[1].accepts("application/sdp")
    session = request.session_expires
    assert session is not None and session.seconds == 1800 and session.refresher == "uas"
    assert request.min_se == 90
    event = request.event
    assert event is not None and event.package == "refer" and event.id == "93809824"
    refer_to = request.refer_to
    assert refer_to is not None and isinstance(refer_to.uri, SipUri)
    assert refer_to.uri.headers == (("Replaces", "abc%40x%3Bto-tag%3D1"),)
    referred_by = request.referred_by
    assert referred_by is not None and referred_by.param("cid") == "x@y"
    assert [str(a.uri) for a in request.p_asserted_identity] == [
        "sip:+15550100@example.com",
        "tel:+15550100",
    ]


def test_absent_optional_headers() -> None:
    request = _request("OPTIONS sip:a@example.com SIP/2.0\r\n\r\n")
    assert request.max_forwards is None and request.content_type is None
    assert request.allow is None and request.accept is None and request.expires is None
    assert request.supported == () and request.require == () and request.contacts == []
    assert request.session_expires is None and request.event is None and request.refer_to is None
    for accessor in ("top_via", "from_addr", "to_addr", "call_id", "cseq"):
        with pytest.raises(SipParseError):
            getattr(request, accessor)


def test_empty_accept_accepts_nothing() -> None:
    assert _request("OPTIONS sip:a@example.com SIP/2.0\r\nAccept:\r\n\r\n").accept == []


def test_contact_wildcard() -> None:
    request = _request("REGISTER sip:example.com SIP/2.0\r\nContact: *\r\nExpires: 0\r\n\r\n")
    assert request.contact_is_wildcard and request.contacts == []


@pytest.mark.parametrize(
    ("header", "accessor"),
    [
        ("Expires: soon", "expires"),
        ("Expires: 4294967296", "expires"),
        ("Session-Expires: 90;refresher=me", "session_expires"),
        ("Session-Expires: x", "session_expires"),
        ("Min-SE: -1", "min_se"),
        ("Event: ", "event"),
        ("Refer-To: sip:a@example.com?x=y", "refer_to"),
        ("Referred-By: <sip:a@example.com", "referred_by"),
        ("P-Asserted-Identity: <sip:a@example.com>,", "p_asserted_identity"),
        ("Supported: a b", "supported"),
        ("Allow: INVITE;x", "allow"),
        ("Accept: text", "accept"),
    ],
)
def test_lazy_accessors_raise_parse_errors(header: str, accessor: str) -> None:
    request = _request(f"OPTIONS sip:a@example.com SIP/2.0\r\n{header}\r\n\r\n")
    with pytest.raises(SipParseError):
        getattr(request, accessor)
