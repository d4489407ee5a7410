"""Agent requests. Responses are `bridge.models.Agent`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic.json_schema import SkipJsonSchema

from api.schemas.common import LanguageTag, Strict
from api.schemas.webhooks import WebhookUrl
from bridge.models import (
    MAX_RESPONSE_CHARS,
    NAME_PATTERN,
    AgentStatus,
    BuiltinEngineConfig,
    Intent,
    ListenEngineConfig,
    OpenAIEngineConfig,
    VoiceType,
    WebhookEngineConfig,
)

# One pattern each for the validators below and for the OpenAPI document, so they cannot differ.
# Validators use fullmatch: a trailing "$" in Python's re also matches before a final newline.
PHONE_NUMBER = r"^\+?[0-9A-Za-z*#._-]{1,64}$"
TRANSFER_URI = r"^(?:sips?:[!#-;=?-~]+|tel:\+?[0-9A-Fa-f*#.();=-]+)$"
# http or https, then host and port as webhooks' URL_PATTERN, then a path without query or
# fragment, since /chat/completions is appended to it.
BASE_URL = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
    r"|[1-9][0-9]{0,3}))?"
    r'(?:/[!"$->@-~]*)?$'
)
# An Authorization header value: printable ASCII. The masked form responses show ("…1234")
# is not, so it cannot be saved as a key by sending a response back.
API_KEY = r"^[!-~]{1,500}$"

_NAME = re.compile(NAME_PATTERN.strip("^$"))
_NUMBER = re.compile(PHONE_NUMBER.strip("^$"))
_TRANSFER_URI = re.compile(TRANSFER_URI.strip("^$"))
_BASE_URL = re.compile(BASE_URL.strip("^$"))
_API_KEY = re.compile(API_KEY.strip("^$"))

NameText = Annotated[str, Field(min_length=1, max_length=200)]
PersonalityText = Annotated[str, Field(max_length=4000)]
Responses = Annotated[
    dict[str, str],
    Field(
        max_length=100,
        json_schema_extra={
            "propertyNames": {"pattern": NAME_PATTERN},
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
        if not _NAME.fullmatch(name):
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


def check_base_url(value: str) -> str:
    if not _BASE_URL.fullmatch(value):
        raise ValueError(
            "base_url must be an http:// or https:// URL with a host name or IPv4 address, "
            "without credentials, query or fragment"
        )
    return value


def check_api_key(value: str) -> str:
    if value.startswith("…"):
        raise ValueError(
            "api_key is the masked form a response shows; leave api_key out to keep the stored key"
        )
    if not _API_KEY.fullmatch(value):
        raise ValueError("api_key must be printable ASCII without spaces")
    return value


BaseUrl = Annotated[
    str,
    Field(max_length=2000, json_schema_extra={"pattern": BASE_URL}),
    AfterValidator(check_base_url),
]
ApiKey = Annotated[
    str, Field(json_schema_extra={"pattern": API_KEY}), AfterValidator(check_api_key)
]
SECRET_FIELDS = frozenset({"api_key", "secret"})


class _KeepsStoredSecret(BaseModel):
    """Responses show secrets masked, so a request that leaves one out means "keep the stored
    one": the dump leaves it out too, and the store decides (bridge.store.agents.keep_secret).
    An explicit null is dumped, and removes it."""

    @model_serializer(mode="wrap")
    def _unsent_secret_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {
            name: value
            for name, value in data.items()
            if name not in SECRET_FIELDS or name in self.model_fields_set
        }


class OpenAIEngineInput(_KeepsStoredSecret, OpenAIEngineConfig):
    """A chat-completions model behind an OpenAI-compatible API, streamed."""

    base_url: BaseUrl = Field(
        description="http(s) base URL of an OpenAI-compatible API; replies come from "
        "POST {base_url}/chat/completions, streamed.",
        examples=["https://api.openai.com/v1"],
    )
    api_key: ApiKey | None = Field(
        None,
        description="Sent as Authorization: Bearer <api_key>; responses show it masked. Left "
        "out of a PATCH, the stored key is kept while base_url stays the same.",
    )


class WebhookEngineInput(_KeepsStoredSecret, WebhookEngineConfig):
    """Your own service answers each turn: voicebridge POSTs the turn, you return the reply."""

    url: WebhookUrl = Field(
        description="https:// URL each turn is POSTed to (http:// only to a loopback host, "
        "with webhook_allow_insecure).",
        examples=["https://example.com/voice/turn"],
    )
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="Signs each request with X-Signature, as on event webhooks; responses show "
        "it masked. Left out of a PATCH, the stored secret is kept while url stays the same.",
    )


Intents = Annotated[list[Intent], Field(max_length=100)]
DialogEngineInput = Annotated[
    BuiltinEngineConfig | OpenAIEngineInput | WebhookEngineInput | ListenEngineConfig,
    Field(discriminator="type"),
]
INTENTS_DESCRIPTION = (
    "What the built-in engine answers: a turn containing one of an intent's phrases (or most "
    "of its words) gets its response."
)
PERSONALITY_DESCRIPTION = (
    "How the agent sounds. The builtin engine opens its intent and custom-response answers "
    '(not greeting, farewell, handoff, fallback, clarification or error) with "Sure! " when it '
    'mentions friendly, warm, cheerful or enthusiastic, else with "Certainly. " when it '
    "mentions formal, professional or polite, else changes nothing; an answer that already "
    'opens that way ("Sure", "Of course", "Certainly", "Okay", …) is left as written. The '
    "openai engine puts it in the system prompt; the webhook engine does not use it."
)
RECORD_PHONE_CALLS_DESCRIPTION = (
    "Whether this agent's phone calls are recorded (settings.recording_enabled of their "
    "conversations; GET /v1/conversations/{id}/recording once ended). null: the server's "
    "VOICEBRIDGE_RECORD_PHONE_CALLS (default false). WebSocket conversations choose with "
    "settings.recording_enabled instead."
)
ENGINE_DESCRIPTION = (
    "What writes the agent's replies: builtin (the default), openai (a model behind an "
    "OpenAI-compatible API), webhook (your own service), or listen (none: a line that only "
    "listens, records when recording is on, and transcribes if asked)."
)


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
    personality: PersonalityText | None = Field(None, description=PERSONALITY_DESCRIPTION)
    custom_responses: Responses = Field(
        default_factory=dict,
        description="Named reply templates over initial_context: greeting, farewell, handoff, "
        "fallback, clarification, error (said when a dialog engine fails) and any of your own.",
    )
    phone_numbers: PhoneNumbers = Field(
        default_factory=list,
        description="Dialed numbers or SIP users that route calls to this agent; unique.",
    )
    handoff_target: TransferTarget | None = Field(
        None, description="sip:/tel: URI that agent.handoff transfers to."
    )
    record_phone_calls: bool | None = Field(None, description=RECORD_PHONE_CALLS_DESCRIPTION)
    intents: Intents = Field(default_factory=list, description=INTENTS_DESCRIPTION)
    dialog_engine: DialogEngineInput = Field(
        default_factory=lambda: BuiltinEngineConfig(type="builtin"),
        description=ENGINE_DESCRIPTION + ' Default {"type": "builtin"}.',
    )

    _responses = field_validator("custom_responses")(check_responses)
    _numbers = field_validator("phone_numbers")(check_numbers)
    _target = field_validator("handoff_target")(check_target)


class AgentUpdate(Strict):
    """Only the fields sent change. `personality`, `handoff_target` and `record_phone_calls` may
    be set to null."""

    name: NameText | SkipJsonSchema[None] = None
    status: AgentStatus | SkipJsonSchema[None] = None
    language: LanguageTag | SkipJsonSchema[None] = None
    voice_type: VoiceType | SkipJsonSchema[None] = None
    personality: PersonalityText | None = Field(None, description=PERSONALITY_DESCRIPTION)
    custom_responses: Responses | SkipJsonSchema[None] = None
    phone_numbers: PhoneNumbers | SkipJsonSchema[None] = None
    handoff_target: TransferTarget | None = None
    record_phone_calls: bool | None = Field(None, description=RECORD_PHONE_CALLS_DESCRIPTION)
    intents: Intents | SkipJsonSchema[None] = Field(None, description=INTENTS_DESCRIPTION)
    dialog_engine: DialogEngineInput | SkipJsonSchema[None] = Field(
        None, description=ENGINE_DESCRIPTION + " Replaces the whole engine setting."
    )

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
        "name",
        "status",
        "language",
        "voice_type",
        "custom_responses",
        "phone_numbers",
        "intents",
        "dialog_engine",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value
