"""One INFO line per call, whatever became of it: refused (the status we answered and why),
answered, or ended (the reason, and how long it was up). Lines carry the call's fields as
`extra`, which the JSON log format turns into keys (see bridge/logs.py).

Addresses are logged as URIs (what an operator matches against a PBX's log); nothing said on the
call is."""

from __future__ import annotations

import logging

from bridge.sip.call_interfaces import EndReason
from bridge.sip.uri import NameAddr

log = logging.getLogger("bridge.calls")


def _parties(caller: NameAddr, callee: NameAddr) -> dict[str, str]:
    return {"caller": str(caller.uri), "callee": str(callee.uri)}


def refused(call_id: str, caller: NameAddr, callee: NameAddr, status: int, why: str) -> None:
    log.info(
        "call %s from %s to %s refused: %d %s",
        call_id,
        caller.uri,
        callee.uri,
        status,
        why,
        extra={"call_id": call_id, "status": status, "why": why, **_parties(caller, callee)},
    )


def answered(
    call_id: str, caller: NameAddr, callee: NameAddr, agent: str | None, codec: str | None
) -> None:
    log.info(
        "call %s from %s to %s answered by agent %s (%s)",
        call_id,
        caller.uri,
        callee.uri,
        agent,
        codec or "no media",
        extra={"call_id": call_id, "agent_id": agent, "codec": codec, **_parties(caller, callee)},
    )


def ended(call_id: str, reason: EndReason, duration_s: float | None) -> None:
    """`duration_s` is how long the call was up, None when it never was (a caller who hung up
    while it rang, an answer never acknowledged)."""
    args: tuple[object, ...]
    if duration_s is None:
        message, args = "call %s ended before it was answered: %s", (call_id, reason.value)
    else:
        message, args = "call %s ended: %s after %.1f s", (call_id, reason.value, duration_s)
    log.info(
        message,
        *args,
        extra={
            "call_id": call_id,
            "reason": reason.value,
            "duration_s": None if duration_s is None else round(duration_s, 3),
        },
    )
