"""Our own session refreshes (RFC 4028, we are the refresher) when the caller's side does not
simply say 200: glare (491), a larger Min-SE (422), UPDATE refused despite Allow (405/501)."""

from __future__ import annotations

from tests.unit.sip.test_call import Handler, Harness, offer, only_requests


async def test_glare_on_our_refresh_is_retried_within_two_seconds() -> None:
    h = Harness(Handler())
    await h.establish("Allow: INVITE, ACK, BYE, UPDATE", "Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (first,) = only_requests(h.take(), "UPDATE")
    h.answer_client(first, 491)
    h.clock.advance(2.01)
    (again,) = only_requests(h.take(), "UPDATE")
    assert again.cseq.number > first.cseq.number
    h.answer_client(again, 200)
    # Refreshed: the call lives on past the first interval, and the next refresh comes on time.
    h.clock.advance(59)
    assert [m for m in h.take() if getattr(m, "method", None) in ("BYE", "UPDATE")] == []
    h.clock.advance(2)
    assert len(only_requests(h.take(), "UPDATE")) == 1


async def test_a_larger_min_se_is_adopted_and_asked_again() -> None:
    h = Harness(Handler())
    await h.establish("Allow: INVITE, ACK, BYE, UPDATE", "Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (first,) = only_requests(h.take(), "UPDATE")
    h.answer_client(first, 422, "Min-SE: 600")
    h.clock.advance(0)
    (again,) = only_requests(h.take(), "UPDATE")
    assert again.headers.get("Session-Expires") == "600;refresher=uas"
    h.answer_client(again, 200)
    h.clock.advance(299)
    assert only_requests(h.take(), "UPDATE") == []
    h.clock.advance(2)
    assert len(only_requests(h.take(), "UPDATE")) == 1


async def test_a_refused_update_falls_back_to_reinvite() -> None:
    h = Harness(Handler())
    await h.establish("Allow: INVITE, ACK, BYE, UPDATE", "Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (update,) = only_requests(h.take(), "UPDATE")
    h.answer_client(update, 501)
    h.clock.advance(0)
    sent = h.take()
    (reinvite,) = only_requests(sent, "INVITE")
    assert only_requests(sent, "UPDATE") == []
    assert reinvite.body and reinvite.headers.get("Session-Expires") == "120;refresher=uas"
    h.answer_client(reinvite, 200, "Contact: <sip:alice@127.0.0.1:5070>", body=offer())
    assert len(only_requests(h.take(), "ACK")) == 1
    h.clock.advance(60)
    assert len(only_requests(h.take(), "INVITE")) == 1


async def test_a_refresh_refused_otherwise_lets_the_session_expire() -> None:
    h = Harness(Handler())
    await h.establish("Allow: INVITE, ACK, BYE, UPDATE", "Session-Expires: 120;refresher=uas")
    h.clock.advance(60)
    (update,) = only_requests(h.take(), "UPDATE")
    h.answer_client(update, 500)
    # §10: the session was not refreshed, so it ends before its interval runs out.
    h.clock.advance(60)
    assert len(only_requests(h.take(), "BYE")) == 1
