"""SDP parsing and serialization: descriptions shaped like those real user agents send, sloppy
but valid input, garbage, and round trips."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    parse,
    serialize,
)


def sdp(text: str) -> str:
    """A description with CRLF line ends, as user agents send them."""
    return "".join(line + "\r\n" for line in text.strip().splitlines())


SAMPLES: dict[str, str] = {
    # SIPp's built-in uac scenario.
    "sipp": sdp("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""),
    # SIPp's uac_pcap scenario, which plays a pcap with DTMF.
    "sipp_pcap": sdp("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
"""),
    "asterisk": sdp("""
v=0
o=- 1853244127 1853244127 IN IP4 192.0.2.10
s=Asterisk
c=IN IP4 192.0.2.10
t=0 0
m=audio 10548 RTP/AVP 0 8 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""),
    "freeswitch": sdp("""
v=0
o=FreeSWITCH 1700812800 1700812801 IN IP4 198.51.100.20
s=FreeSWITCH
c=IN IP4 198.51.100.20
t=0 0
m=audio 16384 RTP/AVP 102 9 0 8 103 101 13
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:103 telephone-event/48000
a=fmtp:103 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
a=rtcp:16385 IN IP4 198.51.100.20
"""),
    "cisco_cube": sdp("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4373 7821 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=audio 17192 RTP/AVP 18 0 8 101 19
c=IN IP4 203.0.113.5
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:19 CN/8000
a=ptime:20
a=X-sqn:0
a=X-cap:1 audio RTP/AVP 100
a=X-cpar:a=rtpmap:100 X-NSE/8000
a=X-cpar:a=fmtp:100 192-194
a=X-cap:2 image udptl t38
"""),
    "twilio": sdp("""
v=0
o=root 1294217414 1294217414 IN IP4 54.172.60.1
s=Twilio Media Gateway
c=IN IP4 54.172.60.1
t=0 0
m=audio 17282 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""),
    "acme_sbc": sdp("""
v=0
o=SBC 1001 1001 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
b=AS:80
t=0 0
m=audio 49172 RTP/AVP 8 0 18 101
b=AS:80
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
a=maxptime:30
a=sendrecv
"""),
    "baresip_ipv6": sdp("""
v=0
o=- 2103356483 3713417101 IN IP6 2001:db8::20
s=-
c=IN IP6 2001:db8::20
t=0 0
a=tool:baresip 3.10.1
m=audio 41552 RTP/AVP 96 9 0 8 101
b=AS:125
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=ssrc:3405628164 cname:b3c0c7e4-52de-4d8d-a4b9-0b4d8a0a77c2
a=sendrecv
a=label:1
m=video 36098 RTP/AVP 100 97
b=AS:1000
a=rtpmap:100 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=1;profile-level-id=42e01f
a=rtcp-fb:* nack pli
a=rtcp-mux
a=sendrecv
"""),
    "pjsua": sdp("""
v=0
o=- 3913290150 3913290150 IN IP4 10.0.0.7
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122
c=IN IP4 10.0.0.7
b=TIAS:64000
a=rtcp:4001 IN IP4 10.0.0.7
a=sendrecv
a=rtpmap:96 speex/16000
a=rtpmap:97 speex/8000
a=rtpmap:98 speex/32000
a=rtpmap:99 iLBC/8000
a=fmtp:99 mode=30
a=rtpmap:3 GSM/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:120 telephone-event/16000
a=fmtp:120 0-16
a=rtpmap:121 telephone-event/8000
a=fmtp:121 0-16
a=rtpmap:122 telephone-event/32000
a=fmtp:122 0-16
a=ssrc:1238416284 cname:3ea1f7a07ca54c62
"""),
    # A Cisco gateway switching the call to T.38 fax in a re-INVITE.
    "cube_t38": sdp("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4373 7822 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=image 17194 udptl t38
c=IN IP4 203.0.113.5
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:200
a=T38FaxMaxDatagram:320
a=T38FaxUdpEC:t38UDPRedundancy
"""),
    # A desk phone offering voice, video and a BFCP floor control stream.
    "video_phone": sdp("""
v=0
o=Polycom 1700000000 1700000000 IN IP4 192.0.2.77
s=-
c=IN IP4 192.0.2.77
b=AS:1024
t=0 0
m=audio 2226 RTP/AVP 9 0 8 101
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 2228 RTP/AVP 109 34
b=TIAS:1024000
a=rtpmap:109 H264/90000
a=fmtp:109 profile-level-id=42801e
a=rtpmap:34 H263/90000
a=sendrecv
m=application 5070 UDP/BFCP *
a=floorctrl:c-only
a=confid:1
"""),
}


def test_every_sample_parses_and_round_trips() -> None:
    for name, text in SAMPLES.items():
        description = parse(text)
        assert parse(serialize(description)) == description, name
        for media in description.media:
            media.check()


def test_canonical_text_serializes_back_byte_for_byte() -> None:
    for name in ("sipp", "asterisk", "twilio", "cisco_cube", "freeswitch", "baresip_ipv6"):
        assert serialize(parse(SAMPLES[name])) == SAMPLES[name].encode(), name


def test_asterisk_offer() -> None:
    description = parse(SAMPLES["asterisk"])
    assert description.origin == Origin("-", "1853244127", 1853244127, "192.0.2.10")
    assert description.name == "Asterisk"
    assert description.connection == Connection("192.0.2.10", "IP4")
    assert description.timing == (Timing(0, 0),)
    (audio,) = description.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 10548, "RTP/AVP")
    assert audio.formats == ("0", "8", "9", "101")
    assert audio.payload_types() == (0, 8, 9, 101)
    assert audio.rtpmaps()[101] == RtpMap(101, "telephone-event", 8000)
    assert audio.rtpmaps()[9] == RtpMap(9, "G722", 8000)
    assert audio.fmtps() == {101: "0-16"}
    assert audio.ptime() == 20
    assert audio.maxptime() == 150
    assert audio.direction() is Direction.SENDRECV
    assert audio.connection is None
    assert audio.rtcp() is None


def test_sipp_static_payload_type_needs_no_rtpmap() -> None:
    (audio,) = parse(SAMPLES["sipp"]).media
    assert audio.payload_types() == (0,)
    assert parse(SAMPLES["sipp"]).name == "-"
    assert audio.direction() is None
    assert audio.ptime() is None


def test_freeswitch_rtcp_and_fmtp_with_blanks() -> None:
    (audio,) = parse(SAMPLES["freeswitch"]).media
    assert audio.rtcp() == (16385, Connection("198.51.100.20", "IP4"))
    assert audio.rtpmaps()[102] == RtpMap(102, "opus", 48000, "2")
    assert audio.fmtps()[102].startswith("useinbandfec=1; maxaveragebitrate=30000;")


def test_cisco_media_level_connection_and_opaque_attributes_in_order() -> None:
    description = parse(SAMPLES["cisco_cube"])
    (audio,) = description.media
    assert description.origin.username == "CiscoSystemsSIP-GW-UserAgent"
    assert audio.connection == Connection("203.0.113.5")
    opaque = [a for a in audio.attributes if a.name.startswith("X-")]
    assert opaque == [
        Attribute("X-sqn", "0"),
        Attribute("X-cap", "1 audio RTP/AVP 100"),
        Attribute("X-cpar", "a=rtpmap:100 X-NSE/8000"),
        Attribute("X-cpar", "a=fmtp:100 192-194"),
        Attribute("X-cap", "2 image udptl t38"),
    ]


def test_pjsua_media_level_connection_bandwidth_and_rtcp_address() -> None:
    description = parse(SAMPLES["pjsua"])
    assert description.connection is None
    assert description.bandwidths == (Bandwidth("AS", 84),)
    assert description.attributes == (Attribute("X-nat", "0"),)
    (audio,) = description.media
    assert audio.connection == Connection("10.0.0.7")
    assert audio.bandwidths == (Bandwidth("TIAS", 64000),)
    assert audio.rtcp() == (4001, Connection("10.0.0.7"))
    assert Attribute("ssrc", "1238416284 cname:3ea1f7a07ca54c62") in audio.attributes


def test_baresip_ipv6_with_video_and_rtcp_mux_kept_as_is() -> None:
    description = parse(SAMPLES["baresip_ipv6"])
    assert description.origin.address_type == "IP6"
    assert description.connection == Connection("2001:db8::20", "IP6")
    assert description.attributes == (Attribute("tool", "baresip 3.10.1"),)
    audio, video = description.media
    assert Attribute("rtcp-mux") in audio.attributes
    assert audio.rtcp() is None
    assert (video.media, video.port, video.formats) == ("video", 36098, ("100", "97"))
    assert Attribute("rtcp-fb", "* nack pli") in video.attributes


def test_acme_bandwidth_at_both_levels_and_ptime_30() -> None:
    description = parse(SAMPLES["acme_sbc"])
    assert description.bandwidths == (Bandwidth("AS", 80),)
    assert description.media[0].bandwidths == (Bandwidth("AS", 80),)
    assert description.media[0].ptime() == 30


def test_non_rtp_streams_keep_their_formats_as_tokens() -> None:
    (image,) = parse(SAMPLES["cube_t38"]).media
    assert (image.media, image.proto, image.formats, image.is_rtp) == (
        "image",
        "udptl",
        ("t38",),
        False,
    )
    assert image.attributes[0] == Attribute("T38FaxVersion", "0")
    *_, bfcp = parse(SAMPLES["video_phone"]).media
    assert (bfcp.proto, bfcp.formats) == ("UDP/BFCP", ("*",))


def test_lf_line_ends_trailing_blanks_and_blank_lines() -> None:
    text = (
        "v=0\n"
        "o=- 1 2 IN IP4 192.0.2.1  \n"
        "s=call \t\n"
        "\n"
        "c=IN IP4 192.0.2.1\n"
        "t=0 0\n"
        "m=audio  5004 RTP/AVP 0   8 \n"
        "a=rtpmap:0 PCMU/8000 \n"
        "\n"
    )
    description = parse(text)
    assert description.name == "call"
    assert description.origin == Origin("-", "1", 2, "192.0.2.1")
    assert description.media[0].formats == ("0", "8")
    assert description.media[0].rtpmaps() == {0: RtpMap(0, "PCMU", 8000)}
    assert parse(text.replace("\n", "\r")) == description
    assert parse(text.replace("\n", "\r\n").encode()) == description


def test_session_lines_in_any_order_and_optional_ones_dropped() -> None:
    description = parse(
        "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
        "i=A call\r\nu=http://example.com/\r\ne=ops@example.com\r\np=+1 555 0100\r\n"
        "r=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\n"
        "m=audio 5004 RTP/AVP 0\r\ni=voice\r\nk=prompt\r\n"
    )
    assert description.connection == Connection("192.0.2.1")
    assert description.media[0].attributes == ()


def test_tolerated_omissions() -> None:
    description = parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 0\r\n")
    assert description.name == ""
    assert description.timing == (Timing(0, 0),)
    assert parse("v=0\no=- 1 1 IN IP4 h\ns= \nt=0 0\n").name == ""
    # RFC 3264 answers with a rejected stream sometimes leave out the formats.
    assert parse("v=0\no=- 1 1 IN IP4 h\nm=video 0 RTP/AVP\n").media[0].formats == ()


def test_lower_case_and_odd_but_meaningful_values() -> None:
    (audio,) = parse(
        "v=0\no=- 1 1 in ip4 h\nc=in ip4 192.0.2.1\nm=audio 5004/2 RTP/AVP 96 101\n"
        "a=rtpmap:96 pcmu/8000/1\na=RTPMAP:101 Telephone-Event/8000\na=fmtp:101\n"
        "a=ptime:20.0\na=SENDONLY\na=sendonly\n"
    ).media
    assert audio.port_count == 2
    assert audio.rtpmaps() == {
        96: RtpMap(96, "pcmu", 8000, "1"),
        101: RtpMap(101, "Telephone-Event", 8000),
    }
    assert audio.fmtps() == {101: ""}
    assert audio.ptime() == 20.0
    assert audio.direction() is Direction.SENDONLY


def test_latin1_session_name_is_accepted() -> None:
    assert parse("v=0\no=- 1 1 IN IP4 h\ns=Café\n".encode("latin-1")).name == "Café"
    assert parse("v=0\no=- 1 1 IN IP4 h\ns=Café\n".encode()).name == "Café"


def test_session_level_direction() -> None:
    description = parse("v=0\no=- 1 1 IN IP4 h\na=inactive\nm=audio 5004 RTP/AVP 0\n")
    assert description.direction() is Direction.INACTIVE
    assert description.media[0].direction() is None


HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
MALFORMED: list[tuple[str, str, int]] = [
    ("", "empty", 400),
    ("\r\n\r\n", "blank", 400),
    ("hello world", "not SDP", 400),
    ('{"sdp": "v=0"}', "JSON", 400),
    ("o=- 1 1 IN IP4 h\r\nv=0\r\n", "v= not first", 400),
    ("v=1\r\no=- 1 1 IN IP4 h\r\n", "version 1", 400),
    ("v=0\r\ns=-\r\n", "no o=", 400),
    ("v=0\r\nv=0\r\no=- 1 1 IN IP4 h\r\n", "two v=", 400),
    (HEAD + "o=- 1 1 IN IP4 h\r\n", "two o=", 400),
    (HEAD + "s=again\r\n", "two s=", 400),
    (HEAD + "c=IN IP4 192.0.2.2\r\n", "two c=", 400),
    ("v=0\r\no=- 1 IN IP4 h\r\n", "o= with five fields", 400),
    ("v=0\r\no=- 1 one IN IP4 h\r\n", "o= version not a number", 400),
    ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", "c= without address", 400),
    ("v=0\r\no=- 1 1 IN IP4 h\r\nc=ATM NSAP 47.0091\r\n", "c= not IN", 488),
    ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IPX 10.0.0.1\r\n", "c= address type", 488),
    (HEAD + "b=AS\r\n", "b= without value", 400),
    (HEAD + "b=AS:fast\r\n", "b= value not a number", 400),
    (HEAD + "b=:64\r\n", "b= without type", 400),
    (HEAD + "t=0\r\n", "t= with one field", 400),
    (HEAD + "x=unknown\r\n", "unknown type letter", 400),
    (HEAD + "A=sendrecv\r\n", "upper-case type letter", 400),
    (HEAD + "a sendrecv\r\n", "no =", 400),
    (HEAD + "=0\r\n", "no type", 400),
    (HEAD + "a=\r\n", "a= without a name", 400),
    (HEAD + "a=:value\r\n", "a= with an empty name", 400),
    (HEAD + "m=audio 5004\r\n", "m= with two fields", 400),
    (HEAD + "m=audio 5004 RTP/AVP\r\n", "m= without formats", 400),
    (HEAD + "m=audio 70000 RTP/AVP 0\r\n", "port out of range", 400),
    (HEAD + "m=audio five RTP/AVP 0\r\n", "port not a number", 400),
    (HEAD + "m=audio 5004/x RTP/AVP 0\r\n", "bad port count", 400),
    (HEAD + "m=audio 5004 RTP//AVP 0\r\n", "bad proto", 400),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\nt=0 0\r\n", "t= in a media section", 400),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n", "o= in a media section", 400),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n", "two media c=", 400),
    (HEAD + "a=sendrecv\r\na=inactive\r\n", "two session directions", 400),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=ptime:20\x00\r\n", "NUL", 400),
]


# A stream's attributes are read when offer/answer takes part in the stream, not by `parse`: a
# stream it refuses may carry anything that does not break the line structure.
MALFORMED_STREAMS: list[tuple[str, str]] = [
    (HEAD + "m=audio 5004 RTP/AVP PCMU\r\n", "RTP format not a number"),
    (HEAD + "m=audio 5004 RTP/AVP 0 200\r\n", "payload type above 127"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", "rtpmap without rate"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtpmap:0\r\n", "rtpmap without codec"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtpmap:zero PCMU/8000\r\n", "rtpmap pt"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/fast\r\n", "rtpmap rate"),
    (
        HEAD + "m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\na=rtpmap:96 PCMA/8000\r\n",
        "conflicting rtpmaps",
    ),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=fmtp:x 0-15\r\n", "fmtp pt"),
    (
        HEAD + "m=audio 5004 RTP/AVP 101\r\na=fmtp:101 0-15\r\na=fmtp:101 0-16\r\n",
        "conflicting fmtps",
    ),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=ptime:twenty\r\n", "ptime"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=ptime\r\n", "ptime without value"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=ptime:20\r\na=ptime:30\r\n", "two ptimes"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=maxptime:-1\r\n", "maxptime"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtcp:port\r\n", "rtcp port"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=rtcp:5005 IN IP4\r\n", "rtcp address"),
    (HEAD + "m=audio 5004 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n", "two directions"),
]


@pytest.mark.parametrize(
    ("text", "status"), [(t, s) for t, _, s in MALFORMED], ids=[i for _, i, _ in MALFORMED]
)
def test_malformed_input_is_an_sdp_error(text: str, status: int) -> None:
    with pytest.raises(SdpError) as caught:
        parse(text)
    assert caught.value.status == status
    assert str(caught.value)


@pytest.mark.parametrize(
    "text", [t for t, _ in MALFORMED_STREAMS], ids=[i for _, i in MALFORMED_STREAMS]
)
def test_a_streams_attributes_are_checked_only_on_demand(text: str) -> None:
    (stream,) = parse(text).media
    with pytest.raises(SdpError) as caught:
        stream.check()
    assert caught.value.status == 400
    assert str(caught.value)


def test_torture_offers_with_unreadable_video_streams_parse() -> None:
    """RFC 4475's INVITEs offer `a=rtpmap:31 LPC` (no clock rate); RFC 5118's bodies are cut by
    their Content-Length in the middle of the video rtpmap. The audio streams read."""
    for video in ("a=rtpmap:31 LPC", "a=rtpmap:107 H263-19", "a=rtpmap:107 H263-1998"):
        text = HEAD + "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31 107\r\n" + video
        audio, stream = parse(text).media
        audio.check()
        with pytest.raises(SdpError, match="bad a=rtpmap"):
            stream.check()


def test_unsupported_network_carries_its_warning() -> None:
    with pytest.raises(SdpError) as caught:
        parse("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IPX 10.0.0.1\r\n")
    assert caught.value.warning("bridge.example.com") == (
        '301 bridge.example.com "Incompatible network address formats"'
    )
    assert SdpError("plain").warning("bridge.example.com") is None


def test_serialize_orders_lines_and_names_an_unnamed_session() -> None:
    description = SessionDescription(
        origin=Origin("-", "42", 7, "2001:db8::1", "IP6"),
        attributes=(Attribute("group", "BUNDLE 0"),),
        bandwidths=(Bandwidth("AS", 64),),
        connection=Connection("2001:db8::1", "IP6"),
        media=(
            MediaDescription(
                "audio",
                5004,
                "RTP/AVP",
                ("0",),
                attributes=(Attribute("sendrecv"), Attribute("empty", "")),
                bandwidths=(Bandwidth("TIAS", 64000),),
                connection=Connection("2001:db8::2", "IP6"),
            ),
        ),
    )
    assert serialize(description).decode().split("\r\n") == [
        "v=0",
        "o=- 42 7 IN IP6 2001:db8::1",
        "s= ",
        "c=IN IP6 2001:db8::1",
        "b=AS:64",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=audio 5004 RTP/AVP 0",
        "c=IN IP6 2001:db8::2",
        "b=TIAS:64000",
        "a=sendrecv",
        "a=empty:",
        "",
    ]


def test_serialize_refuses_line_breaks_in_values() -> None:
    bad = SessionDescription(Origin("-", "1", 1, "192.0.2.1"), name="two\r\nlines")
    with pytest.raises(ValueError, match="control character"):
        serialize(bad)


# Property tests: generated descriptions survive serialize → parse unchanged, and no input makes
# the parser raise anything but SdpError.

TOKEN_ALPHABET = string.ascii_letters + string.digits + "!#$%&'*+-.^_`{|}~"
INTERPRETED = {"rtpmap", "fmtp", "ptime", "maxptime", "rtcp", *(d.value for d in Direction)}
tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=10)
names = tokens.filter(lambda name: name.lower() not in INTERPRETED)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=20)
values = texts.map(lambda text: text.rstrip(" \t"))
numbers = st.integers(min_value=0, max_value=2**64)
addresses = st.one_of(
    st.ip_addresses(v=4).map(lambda ip: Connection(str(ip), "IP4")),
    st.ip_addresses(v=6).map(lambda ip: Connection(str(ip), "IP6")),
    tokens.map(lambda host: Connection(host, "IP4")),
)
bandwidths = st.lists(st.builds(Bandwidth, tokens, numbers), max_size=2).map(tuple)
opaque = st.lists(st.builds(Attribute, names, st.none() | values), max_size=4)
directions = st.lists(st.sampled_from(Direction).map(lambda d: Attribute(d.value)), max_size=1)


@st.composite
def rtp_streams(draw: st.DrawFn) -> MediaDescription:
    # 0, 8 and 9 often, so that offer/answer tests on these descriptions find codecs of ours.
    payload_types = st.sampled_from([0, 8, 9]) | st.integers(0, 127)
    pts = draw(st.lists(payload_types, min_size=1, max_size=6, unique=True))
    attributes = draw(opaque) + draw(directions)
    for pt in draw(st.lists(st.sampled_from(pts), unique=True)):
        encoding = draw(st.text(string.ascii_letters + string.digits + "-_.", min_size=1))
        rtpmap = RtpMap(
            pt, encoding, draw(st.integers(1, 10**6)), draw(st.sampled_from([None, "2"]))
        )
        attributes.append(Attribute("rtpmap", rtpmap.value))
    for pt in draw(st.lists(st.sampled_from(pts), unique=True)):
        params = draw(values).strip(" \t")
        attributes.append(Attribute("fmtp", f"{pt} {params}" if params else str(pt)))
    for name in draw(st.lists(st.sampled_from(["ptime", "maxptime"]), unique=True)):
        attributes.append(Attribute(name, str(draw(st.integers(1, 500)))))
    if draw(st.booleans()):
        rtcp = str(draw(st.integers(0, 65535)))
        if (address := draw(st.none() | addresses)) is not None:
            rtcp += f" IN {address.address_type} {address.address}"
        attributes.append(Attribute("rtcp", rtcp))
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video"])),
        port=draw(st.integers(0, 65535)),
        proto=draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"])),
        formats=tuple(str(pt) for pt in pts),
        port_count=draw(st.none() | st.integers(1, 4)),
        connection=draw(st.none() | addresses),
        bandwidths=draw(bandwidths),
        attributes=tuple(draw(st.permutations(attributes))),
    )


other_streams = st.builds(
    MediaDescription,
    media=st.sampled_from(["image", "application", "message"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["udptl", "TCP/MSRP", "UDP/BFCP"]),
    formats=st.lists(tokens, min_size=1, max_size=3).map(tuple),
    connection=st.none() | addresses,
    attributes=st.builds(lambda a, d: tuple(a + d), opaque, directions),
)


@st.composite
def descriptions(draw: st.DrawFn) -> SessionDescription:
    origin_address = draw(addresses)
    return SessionDescription(
        origin=Origin(
            username=draw(tokens),
            session_id=str(draw(numbers)),
            version=draw(numbers),
            address=origin_address.address,
            address_type=origin_address.address_type,
        ),
        name=draw(texts).strip(" \t"),
        connection=draw(st.none() | addresses),
        bandwidths=draw(bandwidths),
        timing=tuple(draw(st.lists(st.builds(Timing, numbers, numbers), min_size=1, max_size=2))),
        attributes=tuple(draw(opaque) + draw(directions)),
        media=tuple(draw(st.lists(rtp_streams() | other_streams, max_size=4))),
    )


@given(descriptions())
def test_generated_descriptions_round_trip(description: SessionDescription) -> None:
    assert parse(serialize(description)) == description


def _parse_or_sdp_error(data: str | bytes) -> None:
    """Whatever parses must serialize and parse back to the same description, and checking its
    streams raises nothing but SdpError."""
    try:
        description = parse(data)
    except SdpError:
        return
    assert parse(serialize(description)) == description
    for media in description.media:
        with contextlib.suppress(SdpError):
            media.check()


@given(st.text())
def test_arbitrary_text_raises_only_sdp_error(text: str) -> None:
    _parse_or_sdp_error(text)


@given(st.binary())
def test_arbitrary_bytes_raise_only_sdp_error(data: bytes) -> None:
    _parse_or_sdp_error(data)


SNIPPETS = [
    "0",
    "- 1 1 IN IP4 192.0.2.1",
    "IN IP4 192.0.2.1",
    "IN IP6 ::1",
    "0 0",
    "AS:64",
    "audio 5004 RTP/AVP 0 8 101",
    "video 0 RTP/AVP 31",
    "image 5006 udptl t38",
    "rtpmap:101 telephone-event/8000",
    "rtpmap:0 PCMU/8000/1",
    "fmtp:101 0-15",
    "ptime:20",
    "maxptime:40",
    "rtcp:5005 IN IP4 192.0.2.1",
    "sendonly",
    "inactive",
]
sdp_like_lines = st.tuples(
    st.sampled_from("vosctbamiuepzkrx"), st.sampled_from(SNIPPETS) | st.text(max_size=30)
).map(lambda line: f"{line[0]}={line[1]}")


@given(st.lists(sdp_like_lines, max_size=12), st.sampled_from(["\r\n", "\n", "\r"]))
def test_sdp_like_lines_raise_only_sdp_error(lines: list[str], end: str) -> None:
    _parse_or_sdp_error(end.join(["v=0", "o=- 1 1 IN IP4 192.0.2.1", *lines]))


@given(st.sampled_from(sorted(SAMPLES)), st.integers(min_value=0), st.integers(0, 8), texts)
def test_mutated_samples_raise_only_sdp_error(
    name: str, position: int, cut: int, insert: str
) -> None:
    text = SAMPLES[name]
    at = position % (len(text) + 1)
    _parse_or_sdp_error(text[:at] + insert + text[at + cut :])
