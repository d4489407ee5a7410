"""SDP offer/answer (RFC 3264) for a voice bot: which codec, where to send, which way media flows.

We take part in one audio stream per call. In an offer we accept the first audio RTP/AVP stream
that has a codec in common with us and reject every other m= line with port 0, in place (§6).
Only the streams we consider taking are read beyond their m= line (`MediaDescription.check`):
what a refused stream carries cannot fail the offer. A candidate that does not read is refused
like the others, and its error (400 Bad SDP) is the offer's when no other stream is usable. An
answer names exactly one codec (plus telephone-event), the offerer's favourite among ours
(§6.1: the offer's order wins), under the offerer's payload type numbers, so both directions use
one codec and the RTP layer never switches codec mid-stream without a new offer.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, replace

from bridge.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
)

SESSION_NAME = "voicebridge"
AUDIO_PROTO = "RTP/AVP"
TELEPHONE_EVENT = "telephone-event"
# The number nearly every user agent offers telephone-event under; ours once chosen stays for the
# whole session (RFC 3264 §8.3.2).
DEFAULT_TELEPHONE_EVENT_PT = 101
# RFC 4733 events 0-15: the digits 0-9, *, # and A-D, all the RTP layer sends or understands.
DTMF_EVENTS = frozenset(range(16))
PTIMES = (10, 20, 30, 40, 50, 60)
DEFAULT_PTIME = 20


@dataclass(frozen=True)
class Codec:
    """An audio codec of ours: `clock_rate` is the RTP timestamp rate, `sample_rate` the rate of
    the audio it carries, `payload_type` its static RTP number (RFC 3551)."""

    name: str
    clock_rate: int
    sample_rate: int
    payload_type: int

    def matches(self, rtpmap: RtpMap) -> bool:
        return (
            rtpmap.encoding.lower() == self.name.lower()
            and rtpmap.clock_rate == self.clock_rate
            and rtpmap.parameters in (None, "1")
        )


PCMU = Codec("PCMU", 8000, 8000, 0)
PCMA = Codec("PCMA", 8000, 8000, 8)
# RFC 3551 §4.5.2: G.722 carries 16 kHz audio, but its RTP clock is 8000 Hz (an error in RFC 1890
# kept for compatibility), so its timestamps advance 160 per 20 ms packet like G.711's.
G722 = Codec("G722", 8000, 16000, 9)
CODECS = (PCMU, PCMA, G722)
# Static payload types may come without an rtpmap (RFC 3551 table 4).
_STATIC = {
    codec.payload_type: RtpMap(codec.payload_type, codec.name, codec.clock_rate) for codec in CODECS
}
_EVENT_LIST = re.compile(r"[0-9]{1,3}(?:-[0-9]{1,3})?(?:,[0-9]{1,3}(?:-[0-9]{1,3})?)*")


class NoCommonCodec(SdpError):
    """No audio stream we can take part in: 488 Not Acceptable Here, with a Warning header."""

    def __init__(self, message: str, warning_code: int) -> None:
        super().__init__(message, status=488, warning_code=warning_code)


@dataclass(frozen=True)
class LocalMedia:
    """Our side of a call's audio: where we receive RTP, the codecs we take in our order of
    preference (it decides only in our own offers), and whether we hold the call."""

    address: str
    port: int
    # G.722 first: the voice pipeline runs at 16 kHz, and wideband audio recognizes better.
    codecs: tuple[Codec, ...] = (G722, PCMU, PCMA)
    telephone_event: bool = True
    on_hold: bool = False
    ptime: int = DEFAULT_PTIME

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.address)
        if not 0 < self.port < 65536:
            raise ValueError(f"RTP port {self.port} is out of range")
        if not self.codecs or len(set(self.codecs)) != len(self.codecs):
            raise ValueError("codecs must be a non-empty list without repeats")
        if not set(self.codecs) <= set(CODECS):
            raise ValueError("codecs must be among PCMU, PCMA and G722")
        if self.ptime not in PTIMES:
            raise ValueError(f"ptime {self.ptime} is not one of {PTIMES}")

    @property
    def connection(self) -> Connection:
        return Connection(self.address, f"IP{ipaddress.ip_address(self.address).version}")


@dataclass(frozen=True)
class MediaChange:
    """What a new negotiation changed for the RTP layer (from `NegotiatedMedia.changed`)."""

    remote: bool
    codec: bool
    telephone_event: bool
    ptime: bool
    direction: bool
    hold_started: bool
    hold_ended: bool

    def __bool__(self) -> bool:
        return self.remote or self.codec or self.telephone_event or self.ptime or self.direction


@dataclass(frozen=True)
class NegotiatedMedia:
    """The outcome of offer/answer, for the RTP layer.

    `remote_rtp` and `remote_rtcp` are where to send, None when the stream is inactive or the peer
    gave 0.0.0.0. `payload_type` and `telephone_event_pt` are the peer's numbers; an answer of ours
    always repeats the offer's numbers, so they hold both ways. `ptime` is the packet time we send
    at, in ms. `direction` is ours: SENDONLY means we send and do not receive.
    """

    codec: Codec
    payload_type: int
    telephone_event_pt: int | None
    ptime: int
    direction: Direction
    remote_rtp: tuple[str, int] | None
    remote_rtcp: tuple[str, int] | None

    @property
    def send(self) -> bool:
        return self.direction.sends

    @property
    def receive(self) -> bool:
        return self.direction.receives

    @property
    def on_hold(self) -> bool:
        return self.direction is not Direction.SENDRECV

    def changed(self, previous: NegotiatedMedia) -> MediaChange:
        return MediaChange(
            remote=(self.remote_rtp, self.remote_rtcp)
            != (previous.remote_rtp, previous.remote_rtcp),
            codec=(self.codec, self.payload_type) != (previous.codec, previous.payload_type),
            telephone_event=self.telephone_event_pt != previous.telephone_event_pt,
            ptime=self.ptime != previous.ptime,
            direction=self.direction is not previous.direction,
            hold_started=self.on_hold and not previous.on_hold,
            hold_ended=previous.on_hold and not self.on_hold,
        )


@dataclass(frozen=True)
class Answer:
    """The description to send back, and what it means for the RTP layer."""

    sdp: SessionDescription
    media: NegotiatedMedia


def answer(
    offer: SessionDescription, local: LocalMedia, previous: SessionDescription | None = None
) -> Answer:
    """Answer an offer (INVITE, re-INVITE, UPDATE). `previous` is the last description we sent in
    this dialog, offer or answer: ours then keeps its o= session id and raises the version only
    when something changed (RFC 3264 §8).

    Raises NoCommonCodec when no audio stream can be used, SdpError for other unusable offers
    (among them one whose only audio stream with a live port has attributes that do not parse).
    """
    if previous is not None and len(offer.media) < len(previous.media):
        raise SdpError("an offer in a session must keep all its m= lines (RFC 3264 §8)", status=488)
    accepted: NegotiatedMedia | None = None
    unreadable: SdpError | None = None
    media: list[MediaDescription] = []
    for stream in offer.media:
        found = None
        if accepted is None:
            try:
                found = _acceptable(offer, stream, local)
            except SdpError as exc:
                unreadable = unreadable or exc
        if found is None:
            media.append(_rejected(stream))
            continue
        accepted, events = found
        media.append(
            _audio_stream(
                local.port,
                stream.proto,
                [(accepted.payload_type, accepted.codec)],
                accepted.telephone_event_pt,
                events,
                accepted.ptime,
                accepted.direction,
            )
        )
    if accepted is None:
        raise unreadable or _unacceptable(offer, local)
    description = SessionDescription(
        origin=_origin(local, previous),
        name=SESSION_NAME,
        connection=local.connection,
        timing=offer.timing,
        media=tuple(media),
    )
    return Answer(_versioned(description, previous), accepted)


def offer(local: LocalMedia, previous: SessionDescription | None = None) -> SessionDescription:
    """Our offer: in the 200 OK to an INVITE without SDP, or in a re-INVITE of ours (hold,
    resume, session refresh). With `previous`, the last description we sent in this dialog, the
    offer keeps every m= line in place (§8), the telephone-event number, the o= session id, and
    the version when nothing changed."""
    telephone_event = _telephone_event_pt(local, previous) if local.telephone_event else None
    audio = _audio_stream(
        local.port,
        AUDIO_PROTO,
        [(codec.payload_type, codec) for codec in local.codecs],
        telephone_event,
        DTMF_EVENTS,
        local.ptime,
        Direction.SENDONLY if local.on_hold else Direction.SENDRECV,
    )
    media: tuple[MediaDescription, ...] = (audio,)
    if previous is not None:
        slot = _audio_slot(previous)
        media = tuple(
            audio if index == slot else _rejected(stream)
            for index, stream in enumerate(previous.media)
        )
        if slot is None:
            media += (audio,)
    description = SessionDescription(
        origin=_origin(local, previous),
        name=SESSION_NAME,
        connection=local.connection,
        timing=previous.timing if previous else (Timing(),),
        media=media,
    )
    return _versioned(description, previous)


def accept_answer(our_offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Check the answer to an offer of ours (in a 200 OK, or the ACK after a late offer) and say
    what was agreed. Raises SdpError (NoCommonCodec when it refused our audio); the dialog layer
    then ends the call, since a 2xx cannot be refused."""
    if len(answer.media) != len(our_offer.media):
        raise SdpError(
            f"the answer has {len(answer.media)} m= lines for the {len(our_offer.media)} "
            "of the offer (RFC 3264 §6)"
        )
    for mine, theirs in zip(our_offer.media, answer.media, strict=True):
        if mine.media.lower() != theirs.media.lower():
            raise SdpError(f"the answer has {theirs.media} where the offer has {mine.media}")
    slot = _audio_slot(our_offer)
    if slot is None:
        raise ValueError("our offer has no audio stream")
    offered, stream = our_offer.media[slot], answer.media[slot]
    if stream.port == 0:
        raise NoCommonCodec("the answer rejected the audio stream", 304)
    if stream.proto.upper() != offered.proto.upper():
        raise SdpError(f"the answer changed the audio transport to {stream.proto}")
    stream.check()
    formats = _formats(offered)
    ours = offered.direction() or our_offer.direction() or Direction.SENDRECV
    found = _negotiate(
        answer,
        stream,
        tuple(codec for rtpmap in formats for codec in CODECS if codec.matches(rtpmap)),
        telephone_event=any(rtpmap.encoding.lower() == TELEPHONE_EVENT for rtpmap in formats),
        send=ours.sends,
        receive=ours.receives,
        default_ptime=_ptime(offered, DEFAULT_PTIME),
    )
    if found is None:
        raise NoCommonCodec("the answer has none of the codecs we offered", 305)
    return found[0]


def _acceptable(
    offer: SessionDescription, stream: MediaDescription, local: LocalMedia
) -> tuple[NegotiatedMedia, frozenset[int]] | None:
    if stream.media.lower() != "audio" or stream.port == 0:
        return None
    if stream.proto.upper() != AUDIO_PROTO:
        return None
    stream.check()
    return _negotiate(
        offer,
        stream,
        local.codecs,
        telephone_event=local.telephone_event,
        send=True,
        receive=not local.on_hold,
        default_ptime=DEFAULT_PTIME,
    )


def _negotiate(
    session: SessionDescription,
    stream: MediaDescription,
    codecs: tuple[Codec, ...],
    *,
    telephone_event: bool,
    send: bool,
    receive: bool,
    default_ptime: int,
) -> tuple[NegotiatedMedia, frozenset[int]] | None:
    """The media agreed from the peer's `stream` (its order of formats wins) and the
    telephone-events both sides know, or None without a codec in common."""
    formats = _formats(stream)
    chosen = next(
        ((rtpmap, codec) for rtpmap in formats for codec in codecs if codec.matches(rtpmap)), None
    )
    if chosen is None:
        return None
    rtpmap, codec = chosen
    events: frozenset[int] = frozenset()
    event_pt = None
    event_map = next(
        (
            candidate
            for candidate in formats
            if candidate.encoding.lower() == TELEPHONE_EVENT
            and candidate.clock_rate == codec.clock_rate
        ),
        None,
    )
    if telephone_event and event_map is not None:
        events = _events(stream.fmtps().get(event_map.payload_type)) & DTMF_EVENTS
        event_pt = event_map.payload_type if events else None
    connection = stream.connection or session.connection
    if connection is None:
        raise SdpError("the audio stream has no c= line")
    try:
        address = ipaddress.ip_address(connection.address)
    except ValueError:
        raise SdpError(
            f"c= address {connection.address!r} is not an IP address",
            status=488,
            warning_code=301,
        ) from None
    theirs = stream.direction() or session.direction() or Direction.SENDRECV
    if address.is_unspecified:
        # RFC 2543 hold (RFC 3264 §8.4): c=0.0.0.0 means "do not send me media".
        theirs = Direction.of(send=theirs.sends, receive=False)
    direction = Direction.of(send=send and theirs.receives, receive=receive and theirs.sends)
    remote_rtp = remote_rtcp = None
    if direction is not Direction.INACTIVE and not address.is_unspecified:
        remote_rtp = (connection.address, stream.port)
        rtcp = stream.rtcp()
        if rtcp is not None:
            port, elsewhere = rtcp
            # A host name here would cost a blocking DNS lookup per RTCP packet; the RTP
            # address is the better guess.
            host = connection.address
            if elsewhere is not None and _is_ip(elsewhere.address):
                host = elsewhere.address
            remote_rtcp = (host, port)
        elif stream.port < 65535:
            remote_rtcp = (connection.address, stream.port + 1)
    media = NegotiatedMedia(
        codec=codec,
        payload_type=rtpmap.payload_type,
        telephone_event_pt=event_pt,
        ptime=_ptime(stream, default_ptime),
        direction=direction,
        remote_rtp=remote_rtp,
        remote_rtcp=remote_rtcp,
    )
    return media, events


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _formats(stream: MediaDescription) -> list[RtpMap]:
    """The stream's formats in its order; a dynamic one without an rtpmap cannot be used."""
    rtpmaps = stream.rtpmaps()
    found = (rtpmaps.get(pt) or _STATIC.get(pt) for pt in stream.payload_types())
    return [rtpmap for rtpmap in found if rtpmap is not None]


def _ptime(stream: MediaDescription, default: int) -> int:
    ptime = stream.ptime()
    chosen = int(ptime) if ptime in PTIMES else default
    maxptime = stream.maxptime()
    if maxptime is not None and chosen > maxptime:
        chosen = max((p for p in PTIMES if p <= maxptime), default=PTIMES[0])
    return chosen


def _events(fmtp: str | None) -> frozenset[int]:
    """The events of an RFC 4733 list ("0-11,16"). None given means 0-15 (§2.4.1); so does a list
    we cannot read, since guessing loses no more than refusing DTMF would."""
    if not fmtp or not _EVENT_LIST.fullmatch(fmtp.replace(" ", "")):
        return DTMF_EVENTS
    events: set[int] = set()
    for part in fmtp.replace(" ", "").split(","):
        low, _, high = part.partition("-")
        events.update(range(int(low), int(high or low) + 1))
    return frozenset(events)


def _event_list(events: frozenset[int]) -> str:
    ranges: list[list[int]] = []
    for event in sorted(events):
        if ranges and ranges[-1][1] == event - 1:
            ranges[-1][1] = event
        else:
            ranges.append([event, event])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def _audio_stream(
    port: int,
    proto: str,
    codecs: list[tuple[int, Codec]],
    telephone_event: int | None,
    events: frozenset[int],
    ptime: int,
    direction: Direction,
) -> MediaDescription:
    formats = [str(pt) for pt, _ in codecs]
    attributes = [Attribute("rtpmap", RtpMap(pt, c.name, c.clock_rate).value) for pt, c in codecs]
    if telephone_event is not None:
        formats.append(str(telephone_event))
        attributes += [
            Attribute("rtpmap", RtpMap(telephone_event, TELEPHONE_EVENT, 8000).value),
            Attribute("fmtp", f"{telephone_event} {_event_list(events)}"),
        ]
    attributes += [Attribute("ptime", str(ptime)), Attribute(direction.value)]
    return MediaDescription("audio", port, proto, tuple(formats), attributes=tuple(attributes))


def _rejected(stream: MediaDescription) -> MediaDescription:
    return MediaDescription(stream.media, 0, stream.proto, stream.formats)


def _unacceptable(offer: SessionDescription, local: LocalMedia) -> NoCommonCodec:
    audio = [s for s in offer.media if s.media.lower() == "audio" and s.port != 0]
    if not audio:
        return NoCommonCodec("the offer has no audio stream", 304)
    if not any(stream.proto.upper() == AUDIO_PROTO for stream in audio):
        return NoCommonCodec(f"the audio stream is {audio[0].proto}, not {AUDIO_PROTO}", 302)
    offered = ", ".join(
        _describe(stream, pt)
        for stream in audio
        if stream.proto.upper() == AUDIO_PROTO
        for pt in stream.payload_types()
    )
    ours = ", ".join(codec.name for codec in local.codecs)
    return NoCommonCodec(f"no codec in common: offered {offered or 'none'}; we take {ours}", 305)


def _describe(stream: MediaDescription, pt: int) -> str:
    rtpmap = stream.rtpmaps().get(pt) or _STATIC.get(pt)
    return f"payload type {pt}" if rtpmap is None else f"{rtpmap.encoding}/{rtpmap.clock_rate}"


def _audio_slot(description: SessionDescription) -> int | None:
    return next(
        (
            index
            for index, stream in enumerate(description.media)
            if stream.media.lower() == "audio" and stream.port != 0
        ),
        None,
    )


def _telephone_event_pt(local: LocalMedia, previous: SessionDescription | None) -> int:
    slot = None if previous is None else _audio_slot(previous)
    if previous is not None and slot is not None:
        taken = {codec.payload_type for codec in local.codecs}
        for rtpmap in _formats(previous.media[slot]):
            if rtpmap.encoding.lower() == TELEPHONE_EVENT and rtpmap.payload_type not in taken:
                return rtpmap.payload_type
    return DEFAULT_TELEPHONE_EVENT_PT


def _origin(local: LocalMedia, previous: SessionDescription | None) -> Origin:
    if previous is not None:
        return previous.origin
    return Origin(
        username="-",
        # Below 2**31, so that a peer reading it into a signed 32-bit integer still can.
        session_id=str(secrets.randbelow(2**31 - 1) + 1),
        version=1,
        address=local.address,
        address_type=local.connection.address_type,
    )


def _versioned(
    description: SessionDescription, previous: SessionDescription | None
) -> SessionDescription:
    """RFC 3264 §8: a new description of the session raises o= version by one; the same one
    keeps it."""
    if previous is None or description == previous:
        return description
    origin = replace(description.origin, version=description.origin.version + 1)
    return replace(description, origin=origin)
