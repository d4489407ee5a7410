"""Offer/answer (RFC 3264) as a voice bot UAS does it: answering real user agents' offers,
holding and resuming both ways, late offers, our own re-INVITEs, and what the RTP layer is told."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.sip.offer_answer import (
    CODECS,
    G722,
    PCMA,
    PCMU,
    PTIMES,
    Answer,
    Codec,
    LocalMedia,
    NegotiatedMedia,
    NoCommonCodec,
    accept_answer,
    answer,
    offer,
)
from bridge.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    SdpError,
    SessionDescription,
    Timing,
    parse,
    serialize,
)
from tests.unit.sip.test_sdp import MALFORMED_STREAMS, SAMPLES, descriptions, rtp_streams

LOCAL = LocalMedia("192.0.2.200", 40000)


def lines(description: SessionDescription) -> list[str]:
    """The serialized description without its o= line, whose session id is random."""
    return [
        line for line in serialize(description).decode().split("\r\n") if not line.startswith("o=")
    ]


def audio_offer(*media_lines: str, session: str = "c=IN IP4 192.0.2.10") -> SessionDescription:
    head = ["v=0", "o=- 100 200 IN IP4 192.0.2.10", "s=-", session, "t=0 0"]
    return parse("\r\n".join([*head, *media_lines]) + "\r\n")


def answered(description: SessionDescription, local: LocalMedia = LOCAL) -> Answer:
    """Answer, and check that the answer is itself valid SDP that parses back unchanged."""
    result = answer(description, local)
    assert parse(serialize(result.sdp)) == result.sdp
    return result


@pytest.mark.parametrize(
    ("sample", "codec", "payload_type", "event_pt", "ptime", "remote"),
    [
        ("sipp", PCMU, 0, None, 20, ("127.0.0.1", 6000)),
        ("sipp_pcap", PCMA, 8, 101, 20, ("127.0.0.1", 6000)),
        ("asterisk", PCMU, 0, 101, 20, ("192.0.2.10", 10548)),
        # Opus comes first but is not ours; telephone-event/48000 (103) is for Opus.
        ("freeswitch", G722, 9, 101, 20, ("198.51.100.20", 16384)),
        ("cisco_cube", PCMU, 0, 101, 20, ("203.0.113.5", 17192)),
        ("twilio", PCMU, 0, 101, 20, ("54.172.60.1", 17282)),
        ("acme_sbc", PCMA, 8, 101, 30, ("192.0.2.50", 49172)),
        ("baresip_ipv6", G722, 9, 101, 20, ("2001:db8::20", 41552)),
        ("pjsua", PCMU, 0, 121, 20, ("10.0.0.7", 4000)),
        ("video_phone", G722, 9, 101, 20, ("192.0.2.77", 2226)),
    ],
)
def test_answers_to_real_user_agents(
    sample: str,
    codec: Codec,
    payload_type: int,
    event_pt: int | None,
    ptime: int,
    remote: tuple[str, int],
) -> None:
    media = answered(parse(SAMPLES[sample])).media
    assert media.codec == codec
    assert media.payload_type == payload_type
    assert media.telephone_event_pt == event_pt
    assert media.ptime == ptime
    assert media.remote_rtp == remote
    assert media.direction is Direction.SENDRECV
    assert (media.send, media.receive, media.on_hold) == (True, True, False)


def test_answer_to_asterisk_in_full() -> None:
    result = answered(parse(SAMPLES["asterisk"]))
    assert lines(result.sdp) == [
        "v=0",
        "s=voicebridge",
        "c=IN IP4 192.0.2.200",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        # We send and understand only the DTMF events, not 16 (flash) that Asterisk offers.
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]
    origin = result.sdp.origin
    assert (origin.username, origin.version, origin.address) == ("-", 1, "192.0.2.200")
    assert origin.session_id.isdigit()
    assert result.media.remote_rtcp == ("192.0.2.10", 10549)


def test_answer_keeps_the_offerers_event_list_where_it_is_narrower() -> None:
    result = answered(parse(SAMPLES["sipp_pcap"]))
    assert "a=fmtp:101 0-11" in lines(result.sdp)


def test_rejected_streams_keep_their_place_and_formats() -> None:
    result = answered(parse(SAMPLES["video_phone"]))
    audio, video, bfcp = result.sdp.media
    assert audio.port == 40000
    assert video == MediaDescription("video", 0, "RTP/AVP", ("109", "34"))
    assert bfcp == MediaDescription("application", 0, "UDP/BFCP", ("*",))
    _, video_line = answered(parse(SAMPLES["baresip_ipv6"])).sdp.media
    assert (video_line.port, video_line.formats, video_line.attributes) == (0, ("100", "97"), ())


def test_rtcp_address_comes_from_a_rtcp() -> None:
    assert answered(parse(SAMPLES["freeswitch"])).media.remote_rtcp == ("198.51.100.20", 16385)
    assert answered(parse(SAMPLES["pjsua"])).media.remote_rtcp == ("10.0.0.7", 4001)
    other = audio_offer("m=audio 5004 RTP/AVP 0", "a=rtcp:6000 IN IP4 192.0.2.99")
    assert answered(other).media.remote_rtcp == ("192.0.2.99", 6000)
    named = audio_offer("m=audio 5004 RTP/AVP 0", "a=rtcp:6000 IN IP4 rtcp.example.com")
    assert answered(named).media.remote_rtcp == ("192.0.2.10", 6000)
    assert answered(audio_offer("m=audio 65535 RTP/AVP 0")).media.remote_rtcp is None


def test_rtcp_mux_is_ignored() -> None:
    result = answered(parse(SAMPLES["baresip_ipv6"]))
    assert result.media.remote_rtcp == ("2001:db8::20", 41553)
    assert not any(a.name == "rtcp-mux" for a in result.sdp.media[0].attributes)


def test_ipv6_local_address() -> None:
    local = LocalMedia("2001:db8::200", 40000)
    result = answered(parse(SAMPLES["baresip_ipv6"]), local)
    assert result.sdp.connection == Connection("2001:db8::200", "IP6")
    assert result.sdp.origin.address_type == "IP6"


def test_the_offers_order_wins_over_ours() -> None:
    offered = audio_offer("m=audio 5004 RTP/AVP 8 0 9")
    assert (
        answered(offered, LocalMedia("192.0.2.200", 40000, codecs=(G722, PCMU, PCMA))).media.codec
        == PCMA
    )
    assert answered(offered, LocalMedia("192.0.2.200", 40000, codecs=(PCMU,))).media.codec == PCMU


def test_dynamic_payload_types_match_by_name_and_rate_in_any_case() -> None:
    offered = audio_offer(
        "m=audio 5004 RTP/AVP 96 97 98 99",
        "a=rtpmap:96 PCMU/8000/2",
        "a=rtpmap:97 g722/16000",
        "a=rtpmap:98 pcma/8000",
        "a=rtpmap:99 TELEPHONE-EVENT/8000",
    )
    result = answered(offered)
    # Stereo PCMU and G.722 at a 16000 clock (a common mistake, RFC 3551 says 8000) are not ours.
    assert (result.media.codec, result.media.payload_type) == (PCMA, 98)
    assert result.media.telephone_event_pt == 99
    assert "m=audio 40000 RTP/AVP 98 99" in lines(result.sdp)
    assert "a=rtpmap:98 PCMA/8000" in lines(result.sdp)


def test_an_rtpmap_overrides_the_static_table() -> None:
    offered = audio_offer("m=audio 5004 RTP/AVP 0 8", "a=rtpmap:0 G722/8000")
    assert (answered(offered).media.codec, answered(offered).media.payload_type) == (G722, 0)


def test_a_dynamic_payload_type_without_rtpmap_is_skipped() -> None:
    offered = audio_offer("m=audio 5004 RTP/AVP 96 8")
    assert answered(offered).media.codec == PCMA


@pytest.mark.parametrize(
    ("offered", "wanted", "event_pt", "fmtp"),
    [
        (["m=audio 5004 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000"], True, 101, "0-15"),
        (["m=audio 5004 RTP/AVP 0 96", "a=rtpmap:96 telephone-event/8000"], False, None, None),
        (["m=audio 5004 RTP/AVP 0 100", "a=rtpmap:100 telephone-event/16000"], True, None, None),
        (
            ["m=audio 5004 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 16"],
            True,
            None,
            None,
        ),
        (
            ["m=audio 5004 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-9"],
            True,
            101,
            "0-9",
        ),
        (
            [
                "m=audio 5004 RTP/AVP 0 101",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-3,5 , 7-8,12-15,66",
            ],
            True,
            101,
            "0-3,5,7-8,12-15",
        ),
        # An event list we cannot read is taken as the RFC 4733 default.
        (
            ["m=audio 5004 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 all"],
            True,
            101,
            "0-15",
        ),
    ],
)
def test_telephone_event(
    offered: list[str], wanted: bool, event_pt: int | None, fmtp: str | None
) -> None:
    local = dataclasses.replace(LOCAL, telephone_event=wanted)
    result = answered(audio_offer(*offered), local)
    assert result.media.telephone_event_pt == event_pt
    fmtps = [line for line in lines(result.sdp) if line.startswith("a=fmtp:")]
    assert fmtps == ([] if fmtp is None else [f"a=fmtp:{event_pt} {fmtp}"])


@pytest.mark.parametrize(
    ("theirs", "on_hold", "ours"),
    [
        ("sendrecv", False, Direction.SENDRECV),
        ("sendonly", False, Direction.RECVONLY),
        ("recvonly", False, Direction.SENDONLY),
        ("inactive", False, Direction.INACTIVE),
        ("sendrecv", True, Direction.SENDONLY),
        ("sendonly", True, Direction.INACTIVE),
        ("recvonly", True, Direction.SENDONLY),
        ("inactive", True, Direction.INACTIVE),
    ],
)
def test_direction(theirs: str, on_hold: bool, ours: Direction) -> None:
    local = dataclasses.replace(LOCAL, on_hold=on_hold)
    result = answered(audio_offer("m=audio 5004 RTP/AVP 0", f"a={theirs}"), local)
    assert result.media.direction is ours
    assert f"a={ours.value}" in lines(result.sdp)
    assert result.media.remote_rtp == (None if ours is Direction.INACTIVE else ("192.0.2.10", 5004))


def test_session_level_direction_applies_unless_the_stream_names_its_own() -> None:
    session = audio_offer("a=sendonly", "m=audio 5004 RTP/AVP 0")
    assert answered(session).media.direction is Direction.RECVONLY
    overridden = audio_offer("a=sendonly", "m=audio 5004 RTP/AVP 0", "a=sendrecv")
    assert answered(overridden).media.direction is Direction.SENDRECV


def test_old_style_hold_with_zero_address() -> None:
    held = audio_offer("m=audio 5004 RTP/AVP 0", session="c=IN IP4 0.0.0.0")
    result = answered(held)
    assert result.media.direction is Direction.RECVONLY
    assert (result.media.remote_rtp, result.media.remote_rtcp) == (None, None)
    assert result.media.on_hold
    # Our own address stays real: the zero address was the caller's way to say "do not send".
    assert result.sdp.connection == Connection("192.0.2.200")
    inactive = audio_offer("m=audio 5004 RTP/AVP 0", "a=inactive", session="c=IN IP4 0.0.0.0")
    assert answered(inactive).media.direction is Direction.INACTIVE
    ipv6 = audio_offer("m=audio 5004 RTP/AVP 0", "a=sendrecv", session="c=IN IP6 ::")
    assert answered(ipv6).media.direction is Direction.RECVONLY


@pytest.mark.parametrize(
    ("attributes", "ptime"),
    [
        ([], 20),
        (["a=ptime:10"], 10),
        (["a=ptime:20"], 20),
        (["a=ptime:30"], 30),
        (["a=ptime:60"], 60),
        (["a=ptime:20.0"], 20),
        (["a=ptime:25"], 20),
        (["a=ptime:80"], 20),
        (["a=ptime:2.5"], 20),
        (["a=ptime:30", "a=maxptime:20"], 20),
        (["a=maxptime:10"], 10),
        (["a=maxptime:5"], 10),
        (["a=maxptime:150"], 20),
        (["a=ptime:40", "a=maxptime:45"], 40),
    ],
)
def test_ptime(attributes: list[str], ptime: int) -> None:
    result = answered(audio_offer("m=audio 5004 RTP/AVP 0", *attributes))
    assert result.media.ptime == ptime
    assert f"a=ptime:{ptime}" in lines(result.sdp)


def test_t_line_is_copied_from_the_offer() -> None:
    offered = dataclasses.replace(parse(SAMPLES["sipp"]), timing=(Timing(3900000000, 3900003600),))
    assert answered(offered).sdp.timing == (Timing(3900000000, 3900003600),)


def test_the_first_usable_audio_stream_is_taken_and_the_others_rejected() -> None:
    offered = audio_offer(
        "m=audio 5000 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        "m=audio 5002 RTP/AVP 18",
        "m=audio 5004 RTP/AVP 8",
        "m=audio 5006 RTP/AVP 0",
    )
    result = answered(offered)
    assert [(m.port, m.proto, m.formats) for m in result.sdp.media] == [
        (0, "RTP/SAVP", ("0",)),
        (0, "RTP/AVP", ("18",)),
        (40000, "RTP/AVP", ("8",)),
        (0, "RTP/AVP", ("0",)),
    ]
    assert result.media.remote_rtp == ("192.0.2.10", 5004)


@pytest.mark.parametrize(
    ("offered", "warning"),
    [
        (SAMPLES["cube_t38"], 304),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n", 304),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n", 304),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/SAVP 0\r\n", 302),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP 18 3\r\n", 305),
    ],
)
def test_nothing_acceptable_is_a_488_with_a_warning(offered: str, warning: int) -> None:
    with pytest.raises(NoCommonCodec) as caught:
        answer(parse(offered), LOCAL)
    assert (caught.value.status, caught.value.warning_code) == (488, warning)


def test_no_common_codec_says_what_was_offered() -> None:
    offered = audio_offer("m=audio 5004 RTP/AVP 18 97", "a=rtpmap:97 iLBC/8000")
    with pytest.raises(NoCommonCodec) as caught:
        answer(offered, LocalMedia("192.0.2.200", 40000, codecs=(PCMU, PCMA)))
    assert str(caught.value) == (
        "no codec in common: offered payload type 18, iLBC/8000; we take PCMU, PCMA"
    )
    assert caught.value.warning("bridge.example.com:5060") == (
        '305 bridge.example.com:5060 "Incompatible media format"'
    )
    g722_only = audio_offer("m=audio 5004 RTP/AVP 9")
    with pytest.raises(NoCommonCodec, match="offered G722/8000; we take PCMU, PCMA"):
        answer(g722_only, LocalMedia("192.0.2.200", 40000, codecs=(PCMU, PCMA)))


def test_an_audio_stream_without_a_usable_address() -> None:
    with pytest.raises(SdpError, match="no c= line") as missing:
        answer(audio_offer("m=audio 5004 RTP/AVP 0", session="a=tool:x"), LOCAL)
    assert missing.value.status == 400
    with pytest.raises(SdpError, match="not an IP address") as named:
        answer(audio_offer("m=audio 5004 RTP/AVP 0", session="c=IN IP4 pbx.example.com"), LOCAL)
    assert (named.value.status, named.value.warning_code) == (488, 301)


def test_reinvite_answers_keep_the_session_and_version_only_what_changed() -> None:
    first = answer(parse(SAMPLES["asterisk"]), LOCAL)
    again = answer(parse(SAMPLES["asterisk"]), LOCAL, previous=first.sdp)
    assert again.sdp == first.sdp
    assert not again.media.changed(first.media)

    hold_offer = SAMPLES["asterisk"].replace("a=sendrecv", "a=sendonly")
    held = answer(parse(hold_offer), LOCAL, previous=again.sdp)
    assert held.sdp.origin.session_id == first.sdp.origin.session_id
    assert held.sdp.origin.version == first.sdp.origin.version + 1
    assert "a=recvonly" in lines(held.sdp)
    change = held.media.changed(again.media)
    assert (change.hold_started, change.hold_ended, change.direction, change.codec) == (
        True,
        False,
        True,
        False,
    )

    resumed = answer(parse(SAMPLES["asterisk"]), LOCAL, previous=held.sdp)
    assert resumed.sdp.origin.version == first.sdp.origin.version + 2
    assert resumed.media.changed(held.media).hold_ended
    assert resumed.media == first.media


def test_old_style_hold_and_resume_from_a_cisco_gateway() -> None:
    call = answer(parse(SAMPLES["cisco_cube"]), LOCAL)
    hold = SAMPLES["cisco_cube"].replace("c=IN IP4 203.0.113.5", "c=IN IP4 0.0.0.0")
    held = answer(parse(hold.replace(" 7821 ", " 7822 ")), LOCAL, previous=call.sdp)
    change = held.media.changed(call.media)
    assert change.hold_started and change.remote
    assert held.media.remote_rtp is None
    assert held.sdp.origin.version == call.sdp.origin.version + 1
    resumed = answer(parse(SAMPLES["cisco_cube"]), LOCAL, previous=held.sdp)
    assert resumed.media == call.media
    assert resumed.media.changed(held.media).hold_ended


def test_a_reinvite_may_not_drop_m_lines() -> None:
    first = answer(parse(SAMPLES["video_phone"]), LOCAL)
    audio_only = SAMPLES["video_phone"].split("m=video")[0]
    with pytest.raises(SdpError, match="keep all its m= lines") as caught:
        answer(parse(audio_only), LOCAL, previous=first.sdp)
    assert caught.value.status == 488


def test_a_reinvite_that_moves_the_media_or_changes_codec() -> None:
    first = answer(parse(SAMPLES["twilio"]), LOCAL)
    moved = SAMPLES["twilio"].replace("54.172.60.1", "54.172.60.2").replace(" 0 101", " 8 101")
    moved = moved.replace("a=rtpmap:0 PCMU", "a=rtpmap:8 PCMA")
    second = answer(parse(moved), LOCAL, previous=first.sdp)
    change = second.media.changed(first.media)
    assert (change.remote, change.codec, change.ptime, change.telephone_event) == (
        True,
        True,
        False,
        False,
    )
    assert second.media.remote_rtp == ("54.172.60.2", 17282)
    assert second.sdp.origin.version == first.sdp.origin.version + 1


def test_late_offer() -> None:
    ours = offer(LOCAL)
    assert lines(ours) == [
        "v=0",
        "s=voicebridge",
        "c=IN IP4 192.0.2.200",
        "t=0 0",
        "m=audio 40000 RTP/AVP 9 0 8 101",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]
    assert ours.origin.version == 1
    ack = parse(
        SAMPLES["asterisk"]
        .replace("RTP/AVP 0 8 9 101", "RTP/AVP 0 101")
        .replace("a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n", "")
    )
    media = accept_answer(ours, ack)
    assert (media.codec, media.payload_type, media.telephone_event_pt) == (PCMU, 0, 101)
    assert media.remote_rtp == ("192.0.2.10", 10548)
    assert media.direction is Direction.SENDRECV


def test_the_answer_to_our_offer_picks_the_codec_by_its_own_order() -> None:
    ours = offer(LOCAL)
    theirs = audio_offer("m=audio 5004 RTP/AVP 8 9 101", "a=rtpmap:101 telephone-event/8000")
    media = accept_answer(ours, theirs)
    assert (media.codec, media.telephone_event_pt) == (PCMA, 101)
    without_events = accept_answer(offer(dataclasses.replace(LOCAL, telephone_event=False)), theirs)
    assert without_events.telephone_event_pt is None


def test_our_hold_and_resume() -> None:
    call = answer(parse(SAMPLES["freeswitch"]), LOCAL)
    hold = offer(dataclasses.replace(LOCAL, on_hold=True), previous=call.sdp)
    assert hold.origin.session_id == call.sdp.origin.session_id
    assert hold.origin.version == call.sdp.origin.version + 1
    assert "a=sendonly" in lines(hold)
    held = accept_answer(hold, parse(SAMPLES["freeswitch"].replace("a=sendrecv", "a=recvonly")))
    assert (held.direction, held.on_hold, held.remote_rtp) == (
        Direction.SENDONLY,
        True,
        ("198.51.100.20", 16384),
    )
    # A peer that answers sendrecv to our sendonly still gets nothing from us but what we offered.
    careless = accept_answer(hold, parse(SAMPLES["freeswitch"]))
    assert careless.direction is Direction.SENDONLY

    resume = offer(LOCAL, previous=hold)
    assert resume.origin.version == hold.origin.version + 1
    assert "a=sendrecv" in lines(resume)
    resumed = accept_answer(resume, parse(SAMPLES["freeswitch"]))
    assert resumed.changed(held).hold_ended


def test_session_refresh_offer_repeats_the_previous_one() -> None:
    first = offer(LOCAL)
    assert offer(LOCAL, previous=first) == first
    call = answer(parse(SAMPLES["acme_sbc"]), LOCAL)
    refresh = offer(dataclasses.replace(LOCAL, ptime=30, codecs=(PCMA,)), previous=call.sdp)
    assert refresh == call.sdp


def test_our_offer_keeps_rejected_streams_and_the_telephone_event_number() -> None:
    call = answer(parse(SAMPLES["pjsua"]), LOCAL)
    assert call.media.telephone_event_pt == 121
    video_call = answer(parse(SAMPLES["video_phone"]), LOCAL)
    reoffer = offer(LOCAL, previous=video_call.sdp)
    assert [(m.media, m.port) for m in reoffer.media] == [
        ("audio", 40000),
        ("video", 0),
        ("application", 0),
    ]
    assert "m=audio 40000 RTP/AVP 9 0 8 121" in lines(offer(LOCAL, previous=call.sdp))


def test_our_offer_appends_audio_when_the_session_had_none_left() -> None:
    previous = dataclasses.replace(
        offer(LOCAL), media=(MediaDescription("audio", 0, "RTP/AVP", ("0",)),)
    )
    reoffer = offer(LOCAL, previous=previous)
    assert [(m.media, m.port) for m in reoffer.media] == [("audio", 0), ("audio", 40000)]
    assert reoffer.origin.version == previous.origin.version + 1


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda text: text + "m=video 0 RTP/AVP 31\r\n", "2 m= lines for the 1"),
        (lambda text: text.replace("m=audio", "m=video"), "video where the offer has audio"),
        (lambda text: text.replace("RTP/AVP", "RTP/SAVP"), "changed the audio transport"),
    ],
)
def test_answers_that_break_the_rules(edit: Callable[[str], str], error: str) -> None:
    ours = offer(LOCAL)
    text = SAMPLES["asterisk"]
    with pytest.raises(SdpError, match=error):
        accept_answer(ours, parse(edit(text)))


def test_answers_that_refuse_our_audio() -> None:
    ours = offer(dataclasses.replace(LOCAL, codecs=(PCMU,)))
    with pytest.raises(NoCommonCodec, match="rejected the audio stream") as rejected:
        accept_answer(ours, parse(SAMPLES["asterisk"].replace("10548", "0")))
    assert rejected.value.warning_code == 304
    with pytest.raises(NoCommonCodec, match="none of the codecs we offered"):
        accept_answer(ours, audio_offer("m=audio 5004 RTP/AVP 8 9"))
    with pytest.raises(ValueError, match="our offer has no audio stream"):
        accept_answer(parse(SAMPLES["cube_t38"]), parse(SAMPLES["cube_t38"]))


def test_an_answer_with_a_zero_address_holds_us() -> None:
    media = accept_answer(offer(LOCAL), parse(SAMPLES["sipp"].replace("127.0.0.1", "0.0.0.0")))
    assert (media.direction, media.remote_rtp) == (Direction.RECVONLY, None)


def test_media_change() -> None:
    base = NegotiatedMedia(PCMU, 0, 101, 20, Direction.SENDRECV, ("192.0.2.1", 4000), None)
    assert not base.changed(base)
    for field, value in [
        ("codec", PCMA),
        ("payload_type", 96),
        ("telephone_event_pt", None),
        ("ptime", 30),
        ("remote_rtp", ("192.0.2.2", 4000)),
        ("remote_rtcp", ("192.0.2.2", 4001)),
        ("direction", Direction.INACTIVE),
    ]:
        assert base.changed(dataclasses.replace(base, **{field: value}))  # type: ignore[arg-type]
    inactive = dataclasses.replace(base, direction=Direction.INACTIVE)
    assert inactive.changed(base).hold_started
    assert base.changed(inactive).hold_ended
    recvonly = dataclasses.replace(base, direction=Direction.RECVONLY)
    assert not inactive.changed(recvonly).hold_started


def test_g722_runs_an_8000_clock_over_16000_audio() -> None:
    assert (G722.clock_rate, G722.sample_rate) == (8000, 16000)
    assert [(c.name, c.payload_type, c.sample_rate) for c in CODECS] == [
        ("PCMU", 0, 8000),
        ("PCMA", 8, 8000),
        ("G722", 9, 16000),
    ]


@pytest.mark.parametrize(
    "arguments",
    [
        {"address": "bridge.example.com"},
        {"port": 0},
        {"port": 70000},
        {"codecs": ()},
        {"codecs": (PCMU, PCMU)},
        {"ptime": 25},
    ],
)
def test_local_media_is_checked(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LocalMedia(**{"address": "192.0.2.1", "port": 4000, **arguments})  # type: ignore[arg-type]


def test_local_media_takes_only_our_codecs() -> None:
    with pytest.raises(ValueError, match="among PCMU, PCMA and G722"):
        LocalMedia("192.0.2.1", 4000, codecs=(dataclasses.replace(PCMU, name="GSM"),))


locals_ = st.builds(
    LocalMedia,
    address=st.sampled_from(["192.0.2.1", "198.51.100.7", "2001:db8::5"]),
    port=st.integers(512, 32767).map(lambda port: port * 2),
    codecs=st.lists(st.sampled_from(CODECS), min_size=1, max_size=3, unique=True).map(tuple),
    telephone_event=st.booleans(),
    on_hold=st.booleans(),
    ptime=st.sampled_from(PTIMES),
)


@given(locals_, locals_)
def test_both_sides_agree(caller: LocalMedia, bridge: LocalMedia) -> None:
    """Whatever two bridges offer and answer, they end up agreeing on codec, numbers, timing
    and who sends."""
    sent = parse(serialize(offer(caller)))
    common = [codec for codec in caller.codecs if codec in bridge.codecs]
    if not common:
        with pytest.raises(NoCommonCodec):
            answer(sent, bridge)
        return
    result = answer(sent, bridge)
    theirs = accept_answer(sent, parse(serialize(result.sdp)))
    ours = result.media
    assert ours.codec == theirs.codec == common[0]
    assert ours.payload_type == theirs.payload_type == common[0].payload_type
    assert ours.ptime == theirs.ptime == caller.ptime
    both = caller.telephone_event and bridge.telephone_event
    assert ours.telephone_event_pt == theirs.telephone_event_pt == (101 if both else None)
    assert (theirs.send, theirs.receive) == (ours.receive, ours.send)
    assert (ours.send, ours.receive) == (not caller.on_hold, not bridge.on_hold)
    assert theirs.remote_rtp == (
        None if theirs.direction is Direction.INACTIVE else (bridge.address, bridge.port)
    )


@st.composite
def offers(draw: st.DrawFn) -> SessionDescription:
    """Generated descriptions with one plain RTP audio stream slipped in among the others."""
    description = draw(descriptions())
    audio = dataclasses.replace(
        draw(rtp_streams()),
        media="audio",
        port=draw(st.integers(1, 65535)),
        proto="RTP/AVP",
        connection=draw(st.sampled_from([None, Connection("192.0.2.9"), Connection("::", "IP6")])),
    )
    at = draw(st.integers(0, len(description.media)))
    return dataclasses.replace(
        description, media=(*description.media[:at], audio, *description.media[at:])
    )


@given(offers())
def test_any_offer_gets_an_answer_or_an_sdp_error(description: SessionDescription) -> None:
    try:
        result = answer(description, LOCAL)
    except SdpError:
        return
    assert len(result.sdp.media) == len(description.media)
    assert parse(serialize(result.sdp)) == result.sdp
    accepted = [m for m in result.sdp.media if m.port != 0]
    assert len(accepted) == 1
    assert (
        str(result.media.payload_type)
        in description.media[result.sdp.media.index(accepted[0])].formats
    )


def test_opaque_attributes_never_reach_the_answer() -> None:
    result = answered(parse(SAMPLES["cisco_cube"]))
    names = {a.name for m in result.sdp.media for a in m.attributes}
    assert names == {"rtpmap", "fmtp", "ptime", "sendrecv"}
    assert Attribute("X-sqn", "0") not in result.sdp.media[0].attributes


# --- streams whose attributes do not read ------------------------------------------------------

BROKEN = [text.partition("m=")[2] for text, _ in MALFORMED_STREAMS]
"""The m= sections of test_sdp's MALFORMED_STREAMS, each an audio stream whose attributes
`MediaDescription.check` refuses."""
BROKEN_IDS = [name for _, name in MALFORMED_STREAMS]


def offer_of(*sections: str) -> SessionDescription:
    head = "v=0\r\no=- 100 200 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    return parse(head + "".join("m=" + section for section in sections))


@pytest.mark.parametrize("broken", BROKEN, ids=BROKEN_IDS)
def test_an_audio_stream_we_would_answer_must_read(broken: str) -> None:
    with pytest.raises(SdpError) as caught:
        answer(offer_of(broken), LOCAL)
    assert caught.value.status == 400
    assert not isinstance(caught.value, NoCommonCodec)


@pytest.mark.parametrize("broken", BROKEN, ids=BROKEN_IDS)
def test_a_stream_we_refuse_is_not_read(broken: str) -> None:
    video = broken.replace("audio", "video", 1)
    result = answered(offer_of("audio 5004 RTP/AVP 0\r\n", video))
    assert [(m.media, m.port) for m in result.sdp.media] == [("audio", 40000), ("video", 0)]
    assert result.sdp.media[1].formats == offer_of(video).media[0].formats
    assert result.sdp.media[1].attributes == ()
    # Once a stream is taken, the audio streams after it are refused unread too.
    later = answered(offer_of("audio 5004 RTP/AVP 0\r\n", broken))
    assert [(m.media, m.port) for m in later.sdp.media] == [("audio", 40000), ("audio", 0)]


@pytest.mark.parametrize("broken", BROKEN, ids=BROKEN_IDS)
def test_an_unreadable_audio_stream_gives_way_to_a_usable_one(broken: str) -> None:
    result = answered(offer_of(broken, "audio 5006 RTP/AVP 8\r\n"))
    assert [(m.media, m.port) for m in result.sdp.media] == [("audio", 0), ("audio", 40000)]
    assert (result.media.codec, result.media.remote_rtp) == (PCMA, ("192.0.2.10", 5006))


def test_an_unreadable_audio_stream_explains_the_failure_over_no_common_codec() -> None:
    with pytest.raises(SdpError, match="bad a=ptime") as caught:
        answer(
            offer_of("audio 5004 RTP/AVP 0\r\na=ptime:x\r\n", "audio 5006 RTP/AVP 18\r\n"), LOCAL
        )
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("video", "audio", "codec"),
    [
        # RFC 4475 (3.1.1.3 and others): LPC has no clock rate.
        ("video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n", "audio 49217 RTP/AVP 0 12\r\n", PCMU),
        # RFC 5118 4.8: the body's Content-Length cuts the rtpmap short.
        (
            "video 6024 RTP/AVP 107\r\nc=IN IP6 2001:db8::1\r\na=rtpmap:107 H263-1998",
            "audio 22334 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n",
            PCMU,
        ),
    ],
)
def test_torture_offers_are_answered(video: str, audio: str, codec: Codec) -> None:
    result = answered(offer_of(audio, video))
    assert result.media.codec == codec
    assert [m.port for m in result.sdp.media] == [40000, 0]


def test_torture_offers_without_a_codec_of_ours_are_488() -> None:
    # RFC 5118 4.6 and 4.9: G.726 only, and a video rtpmap cut short.
    offered = offer_of(
        "audio 6000 RTP/AVP 2\r\na=rtpmap:2 G726-32/8000\r\n",
        "video 6024 RTP/AVP 107\r\na=rtpmap:107 H263-19",
    )
    with pytest.raises(NoCommonCodec) as caught:
        answer(offered, LOCAL)
    assert (caught.value.status, caught.value.warning_code) == (488, 305)


@pytest.mark.parametrize("broken", BROKEN, ids=BROKEN_IDS)
def test_an_answer_whose_audio_stream_does_not_read(broken: str) -> None:
    ours = offer(LOCAL)
    with pytest.raises(SdpError) as caught:
        accept_answer(ours, offer_of(broken.replace("5004", "6000", 1)))
    assert caught.value.status == 400
