"""What a call and the application exchange: how the application routes an INVITE and hears of
the call (`CallHandler`, `CallListener`), the media endpoint it provides, and the outcomes a call
reports (end reasons, transfer results)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from bridge.sip.message import Request
from bridge.sip.offer_answer import NegotiatedMedia
from bridge.sip.uri import NameAddr

if TYPE_CHECKING:
    from bridge.sip.call import Call


class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"
    AGENT_HANGUP = "agent_hangup"
    API_END = "api_end"
    TRANSFERRED = "transferred"
    MEDIA_TIMEOUT = "media_timeout"
    ERROR = "error"


class MediaEndpoint(Protocol):
    """The RTP side of one call. `open` reserves the ports, after which `local_address` and
    `local_port` are what our SDP names; `apply` is called for every negotiation (the first,
    hold, resume, codec change); `close` releases everything."""

    @property
    def local_address(self) -> str: ...

    @property
    def local_port(self) -> int: ...

    async def open(self) -> None: ...

    def apply(self, media: NegotiatedMedia) -> None: ...

    async def close(self) -> None: ...


class CallListener(Protocol):
    """What the application hears of an accepted call."""

    def call_established(self, call: Call) -> None:
        """The ACK came: media flows."""

    def dtmf(self, call: Call, digit: str, duration_ms: int | None) -> None:
        """A key pressed, signalled by SIP INFO (RFC 4733 events come through the media)."""

    def call_ended(self, call: Call, reason: EndReason) -> None: ...


@dataclass(frozen=True, slots=True)
class AcceptCall:
    """Answer the call for `agent`; `listener` hears of it from then on."""

    agent: str
    listener: CallListener


@dataclass(frozen=True, slots=True)
class RejectCall:
    """Answer the INVITE with this final status (404 no agent, 503 busy with `retry_after`)."""

    status: int
    reason: str | None = None
    retry_after: int | None = None
    why: str = ""
    """For the log: why nobody takes the call (the reason phrase is for the caller's side)."""


RouteDecision = AcceptCall | RejectCall


class CallHandler(Protocol):
    """What the bridge implements: which agent takes an INVITE, or why nobody does."""

    async def route(self, invite: Request, caller: NameAddr) -> RouteDecision: ...


class TransferOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    """A NOTIFY reported a 2xx from the target."""
    TARGET_FAILED = "target_failed"
    """A NOTIFY reported a final failure, or ended the subscription without a final status."""
    REJECTED = "rejected"
    """The REFER itself got a final failure response."""
    TIMEOUT = "timeout"
    """The REFER got no response at all (Timer F)."""
    NO_NOTIFY = "no_notify"
    """The REFER was accepted but no final NOTIFY came in time."""
    CALL_ENDED = "call_ended"
    """The call was not (or no longer) established."""


@dataclass(frozen=True, slots=True)
class TransferResult:
    """`status` is the final status the target reported (sipfrag) or the REFER got, when there
    was one."""

    outcome: TransferOutcome
    status: int | None = None
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.outcome is TransferOutcome.SUCCEEDED
