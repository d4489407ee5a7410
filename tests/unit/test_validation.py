"""Request validation that needs no network: languages, agent fields, conversation fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.schemas.agents import AgentCreate, AgentUpdate
from api.schemas.conversations import ConversationCreate, ConversationEnd
from bridge import languages
from bridge.models import WITH_SECRETS, OpenAIEngineConfig, masked


def test_language_tags_are_canonicalised() -> None:
    assert languages.canonical("en-us") == "en-US"
    assert languages.canonical("EN-GB") == "en-GB"


def test_unsupported_language_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="supported: en-US"):
        languages.canonical("fr-FR")


def test_malformed_language_tag_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="not a BCP-47"):
        languages.canonical("english please")


def test_agent_defaults() -> None:
    agent = AgentCreate(name="Support")
    assert (agent.language, agent.voice_type, agent.phone_numbers) == ("en-US", "female", [])


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "x", "voice_type": "robot"},
        {"name": "x", "phone_numbers": ["+1 415 555"]},
        {"name": "x", "phone_numbers": ["100", "100"]},
        {"name": "x", "custom_responses": {"Greeting": "hi"}},
        {"name": "x", "custom_responses": {"greeting": ""}},
        {"name": "x", "handoff_target": "http://example.com"},
        {"name": "x", "unknown": 1},
    ],
)
def test_bad_agent_fields_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentCreate.model_validate(fields)


@pytest.mark.parametrize(
    "target", ["sip:support@pbx.example.com", "sips:queue@10.0.0.1:5061", "tel:+14155550100"]
)
def test_transfer_targets_accept_sip_and_tel(target: str) -> None:
    assert AgentCreate(name="x", handoff_target=target).handoff_target == target


def test_update_distinguishes_absent_from_null() -> None:
    assert AgentUpdate.model_validate({}).model_fields_set == set()
    cleared = AgentUpdate.model_validate({"personality": None, "handoff_target": None})
    assert cleared.model_fields_set == {"personality", "handoff_target"}
    for field in ("name", "status", "language", "voice_type", "custom_responses", "phone_numbers"):
        with pytest.raises(ValidationError):
            AgentUpdate.model_validate({field: None})


@pytest.mark.parametrize(
    "settings",
    [{"voice_speed": 0.4}, {"voice_speed": 2.1}, {"voice_pitch": "shrill"}, {"extra": True}],
)
def test_conversation_settings_are_bounded(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ConversationCreate.model_validate(
            {"agent_id": "agt_x", "user_id": "u", "settings": settings}
        )


@pytest.mark.parametrize("rating", [0, 6])
def test_feedback_rating_is_one_to_five(rating: int) -> None:
    with pytest.raises(ValidationError):
        ConversationEnd.model_validate({"feedback": {"rating": rating}})


def test_end_defaults_to_api_end() -> None:
    assert ConversationEnd().reason == "api_end"


OPENAI = {"type": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"}
INTENT = {"name": "hours", "phrases": ["opening hours"], "response": "Nine to five."}


def test_engine_and_intent_defaults() -> None:
    agent = AgentCreate(name="Support")
    assert agent.model_dump()["dialog_engine"] == {"type": "builtin"}
    assert agent.intents == []
    engine = AgentCreate.model_validate({"name": "x", "dialog_engine": OPENAI}).dialog_engine
    assert isinstance(engine, OpenAIEngineConfig)
    assert (engine.temperature, engine.max_tokens, engine.timeout) == (0.4, 300, 8.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"intents": [INTENT | {"name": "9hours"}]},
        {"intents": [INTENT | {"name": "hours\n"}]},
        {"intents": [INTENT | {"phrases": ["x"] * 51}]},
        {"intents": [INTENT | {"response": "x" * 2001}]},
        {"intents": [INTENT | {"extra": 1}]},
        {"dialog_engine": OPENAI | {"base_url": "https://user:pw@api.example.com/v1"}},
        {"dialog_engine": OPENAI | {"base_url": "https://api.example.com/v1#x"}},
        {"dialog_engine": OPENAI | {"base_url": "https://api.example.com/v1\n"}},
        {"dialog_engine": OPENAI | {"api_key": "sk-ключ"}},
        {"dialog_engine": OPENAI | {"max_tokens": 0}},
        {"dialog_engine": OPENAI | {"temperature": -0.1}},
        {"dialog_engine": OPENAI | {"timeout": 61}},
        {"dialog_engine": {"type": "webhook", "url": "https://a.example.com", "timeout": 0}},
        {"dialog_engine": {"type": "webhook"}},
        {"dialog_engine": {"base_url": "https://api.openai.com/v1"}},
    ],
)
def test_bad_engines_and_intents_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentCreate.model_validate({"name": "x", **fields}, strict=True)


def test_a_whole_number_written_as_a_float_is_a_count() -> None:
    # JSON Schema counts 300.0 as an integer, so the API must too.
    body = '{"name": "x", "dialog_engine": {"type": "openai", "base_url": "http://h", '
    body += '"model": "m", "max_tokens": 300.0, "temperature": 1}}'
    engine = AgentCreate.model_validate_json(body, strict=True).dialog_engine
    assert isinstance(engine, OpenAIEngineConfig)
    assert (engine.max_tokens, engine.temperature) == (300, 1.0)


def test_an_engine_secret_left_out_is_left_out_of_the_dump() -> None:
    # So the store can tell "keep the stored secret" (absent) from "remove it" (null).
    sent = AgentUpdate.model_validate({"dialog_engine": OPENAI})
    assert "api_key" not in sent.model_dump()["dialog_engine"]
    cleared = AgentUpdate.model_validate({"dialog_engine": OPENAI | {"api_key": None}})
    assert cleared.model_dump()["dialog_engine"]["api_key"] is None


def test_records_show_secrets_masked_unless_stored() -> None:
    engine = OpenAIEngineConfig.model_validate(OPENAI | {"api_key": "sk-0123456789abcdefWXYZ"})
    assert engine.model_dump()["api_key"] == "…WXYZ"
    assert engine.model_dump(context=WITH_SECRETS)["api_key"] == "sk-0123456789abcdefWXYZ"
    assert masked("short") == "…"
