"""Agent requests. Responses are `bridge.models.Agent`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from api.schemas.common import Strict
from bridge import languages
from bridge.models import AgentStatus, VoiceType

_TEMPLATE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NUMBER = re.compile(r"^\+?[0-9A-Za-z*#._-]{1,64}$")
_TRANSFER_URI = re.compile(r"^(sips?:[^\s<>\"]+@?[^\s<>\"]*|tel:\+?[0-9A-Fa-f*#.()\-;=]+)$")

NameText = Annotated[str, Field(min_length=1, max_length=200)]
PersonalityText = Annotated[str, Field(max_length=4000)]


def check_language(value: str) -> str:
    return languages.canonical(value)


def check_responses(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _TEMPLATE_NAME.match(name):
            raise ValueError(f"response name {name!r} must match [a-z][a-z0-9_]*")
        if not 1 <= len(text) <= 2000:
            raise ValueError(f"response {name!r} must be 1 to 2000 characters")
    return value


def check_numbers(value: list[str]) -> list[str]:
    for number in value:
        if not _NUMBER.match(number):
            raise ValueError(f"{number!r} is not a phone number or SIP user")
    if len(set(value)) != len(value):
        raise ValueError("phone numbers repeat")
    return value


def check_target(value: str | None) -> str | None:
    if value is not None and not _TRANSFER_URI.match(value):
        raise ValueError("handoff_target must be a sip:, sips: or tel: URI")
    return value


class AgentCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    language: str = Field("en-US", description="BCP-47 tag; see the 422 for supported ones.")
    voice_type: VoiceType = "female"
    personality: PersonalityText | None = None
    custom_responses: dict[str, str] = Field(
        default_factory=dict,
        max_length=100,
        description="Named reply templates: greeting, farewell, handoff and any of your own.",
    )
    phone_numbers: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Dialed numbers or SIP users that route calls to this agent; unique.",
    )
    handoff_target: str | None = Field(
        None, max_length=500, description="sip:/tel: URI that agent.handoff transfers to."
    )

    _language = field_validator("language")(check_language)
    _responses = field_validator("custom_responses")(check_responses)
    _numbers = field_validator("phone_numbers")(check_numbers)
    _target = field_validator("handoff_target")(check_target)


class AgentUpdate(Strict):
    """Only the fields sent change. `personality` and `handoff_target` may be set to null."""

    name: NameText | SkipJsonSchema[None] = None
    status: AgentStatus | SkipJsonSchema[None] = None
    language: str | SkipJsonSchema[None] = None
    voice_type: VoiceType | SkipJsonSchema[None] = None
    personality: PersonalityText | None = None
    custom_responses: Annotated[dict[str, str], Field(max_length=100)] | SkipJsonSchema[None] = None
    phone_numbers: Annotated[list[str], Field(max_length=100)] | SkipJsonSchema[None] = None
    handoff_target: str | None = Field(None, max_length=500)

    @field_validator("language", mode="after")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else check_language(value)

    @field_validator("custom_responses")
    @classmethod
    def _responses(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_responses(value)

    @field_validator("phone_numbers")
    @classmethod
    def _numbers(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_numbers(value)

    _target = field_validator("handoff_target")(check_target)

    @field_validator(
        "name", "status", "language", "voice_type", "custom_responses", "phone_numbers"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value
