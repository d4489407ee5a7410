from __future__ import annotations

import re

import pytest

from bridge.sip.body import find_body, split_multipart
from bridge.sip.grammar import SipParseError
from bridge.sip.message import MalformedMessage, Request, Response, parse
from bridge.sip.validate import DEFAULT_POLICY, Drop, Reject, UasPolicy, check, response_to

VIA = "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8"
BASE = {
    "Via": VIA,
    "Max-Forwards": "70",
    "To": "<sip:bot@bridge.example.com>",
    "From": "<sip:alice@example.com>;tag=1928301774",
    "Call-ID": "a84b4c76e66710",
    "CSeq": "1 {method}",
}
SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
)


def _text(
    method: str = "INVITE",
    uri: str = "sip:bot@bridge.example.com",
    *,
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    body: str = "",
    version: str = "SIP/2.0",
) -> bytes:
    lines = [f"{method} {uri} {version}"]
    lines += [f"{name}: {value.format(method=method)}" for name, value in BASE.items()]
    lines = [line for line in lines if line.split(":")[0] not in drop]
    lines += [*extra, f"Content-Length: {len(body.encode())}", "", body]
    return "\r\n".join(lines).encode()


def _request(
    method: str = "INVITE",
    uri: str = "sip:bot@bridge.example.com",
    *,
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    body: str = "",
    version: str = "SIP/2.0",
) -> Request:
    data = _text(method, uri, drop=drop, extra=extra, body=body, version=version)
    message = parse(data, datagram=True)
    assert isinstance(message, Request)
    return message


def _status(
    request: Request | Response | MalformedMessage, policy: UasPolicy = DEFAULT_POLICY
) -> object:
    verdict = check(request, policy)
    return verdict.status if isinstance(verdict, Reject) else verdict


def test_a_plain_invite_passes() -> None:
    assert check(_request(extra=("Content-Type: application/sdp",), body=SDP)) is None
    assert check(_request("INVITE")) is None  # late offer
    assert check(_request("OPTIONS", extra=("Max-Forwards: 0",), drop=("Max-Forwards",))) is None


def test_version() -> None:
    assert _status(_request(version="SIP/3.0")) == 505


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq"])
def test_missing_and_duplicated_mandatory_headers(name: str) -> None:
    missing = check(_request(drop=(name,)))
    assert missing == Reject(400, f"Missing {name} Header")
    value = BASE[name].format(method="INVITE")
    duplicated = check(_request(extra=(f"{name}: {value}",)))
    assert duplicated == Reject(400, f"Duplicate {name} Header")


def test_max_forwards_zero_is_too_many_hops_except_for_a_probe() -> None:
    zero = {"extra": ("Max-Forwards: 0",), "drop": ("Max-Forwards",)}
    assert check(_request("INVITE", **zero)) == Reject(483, "Too Many Hops")  # type: ignore[arg-type]
    assert check(_request("BYE", **zero)) == Reject(483, "Too Many Hops")  # type: ignore[arg-type]
    assert check(_request("OPTIONS", **zero)) is None  # type: ignore[arg-type]


def test_duplicated_max_forwards() -> None:
    assert check(_request(extra=("Max-Forwards: 69",))) == Reject(
        400, "Duplicate Max-Forwards Header"
    )


def test_methods() -> None:
    register = check(_request("REGISTER", "sip:bridge.example.com"))
    assert register == Reject(
        405,
        "Method Not Allowed",
        (("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, NOTIFY"),),
    )
    unknown = check(_request("FOO"))
    assert isinstance(unknown, Reject) and unknown.status == 501
    assert unknown.headers == (("Allow", DEFAULT_POLICY.allow),)
    assert _status(_request("invite")) == 501  # methods are case-sensitive
    refer = UasPolicy(methods=(*DEFAULT_POLICY.methods, "REFER"))
    assert _status(_request("REFER"), refer) is None
    assert refer.allow.endswith(", NOTIFY, REFER")


def test_cseq_method_must_match() -> None:
    message = parse(_text("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), datagram=True)
    assert check(message) == Reject(400, "CSeq Method Does Not Match")


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("sips:bot@bridge.example.com", None),
        ("tel:+15550100", None),
        ("tel:5550100;phone-context=example.com", None),
        ("mailto:bot@example.com", 416),
        ("urn:service:sos", 416),
        ("sip:bot@bridge.example.com?Subject=hi", 400),
    ],
)
def test_request_uri(uri: str, status: int | None) -> None:
    assert _status(_request(uri=uri)) == status


def test_require() -> None:
    assert _status(_request(extra=("Require: timer",))) is None
    assert _status(_request(extra=("Require: TIMER",))) is None
    rejected = check(_request(extra=("Require: 100rel, timer", "Require: foo")))
    assert rejected == Reject(420, "Bad Extension", (("Unsupported", "100rel, foo"),))
    # Proxy-Require is for proxies; Require is never to be acted on in CANCEL or ACK.
    assert _status(_request(extra=("Proxy-Require: foo",))) is None
    assert _status(_request("CANCEL", extra=("Require: 100rel",))) is None
    assert _status(_request("ACK", extra=("Require: 100rel",))) is None
    assert DEFAULT_POLICY.supported == "timer"


def _multipart(*parts: tuple[str, str], boundary: str = "b0und") -> str:
    out = "preamble\r\n"
    for content_type, content in parts:
        out += f"--{boundary}\r\n"
        out += f"Content-Type: {content_type}\r\n\r\n" if content_type else "\r\n"
        out += content + "\r\n"
    return out + f"--{boundary}--\r\nepilogue"


@pytest.mark.parametrize(
    ("method", "headers", "body", "status"),
    [
        ("INVITE", ("Content-Type: application/sdp",), SDP, None),
        ("INVITE", ("Content-Type: Application/SDP; charset=x",), SDP, None),
        ("INVITE", ("Content-Type: application/unknownformat",), "<audio/>", 415),
        ("INVITE", (), SDP, 400),
        ("INVITE", ("Content-Type: application/sdp", "Content-Encoding: gzip"), SDP, 415),
        ("INVITE", ("Content-Type: application/sdp", "Content-Encoding: identity"), SDP, None),
        (
            "INVITE",
            ("Content-Type: multipart/mixed;boundary=b0und",),
            _multipart(("application/isup;version=itu-t92+", "x"), ("application/sdp", SDP)),
            None,
        ),
        (
            "INVITE",
            ('Content-Type: multipart/mixed; boundary="b0und"',),
            _multipart(("text/plain", "hello"), ("", "no type: text/plain")),
            415,
        ),
        ("INVITE", ("Content-Type: multipart/mixed",), "--x\r\n\r\n--x--", 400),
        ("INVITE", ("Content-Type: multipart/mixed;boundary=zz",), "no boundary here", 400),
        ("UPDATE", ("Content-Type: text/plain",), "hi", 415),
        ("INFO", ("Content-Type: application/dtmf-relay",), "Signal=5\r\nDuration=160\r\n", None),
        ("INFO", ("Content-Type: application/media_control+xml",), "<x/>", 415),
        ("INFO", (), "", None),
        ("NOTIFY", ("Event: refer", "Content-Type: message/sipfrag"), "SIP/2.0 200 OK", None),
        ("BYE", ("Content-Type: application/whatever",), "ignored", None),
        ("ACK", ("Content-Type: application/whatever",), "never refused", None),
        ("CANCEL", ("Content-Type: application/whatever",), "never refused", None),
    ],
)
def test_bodies(method: str, headers: tuple[str, ...], body: str, status: int | None) -> None:
    assert _status(_request(method, extra=headers, body=body)) == status


def test_unsupported_media_type_lists_what_is_read() -> None:
    invite = check(_request(extra=("Content-Type: text/html",), body="<p>"))
    assert invite == Reject(
        415, "Unsupported Media Type", (("Accept", "application/sdp, multipart/mixed"),)
    )
    encoded = check(_request(extra=("Content-Type: application/sdp", "e: gzip"), body=SDP))
    assert isinstance(encoded, Reject) and ("Accept-Encoding", "identity") in encoded.headers


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("Accept: application/sdp", None),
        ("Accept: application/*", None),
        ("Accept: */*", None),
        ("Accept: text/plain, application/sdp;level=1", None),
        ("Accept: text/nobodyKnowsThis", 406),
        ("Accept:", 406),
        ("Accept: text", 400),
    ],
)
def test_accept(accept: str, status: int | None) -> None:
    assert _status(_request(extra=(accept,))) == status
    assert _status(_request("OPTIONS", extra=(accept,))) is None


def test_not_acceptable_says_why() -> None:
    verdict = check(_request(extra=("Accept: text/plain",)))
    assert isinstance(verdict, Reject) and verdict.headers[0][0] == "Warning"
    assert verdict.headers[0][1].startswith("399 ")


def test_bare_magic_cookie_branch() -> None:
    message = parse(_text("OPTIONS").replace(b"z9hG4bKnashds8", b"z9hG4bK"), datagram=True)
    assert check(message) == Reject(400, "Invalid Via Branch")
    legacy = parse(_text("OPTIONS").replace(b";branch=z9hG4bKnashds8", b""), datagram=True)
    assert check(legacy) is None


def test_what_is_dropped() -> None:
    assert isinstance(check(_request(drop=("Via",))), Drop)
    assert isinstance(check(_request("ACK", drop=("Call-ID",))), Drop)
    assert isinstance(check(_request("ACK", version="SIP/1.0")), Drop)
    assert check(_request("ACK")) is None
    ack = parse(_text("ACK").replace(b"CSeq: 1 ACK", b"CSeq: 1 INVITE"), datagram=True)
    assert isinstance(check(ack), Drop)
    for data in (_text("ACK").replace(b"<sip:bot", b"<sip:b ot"), b"\x00\xff garbage\r\n\r\n"):
        with pytest.raises(MalformedMessage) as caught:
            parse(data, datagram=True)
        assert isinstance(check(caught.value), Drop)


def test_malformed_requests_get_400_when_they_have_a_via() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse(
            _text().replace(b"<sip:bot@bridge.example.com>", b'"Mr <sip:bot@b.example.com>'),
            datagram=True,
        )
    assert check(caught.value) == Reject(400, "Malformed To Header")
    with pytest.raises(MalformedMessage) as no_via:
        parse(_text(drop=("Via",)).replace(b"CSeq: 1", b"CSeq: x"), datagram=True)
    assert isinstance(check(no_via.value), Drop)


RESPONSE = (
    f"SIP/2.0 200 OK\r\nVia: {VIA}\r\nTo: <sip:b@example.com>;tag=2\r\n"
    "From: <sip:a@example.com>;tag=1\r\n"
    "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("change", "dropped"),
    [
        ((), False),
        (("Call-ID: x\r\n", ""), True),
        (("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n"), True),
        (("SIP/2.0 200", "SIP/3.0 200"), True),
        ((f"Via: {VIA}\r\n", f"Via: {VIA}, SIP/2.0/UDP 192.0.2.2\r\n"), True),
        ((f"Via: {VIA}\r\n", ""), True),
    ],
)
def test_responses(change: tuple[str, str], dropped: bool) -> None:
    text = RESPONSE.replace(*change) if change else RESPONSE
    verdict = check(parse(text.encode(), datagram=True))
    assert isinstance(verdict, Drop) if dropped else verdict is None


def test_response_to_copies_per_8_2_6() -> None:
    request = _request(
        extra=(
            "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com;branch=z9",
            "Record-Route: <sip:p1.example.com;lr>",
            "Record-Route: <sip:p2.example.com;lr>",
            "Timestamp: 54",
        )
    )
    ok = response_to(
        request, 200, to_tag="bot1", extra_headers=[("Contact", "<sip:bot@192.0.2.9>")]
    )
    assert ok.status == 200 and ok.reason == "OK"
    assert ok.headers.get_all("Via") == [
        VIA,
        "SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com;branch=z9",
    ]
    assert ok.headers.get_all("Record-Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]
    assert ok.headers.get("To") == "<sip:bot@bridge.example.com>;tag=bot1"
    assert ok.to_tag == "bot1"
    assert ok.headers.get("From") == BASE["From"] and ok.call_id == "a84b4c76e66710"
    assert str(ok.cseq) == "1 INVITE" and ok.headers.get("Contact") == "<sip:bot@192.0.2.9>"
    assert "Timestamp" not in ok.headers
    assert parse(ok.to_bytes(), datagram=True).to_bytes() == ok.to_bytes()

    trying = response_to(request, 100)
    assert trying.reason == "Trying" and trying.to_tag is None
    assert trying.headers.get("Timestamp") == "54" and "Record-Route" not in trying.headers

    busy = response_to(request, 486)
    assert busy.to_tag is not None and re.fullmatch("[0-9a-f]{16}", busy.to_tag)
    assert "Record-Route" not in busy.headers
    assert (
        response_to(
            _request("BYE", extra=("Record-Route: <sip:p1.example.com;lr>",)), 200
        ).headers.get("Record-Route")
        is None
    )

    tagged = _request(extra=()).headers.copy()
    tagged.set("To", "sip:bot@bridge.example.com;tag=old")
    in_dialog = Request("BYE", _request().uri, tagged)
    assert (
        response_to(in_dialog, 200, to_tag="new").headers.get("To")
        == "sip:bot@bridge.example.com;tag=old"
    )
    assert response_to(request, 299, "Custom").reason == "Custom"
    assert response_to(request, 599).reason == ""
    with pytest.raises(ValueError):
        response_to(request, 200, to_tag="a b")


def test_response_to_a_malformed_request() -> None:
    data = _text().replace(b"<sip:bot@bridge.example.com>", b'"Mr <sip:bot@bridge.example.com>')
    with pytest.raises(MalformedMessage) as caught:
        parse(data, datagram=True)
    error = caught.value
    verdict = check(error)
    assert isinstance(verdict, Reject) and error.envelope is not None
    answer = response_to(error.envelope, verdict.status, verdict.reason, verdict.headers)
    assert answer.reason == "Malformed To Header"
    assert answer.headers.get("To") == '"Mr <sip:bot@bridge.example.com>'
    assert answer.headers.get("Via") == VIA and answer.headers.get("CSeq") == "1 INVITE"


def test_multipart_parts() -> None:
    body = _multipart(("application/sdp", SDP), ("", "plain")).encode()
    sdp, plain = split_multipart(body, "b0und")
    assert sdp.content_type.mime == "application/sdp" and sdp.content == SDP.encode()
    assert plain.content_type.mime == "text/plain" and plain.content == b"plain"
    assert split_multipart(b"--b0und\r\n\r\nfirst\r\n--b0und--", "b0und")[0].content == b"first"
    with pytest.raises(SipParseError):
        split_multipart(b"--b0und  junk\r\n\r\nx\r\n--b0und--", "b0und")
    with pytest.raises(SipParseError):
        split_multipart(b"--b0und\r\nContent-Type: a/b\r\nno end", "b0und")
    request = _request(
        extra=("Content-Type: multipart/mixed;boundary=b0und",),
        body=_multipart(("application/sdp", SDP)),
    )
    assert find_body(request, "application/sdp") == SDP.encode()
    assert find_body(request, "application/isup") is None
    assert find_body(
        _request(extra=("Content-Type: application/sdp",), body=SDP), "application/sdp"
    ) == (SDP.encode())
    assert find_body(_request(), "application/sdp") is None
