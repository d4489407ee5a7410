"""Phone calls as conversations: the bridge's side of the SIP user agent.

`PhoneBridge` is the `CallHandler`: it routes an INVITE to the agent whose `phone_numbers` hold
the dialed number (the Request-URI user, else the To user), or to the configured default agent.
Each accepted call gets a `PhoneCall`, which is both the call's listener and the session's
transport: once the ACK comes it creates the conversation (channel `phone`), opens its voice
session here and moves audio between the RTP media and the session on the process's 20 ms
frame clock. Whichever side ends first ends the other: a BYE from the caller ends the session
with `caller_hangup`; a session that ends (farewell, REST end, transfer, error) hangs up.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.agent_directory import AgentDirectory
from bridge.frame_clock import FrameClock
from bridge.models import Agent, CallDetails, ConversationSettings
from bridge.session import HandoffOutcome, Session
from bridge.sessions import Sessions
from bridge.settings import Settings
from bridge.sip.call import Call
from bridge.sip.call_interfaces import AcceptCall, EndReason, RejectCall, RouteDecision
from bridge.sip.message import Request
from bridge.sip.offer_answer import NegotiatedMedia
from bridge.sip.ports import RtpPorts
from bridge.sip.rtp import CallMedia, MediaConfig
from bridge.sip.uri import NameAddr, SipUri, TelUri
from bridge.sip.useragent import UserAgent, UserAgentConfig
from bridge.store import Store
from media.frames import PIPELINE_RATE, Pcm16, samples_per_frame

log = logging.getLogger(__name__)

SILENCE: Pcm16 = np.zeros(samples_per_frame(PIPELINE_RATE), np.int16)

_HANGUP_FOR_SESSION_END = {
    "agent_hangup": EndReason.AGENT_HANGUP,
    "api_end": EndReason.API_END,
    "transferred": EndReason.TRANSFERRED,
    "media_timeout": EndReason.MEDIA_TIMEOUT,
    "caller_hangup": EndReason.CALLER_HANGUP,
    "error": EndReason.ERROR,
}
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")


@dataclass(frozen=True)
class PhoneConfig:
    node: str
    media_host: str
    """Where the calls' RTP sockets bind."""
    advertised_host: str
    """The address our SDP gives for media."""
    default_agent_id: str | None = None
    record_calls: bool = False
    """Whether calls to agents whose `record_phone_calls` is null are recorded."""
    media: MediaConfig = field(default_factory=MediaConfig)


def advertised(host: str, advertised_host: str | None) -> str:
    chosen = advertised_host or host
    return "127.0.0.1" if chosen in ("0.0.0.0", "::", "") else chosen


def dialed_number(invite: Request) -> str | None:
    """The number the caller dialed: the Request-URI's user, else the To URI's."""
    for uri in (invite.uri, invite.to_addr.uri):
        number = _number_of(uri)
        if number:
            return number
    return None


def caller_id(caller: NameAddr) -> str:
    """The caller's number when the URI carries one, else the whole URI."""
    return _number_of(caller.uri) or str(caller.uri)


def _number_of(uri: object) -> str | None:
    if isinstance(uri, SipUri) and uri.user:
        return urllib.parse.unquote(uri.user)
    if isinstance(uri, TelUri):
        return uri.number.translate(_VISUAL_SEPARATORS)
    return None


def _spellings(number: str) -> list[str]:
    """Carriers deliver E.164 numbers with and without the leading +."""
    other = number[1:] if number.startswith("+") else f"+{number}"
    return [number, other] if other != "+" else [number]


class RtpEndpoint:
    """`CallMedia` as the user agent's `MediaEndpoint`, on a port pair from the shared range."""

    def __init__(self, bind_host: str, advertised_host: str, ports: RtpPorts, config: MediaConfig):
        self.media = CallMedia(config)
        self._bind_host = bind_host
        self._advertised_host = advertised_host
        self._ports = ports

    @property
    def local_address(self) -> str:
        return self._advertised_host

    @property
    def local_port(self) -> int:
        return self.media.local_port

    async def open(self) -> None:
        await self.media.open(self._bind_host, self._ports)

    def apply(self, media: NegotiatedMedia) -> None:
        self.media.update(media)

    async def close(self) -> None:
        await self.media.close()


class PhoneBridge:
    def __init__(
        self,
        store: Store,
        sessions: Sessions,
        clock: FrameClock,
        ports: RtpPorts,
        config: PhoneConfig,
        directory: AgentDirectory,
    ) -> None:
        self.store = store
        self.directory = directory
        self.sessions = sessions
        self.clock = clock
        self.ports = ports
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()

    def media(self) -> RtpEndpoint:
        """The user agent's media factory: one endpoint per INVITE."""
        return RtpEndpoint(
            self.config.media_host, self.config.advertised_host, self.ports, self.config.media
        )

    async def route(self, invite: Request, caller: NameAddr) -> RouteDecision:
        number = dialed_number(invite)
        agent = await self._agent_for(number)
        if agent is None:
            return RejectCall(404, why=f"no agent answers {number or 'this address'}")
        if agent.status != "active":
            # The number exists; nobody takes its calls right now.
            return RejectCall(480, why=f"agent {agent.agent_id} is {agent.status}")
        problem = self.sessions.runtime.voice_problem(agent.voice_type)
        if problem is not None:
            # Not answered into silence: a PBX that gets 503 can try another route.
            return RejectCall(503, reason="Agent Voice Unavailable", why=problem)
        return AcceptCall(agent.agent_id, PhoneCall(self, agent))

    async def _agent_for(self, number: str | None) -> Agent | None:
        for spelling in _spellings(number) if number else []:
            agent = await self.directory.for_number(spelling)
            if agent is not None:
                return agent
        if self.config.default_agent_id is None:
            return None
        agent = await self.directory.get(self.config.default_agent_id)
        if agent is None:
            log.warning("default agent %s does not exist", self.config.default_agent_id)
        return agent

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class PhoneCall:
    """One accepted call: its `CallListener`, and its session's `Transport`."""

    def __init__(self, bridge: PhoneBridge, agent: Agent) -> None:
        self._bridge = bridge
        self.agent = agent
        self.call: Call | None = None
        self.session: Session | None = None
        self.conversation_id: str | None = None
        self._media: CallMedia | None = None
        self._call_ended: EndReason | None = None

    # CallListener ----------------------------------------------------------------------

    def call_established(self, call: Call) -> None:
        self.call = call
        endpoint = call.media
        assert isinstance(endpoint, RtpEndpoint)
        self._media = endpoint.media
        self._media.on_dtmf(lambda digit, _duration_ms: self._digit(digit))
        self._media.on_inactive(self._inactive)
        self._bridge.spawn(self._converse(call), f"call {call.call_id}")

    def dtmf(self, call: Call, digit: str, duration_ms: int | None) -> None:
        self._digit(digit)

    def call_ended(self, call: Call, reason: EndReason) -> None:
        self._call_ended = reason
        if self.session is not None:
            self._bridge.spawn(self.session.end(reason.value), f"end {self.session.id}")

    # Transport -------------------------------------------------------------------------

    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        log.debug("call %s: %s %s", self.conversation_id, kind, data)

    async def hand_off(self, target: str | None) -> HandoffOutcome:
        call = self.call
        if target is None:
            return HandoffOutcome(False, None, "the agent has no handoff_target")
        if call is None:
            return HandoffOutcome(False, target, "the call is not established")
        result = await call.transfer(target)
        if not result.succeeded:
            said = [result.outcome.value, str(result.status or ""), result.detail]
            return HandoffOutcome(False, target, "transfer " + " ".join(p for p in said if p))
        call.hangup(EndReason.TRANSFERRED)
        return HandoffOutcome(True, target)

    # The conversation ------------------------------------------------------------------

    async def _converse(self, call: Call) -> None:
        bridge = self._bridge
        try:
            conversation, _token = await bridge.store.conversations.create(
                agent_id=self.agent.agent_id,
                user_id=caller_id(call.caller),
                language=self.agent.language,
                initial_context={},
                settings=ConversationSettings(recording_enabled=self._recorded()),
                channel="phone",
                node=bridge.config.node,
                call=CallDetails(
                    # The From header as sent; user_id is the caller as identified (a trusted
                    # P-Asserted-Identity wins over From).
                    from_=str(call.dialog.remote.uri),
                    to=str(call.callee.uri),
                    call_id=call.call_id,
                    codec=call.negotiated.codec.name if call.negotiated else None,
                ),
            )
            self.conversation_id = conversation.conversation_id
            session = await bridge.sessions.open_created(conversation, self.agent)
        except Exception:
            log.exception("call %s: the conversation could not start", call.call_id)
            await self._abandon()
            call.hangup(EndReason.ERROR)
            return
        if self._call_ended is not None:
            await session.end(self._call_ended.value)
            return
        self.session = session
        session.attach(self)
        stop_sending = bridge.clock.add(self._send_tick, first=True)
        stop_receiving = bridge.clock.add(self._receive_tick)
        try:
            await session.ended.wait()
        finally:
            stop_sending()
            stop_receiving()
            session.detach(self)
        call.hangup(_HANGUP_FOR_SESSION_END.get(session.end_reason or "", EndReason.AGENT_HANGUP))

    def _recorded(self) -> bool:
        chosen = self.agent.record_phone_calls
        return self._bridge.config.record_calls if chosen is None else chosen

    async def _abandon(self) -> None:
        """End a conversation whose session never started, so it does not stay active."""
        if self.conversation_id is None:
            return
        try:
            await self._bridge.store.conversations.end(self.conversation_id, reason="error")
        except Exception:
            log.exception("conversation %s: could not record its end", self.conversation_id)

    def _send_tick(self) -> None:
        media, session = self._media, self.session
        assert media is not None and session is not None
        # Telephony peers and their jitter buffers expect an unbroken stream, so a quiet agent
        # still sends silence.
        outgoing = session.pull_audio()
        media.send_frame(SILENCE if outgoing is None else outgoing)

    def _receive_tick(self) -> None:
        media, session = self._media, self.session
        assert media is not None and session is not None
        incoming = media.pull_frame()
        # A pause or lost stream still moves the caller's timeline, so turn ends are detected.
        session.audio(SILENCE if incoming is None else incoming)

    def _digit(self, digit: str) -> None:
        if self.session is not None:
            self.session.dtmf(digit)

    def _inactive(self) -> None:
        # The peer is likely gone, so its answer to our BYE may never come: end the session
        # now rather than after the BYE's transaction timeout.
        if self.session is not None:
            self._bridge.spawn(self.session.end("media_timeout"), f"end {self.session.id}")
        if self.call is not None:
            self.call.hangup(EndReason.MEDIA_TIMEOUT)


def user_agent(
    settings: Settings,
    store: Store,
    sessions: Sessions,
    clock: FrameClock,
    directory: AgentDirectory | None = None,
) -> UserAgent:
    """The SIP user agent that answers calls for `sessions`, configured by `settings`; it finds
    agents through `directory` (kept in memory while its `run` runs; by default one that reads
    Redis on every call)."""
    bridge = PhoneBridge(
        store,
        sessions,
        clock,
        RtpPorts(settings.rtp_port_min, settings.rtp_port_max),
        PhoneConfig(
            node=settings.node_id,
            media_host=settings.rtp_host or settings.sip_host,
            advertised_host=advertised(
                settings.rtp_host or settings.sip_host,
                settings.rtp_advertised_host or settings.sip_advertised_host,
            ),
            default_agent_id=settings.default_agent_id,
            record_calls=settings.record_phone_calls,
            media=MediaConfig(inactivity_timeout_s=settings.rtp_inactivity_timeout),
        ),
        directory or AgentDirectory(store),
    )
    return UserAgent(
        bridge,
        bridge.media,
        UserAgentConfig(
            host=settings.sip_host,
            port=settings.sip_port,
            advertised_host=settings.sip_advertised_host,
            max_calls=settings.sip_max_calls,
            trusted_networks=settings.sip_trusted_networks,
            allowed_networks=settings.sip_allowed_networks,
            rate_limit=settings.sip_rate_limit,
            rate_burst=settings.sip_rate_burst,
            auth_realm=settings.sip_auth_realm,
            auth_username=settings.sip_auth_username,
            auth_password=(
                None
                if settings.sip_auth_password is None
                else settings.sip_auth_password.get_secret_value()
            ),
            auth_algorithms=settings.sip_auth_algorithms,
        ),
    )
