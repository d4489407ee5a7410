from __future__ import annotations

from bridge import ids


def test_ids_carry_prefix_and_validate() -> None:
    value = ids.new_id(ids.CONVERSATION)
    assert value.startswith("conv_")
    assert ids.is_id(value, ids.CONVERSATION)
    assert not ids.is_id(value, ids.AGENT)
    assert not ids.is_id("conv_short", ids.CONVERSATION)
    assert not ids.is_id("conv_" + "I" * 26, ids.CONVERSATION)


def test_ids_sort_by_creation_time() -> None:
    older = ids.new_id(ids.AGENT, now_ms=1_700_000_000_000)
    newer = ids.new_id(ids.AGENT, now_ms=1_700_000_000_001)
    assert older < newer
    assert len({ids.new_id(ids.AGENT, now_ms=5) for _ in range(1000)}) == 1000


def test_ids_made_in_one_millisecond_sort_in_the_order_they_were_made() -> None:
    made = [ids.new_id(ids.AGENT, now_ms=1_700_000_000_002) for _ in range(1000)]
    assert sorted(made) == made
    assert len(set(made)) == 1000


def test_api_key_prefix_parses_back() -> None:
    prefix, key = ids.new_api_key()
    assert key.startswith(f"vbk_{prefix}_")
    assert ids.parse_api_key(key) == prefix
    for bad in ("", "vbk_", "Bearer x", "vbk_ZZZZZZZZZZZZ_abc", "sk_0123456789ab_abc"):
        assert ids.parse_api_key(bad) is None


def test_secrets_are_prefixed_and_unique() -> None:
    assert ids.new_conversation_token().startswith("cvt_")
    assert ids.new_webhook_secret().startswith("whsec_")
    assert ids.new_conversation_token() != ids.new_conversation_token()
    assert ids.digest("a") != ids.digest("b")
