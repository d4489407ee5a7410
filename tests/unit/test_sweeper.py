"""The sweeper's decisions, without Redis: which active conversations end, and why."""

from __future__ import annotations

from bridge import clock, lifecycle
from bridge.models import Conversation
from bridge.settings import load_settings
from bridge.sweeper import NODE_LOST, NOT_CONNECTED, Ending, Here, Judge, connect_timeout

NOW_MS = 1_800_000_000_000
TIMEOUT_S = 300.0
TTL_S = 15.0


def _conversation(cid: str, node: str | None, age_s: float = 0.0) -> Conversation:
    created = clock.iso(NOW_MS - int(age_s * 1000))
    return Conversation(
        conversation_id=cid,
        agent_id="agt_x",
        user_id="u",
        created_at=created,
        started_at=created,
        node=node,
    )


def _here(
    *,
    heartbeat: bool = True,
    alive: set[str] | None = None,
    holding: set[str] | None = None,
    finished: dict[str, str] | None = None,
) -> Here:
    return Here(
        node="me",
        heartbeat=heartbeat,
        alive=frozenset(alive or set()),
        holding=frozenset(holding or set()),
        finished=finished or {},
    )


def test_a_conversation_never_connected_ends_after_the_connect_timeout() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    young = _conversation("conv_young", "me", age_s=TIMEOUT_S - 1)
    old = _conversation("conv_old", "me", age_s=TIMEOUT_S + 1)
    unheld = _conversation("conv_unheld", None, age_s=TIMEOUT_S + 1)
    endings = judge.decide([young, old, unheld], _here(), NOW_MS, 0.0)
    assert endings == [Ending("conv_old", NOT_CONNECTED), Ending("conv_unheld", NOT_CONNECTED)]


def test_a_conversation_with_a_session_here_is_left_alone_however_old() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    talking = _conversation("conv_talking", "me", age_s=TIMEOUT_S * 10)
    assert judge.decide([talking], _here(holding={"conv_talking"}), NOW_MS, 0.0) == []


def test_a_session_ended_here_unrecorded_ends_with_its_own_reason_at_once() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    hung_up = _conversation("conv_hung_up", "me", age_s=1)
    here = _here(finished={"conv_hung_up": "caller_hangup"})
    assert judge.decide([hung_up], here, NOW_MS, 0.0) == [Ending("conv_hung_up", "caller_hangup")]


def test_a_holder_is_lost_only_once_missing_on_scans_a_heartbeat_ttl_apart() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    held = [_conversation("conv_a", "dead"), _conversation("conv_b", "dead")]
    assert judge.decide(held, _here(), NOW_MS, 100.0) == []
    assert judge.decide(held, _here(), NOW_MS, 100.0 + TTL_S - 1) == []
    assert judge.decide(held, _here(), NOW_MS, 100.0 + TTL_S) == [
        Ending("conv_a", NODE_LOST),
        Ending("conv_b", NODE_LOST),
    ]


def test_a_holder_seen_alive_in_between_starts_over() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    held = [_conversation("conv_a", "flaky")]
    assert judge.decide(held, _here(), NOW_MS, 0.0) == []
    assert judge.decide(held, _here(alive={"flaky"}), NOW_MS, 5.0) == []
    assert judge.decide(held, _here(), NOW_MS, TTL_S + 1) == []
    assert judge.decide(held, _here(), NOW_MS, 2 * TTL_S + 1) == [Ending("conv_a", NODE_LOST)]


def test_a_live_holder_is_never_lost() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    held = [_conversation("conv_a", "other", age_s=TIMEOUT_S * 10)]
    for at in range(0, 100, 5):
        assert judge.decide(held, _here(alive={"other"}), NOW_MS, float(at)) == []


def test_after_a_redis_restart_nothing_is_judged_until_this_process_beat_again() -> None:
    """Redis lost every heartbeat: without its own, a sweeper cannot tell a dead holder from a
    live one that has not beaten yet, and what it saw before is no evidence either."""
    judge = Judge(TIMEOUT_S, TTL_S)
    held = [_conversation("conv_a", "other")]
    assert judge.decide(held, _here(), NOW_MS, 0.0) == []
    for at in (TTL_S, 2 * TTL_S, 3 * TTL_S):
        assert judge.decide(held, _here(heartbeat=False), NOW_MS, at) == []
    # Beating again, the holder's absence is counted from now, not from before the restart.
    assert judge.decide(held, _here(), NOW_MS, 3 * TTL_S + 1) == []
    assert judge.decide(held, _here(alive={"other"}), NOW_MS, 3 * TTL_S + 5) == []


def test_without_its_own_heartbeat_a_sweeper_still_ends_its_own_never_connected() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    old = _conversation("conv_old", "me", age_s=TIMEOUT_S + 1)
    assert judge.decide([old], _here(heartbeat=False), NOW_MS, 0.0) == [
        Ending("conv_old", NOT_CONNECTED)
    ]


def test_forgotten_heartbeats_count_again_from_the_next_scan() -> None:
    judge = Judge(TIMEOUT_S, TTL_S)
    held = [_conversation("conv_a", "dead")]
    assert judge.decide(held, _here(), NOW_MS, 0.0) == []
    judge.forget_heartbeats()
    assert judge.decide(held, _here(), NOW_MS, TTL_S) == []
    assert judge.decide(held, _here(), NOW_MS, 2 * TTL_S) == [Ending("conv_a", NODE_LOST)]


def test_the_connect_timeout_is_never_longer_than_the_token_ttl() -> None:
    assert connect_timeout(load_settings(conversation_token_ttl=60)) == 60
    assert connect_timeout(load_settings(conversation_connect_timeout=30)) == 30
    assert connect_timeout(load_settings()) == 300


def test_the_sweepers_reasons_end_as_failed() -> None:
    assert lifecycle.status_for_end_reason(NOT_CONNECTED) == "failed"
    assert lifecycle.status_for_end_reason(NODE_LOST) == "failed"


def test_what_an_earlier_process_of_this_name_held_is_lost_at_once() -> None:
    """`serve --nodes N` restarts a crashed node under its own name: the new process holds
    none of what the old one did, and no heartbeat lapse will ever show it."""
    judge = Judge(TIMEOUT_S, TTL_S)
    before = _conversation("conv_before", "me", age_s=60)
    mine = _conversation("conv_mine", "me", age_s=5)
    unheld = _conversation("conv_unheld", None, age_s=60)
    started = NOW_MS - 30_000
    here = Here(
        node="me", heartbeat=True, alive=frozenset(), holding=frozenset(), started_ms=started
    )
    assert judge.decide([before, mine, unheld], here, NOW_MS, 0.0) == [
        Ending("conv_before", NODE_LOST)
    ]
