"""Agent requests. Responses are `bridge.models.Agent`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from api.schemas.common import LanguageTag, Strict
from bridge.models import AgentStatus, VoiceType

# One pattern each for the validators below and for the OpenAPI document, so they cannot differ.
# Validators use fullmatch: a trailing "$" in Python's re also matches before a final newline.
TEMPLATE_NAME = r"^[a-z][a-z0-9_]{0,63}$"
PHONE_NUMBER = r"^\+?[0-9A-Za-z*#._-]{1,64}$"
TRANSFER_URI = r"^(?:sips?:[!#-;=?-~]+|tel:\+?[0-9A-Fa-f*#.();=-]+)$"
MAX_RESPONSE_CHARS = 2000

_TEMPLATE_NAME = re.compile(TEMPLATE_NAME.strip("^$"))
_NUMBER = re.compile(PHONE_NUMBER.strip("^$"))
_TRANSFER_URI = re.compile(TRANSFER_URI.strip("^$"))

NameText = Annotated[str, Field(min_length=1, max_length=200)]
PersonalityText = Annotated[str, Field(max_length=4000)]
Responses = Annotated[
    dict[str, str],
    Field(
        max_length=100,
        json_schema_extra={
            "propertyNames": {"pattern": TEMPLATE_NAME},
            "additionalProperties": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_RESPONSE_CHARS,
            },
        },
    ),
]
PhoneNumbers = Annotated[
    list[Annotated[str, Field(json_schema_extra={"pattern": PHONE_NUMBER})]],
    Field(max_length=100, json_schema_extra={"uniqueItems": True}),
]
TransferTarget = Annotated[
    str,
    Field(max_length=500, json_schema_extra={"pattern": TRANSFER_URI}),
]


def check_responses(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _TEMPLATE_NAME.fullmatch(name):
            raise ValueError(f"response name {name!r} must match [a-z][a-z0-9_]*")
        if not 1 <= len(text) <= MAX_RESPONSE_CHARS:
            raise ValueError(f"response {name!r} must be 1 to {MAX_RESPONSE_CHARS} characters")
    return value


def check_numbers(value: list[str]) -> list[str]:
    for number in value:
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"{number!r} is not a phone number or SIP user")
    if len(set(value)) != len(value):
        raise ValueError("phone numbers repeat")
    return value


def check_target(value: str | None) -> str | None:
    if value is not None and not _TRANSFER_URI.fullmatch(value):
        raise ValueError("handoff_target must be a sip:, sips: or tel: URI")
    return value


class AgentCreate(Strict):
    # The published example, verbatim; tests/integration/test_contract.py sends it.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Customer Support Agent",
                    "language": "en-US",
                    "voice_type": "female",
                    "personality": "friendly and helpful",
                    "custom_responses": {
                        "greeting": "Hello! How can I help you today?",
                        "farewell": "Thank you for calling. Have a great day!",
                    },
                }
            ]
        }
    )

    name: NameText
    language: LanguageTag = "en-US"
    voice_type: VoiceType = "female"
    personality: PersonalityText | None = None
    custom_responses: Responses = Field(
        default_factory=dict,
        description="Named reply templates: greeting, farewell, handoff and any of your own.",
    )
    phone_numbers: PhoneNumbers = Field(
        default_factory=list,
        description="Dialed numbers or SIP users that route calls to this agent; unique.",
    )
    handoff_target: TransferTarget | None = Field(
        None, description="sip:/tel: URI that agent.handoff transfers to."
    )

    _responses = field_validator("custom_responses")(check_responses)
    _numbers = field_validator("phone_numbers")(check_numbers)
    _target = field_validator("handoff_target")(check_target)


class AgentUpdate(Strict):
    """Only the fields sent change. `personality` and `handoff_target` may be set to null."""

    name: NameText | SkipJsonSchema[None] = None
    status: AgentStatus | SkipJsonSchema[None] = None
    language: LanguageTag | SkipJsonSchema[None] = None
    voice_type: VoiceType | SkipJsonSchema[None] = None
    personality: PersonalityText | None = None
    custom_responses: Responses | SkipJsonSchema[None] = None
    phone_numbers: PhoneNumbers | SkipJsonSchema[None] = None
    handoff_target: TransferTarget | None = None

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
