from __future__ import annotations

import pytest

from bridge.sip.grammar import SipParseError
from bridge.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    TelUri,
    is_ip_address,
    parse_name_addr,
    parse_uri,
    uri_equal,
)


def _sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_components_are_kept_as_written() -> None:
    uri = _sip("sips:al%69ce:pass@Example.COM:5061;transport=TLS;lr?subject=hi%20there&x=")
    assert uri.scheme == "sips"
    assert uri.user == "al%69ce"
    assert uri.decoded_user == "alice"
    assert uri.password == "pass"
    assert uri.host == "Example.COM"
    assert uri.host_address == "example.com"
    assert uri.port == 5061
    assert uri.params == (("transport", "TLS"), ("lr", None))
    assert uri.param("transport") == "TLS"
    assert uri.has_param("LR") and uri.param("lr") is None
    assert uri.headers == (("subject", "hi%20there"), ("x", ""))
    assert str(uri) == "sips:al%69ce:pass@Example.COM:5061;transport=TLS;lr?subject=hi%20there&x="


@pytest.mark.parametrize(
    "text",
    [
        "sip:user@example.com",
        "sip:example.com",
        "sip:+1-555-0100;phone-context=example.com@gw.example.com;user=phone",
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com",
        "sip:user;par=u%40example.net@example.com",
        "sip:[2001:db8::10]:5070;maddr=[::1]",
        "sip:user@[::ffff:192.0.2.10]",
        "sip:192.0.2.1:5060;transport=udp",
        "sip:host.example.com.;lr",
        "sip:%00@host5.example.com",
        "sip:user:@example.com",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    uri = _sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.decoded_user == "user;par=u@example.net"
    assert uri.host == "example.com" and uri.params == ()


def test_escaped_nul_is_not_a_terminator() -> None:
    assert _sip("sip:null-%00-null@example.com").decoded_user == "null-\x00-null"


def test_escaped_params_decode() -> None:
    uri = _sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.has_param("%6C%72")
    assert uri.param("n%61me") == "value%41"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[::1]:5060", "[::1]", 5060),
        ("sip:user@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
        ("sip:user@[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = _sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert uri.host_address == host.strip("[]")


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: no brackets
        "sip:[2001:db8::10",  # unclosed
        "sip:2001:db8::10]",
        "sip:user@[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10: three colons
        "sip:[fe80::1%eth0]",  # zone ids have no place in a SIP URI
        "sip:[192.0.2.1]",
        "sip:[]",
        "<sip:user@example.com>",
        "sip:user@example.com; lr",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:user@host:",
        "sip:user@host:99999",
        "sip:user@host:5o60",
        "sip:user@ho st",
        "sip:user@1.2.3",
        "sip:user@256.1.1.1",
        "sip:user@-host.example.com",
        "sip:us%zzer@example.com",
        "sip:user@example.com;",
        "sip:user@example.com;=x",
        "sip:user@example.com;a=",
        "sip:user@example.com?",
        "sip:user@example.com?novalue",
        "sip:a@b@example.com",
        "sip:user@example.com>",
        "tel:",
        "tel:+",
        "tel:+1 555",
        "tel:+1555;=x",
        "1sip:x",
        ":x",
        "nocolon",
        "http:",
        "http://exa mple.com",
    ],
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_tel_and_other_schemes_are_opaque_but_checked() -> None:
    tel = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert tel == TelUri(number="+1-201-555-0123", params=(("ext", "1234"),))
    assert str(tel) == "tel:+1-201-555-0123;ext=1234"
    assert parse_uri("tel:7042;phone-context=example.com") == TelUri(
        number="7042", params=(("phone-context", "example.com"),)
    )
    other = parse_uri("soap.beep://192.0.2.103:3002")
    assert other == AbsoluteUri(scheme="soap.beep", rest="//192.0.2.103:3002")
    assert str(other) == "soap.beep://192.0.2.103:3002"
    assert parse_uri("SIP:alice@example.com") == SipUri(user="alice", host="example.com")


# RFC 3261 §19.1.4, its examples first.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("sip:%75se%72@example.com", "sip:user@example.com"),
        ("sip:[2001:db8::1]", "sip:[2001:DB8:0::1]"),
        ("sip:host.example.com.", "sip:host.example.com"),
        ("tel:+1-201-555-0123", "tel:+1(201)5550123"),
        ("tel:7042;phone-context=EXAMPLE.com", "tel:7042;phone-context=example.com"),
        ("HTTP://x", "http://x"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b))
    assert uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@example.com", "sips:alice@example.com"),
        ("sip:alice:a@example.com", "sip:alice:A@example.com"),
        # An escaped reserved character is not that character (§19.1.4).
        ("sip:sips%3Auser%40example.com@example.net", "sip:sips:user%40example.com@example.net"),
        ("sip:user@example.com", "tel:+15550100"),
        ("tel:+15550100", "tel:5550100;phone-context=+1"),
    ],
)
def test_not_equivalent(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ;  tag = 98asjd8')
    assert quoted.display_name == 'J Rosenberg \\"'
    assert quoted.tag == "98asjd8"
    assert str(quoted) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'

    tokens = parse_name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x")
    assert tokens.display_name == "token1~` token2'+_ token3*%!.-"

    glued = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert glued.display_name == "caller" and glued.tag == "323"

    spec = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert spec.uri == SipUri(user="+19725552222", host="gw1.example.net")
    assert spec.params == (("unknownparam", None),)
    assert str(spec) == "<sip:+19725552222@gw1.example.net>;unknownparam"

    bracketed = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(bracketed.uri, SipUri) and bracketed.uri.has_param("unknownparam")
    assert bracketed.params == ()

    empty = parse_name_addr('"" <sip:a@b.example>')
    assert empty.display_name == ""
    assert str(empty) == '"" <sip:a@b.example>'

    assert parse_name_addr("isbn:2983792873").uri == AbsoluteUri(scheme="isbn", rest="2983792873")
    quoted_param = parse_name_addr('<sip:a@b.example>;p="x;y, z";received=[2001:db8::1]')
    assert quoted_param.param("p") == "x;y, z"
    assert quoted_param.param("received") == "[2001:db8::1]"


def test_display_name_control_characters_round_trip() -> None:
    address = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:a@example.com>')
    assert address.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert parse_name_addr(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        '"Mr. J. User <sip:j.user@example.com>',
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        '"Watson, Thomas" < sip:t.watson@example.org >',
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "sip:a@example.com, sip:b@example.com",
        '"quoted" sip:a@example.com',
        "<sip:a@example.com",
        "<sip:a@example.com>;",
        "<sip:a@example.com>;tag=",
        "<sip:a@example.com> trailing",
        '"ctl \x01" <sip:a@example.com>',
        "",
        "   ",
    ],
)
def test_malformed_addresses(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_with_param_replaces_in_place_or_appends() -> None:
    address = parse_name_addr("<sip:a@example.com>;tag=1;x=2")
    assert str(address.with_param("TAG", "9")) == "<sip:a@example.com>;tag=9;x=2"
    assert str(address.with_param("lr", None)) == "<sip:a@example.com>;tag=1;x=2;lr"
    with pytest.raises(ValueError):
        address.with_param("tag", "a b")
    with pytest.raises(ValueError):
        address.with_param("bad name", "1")


def test_quoting_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        str(NameAddr(uri=SipUri(host="example.com"), display_name="a\r\nVia: x"))


def test_ip_addresses() -> None:
    assert is_ip_address("192.0.2.1")
    assert is_ip_address("2001:db8::9:255")
    assert is_ip_address("[2001:db8::9:255]")
    assert not is_ip_address("example.com")
    assert not is_ip_address("192.0.2.256")
    assert not is_ip_address("[192.0.2.1")
