"""The OpenAPI 3.1 document, generated from the pydantic models the handlers use.

`OPERATIONS` below is the one table of what the API offers: one entry per route, naming the
models the handler parses and returns. Errors each operation can answer follow from what it
takes (a body, a query, path ids, credentials); `tests/integration/test_openapi.py` checks the
table against the router, and schemathesis checks it against the running server.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from api.schemas.agents import AgentCreate, AgentUpdate
from api.schemas.common import ErrorEnvelope, Health, ListPage, ListQuery, NodeInfo, Readiness
from api.schemas.conversations import (
    ConversationCreate,
    ConversationCreated,
    ConversationDetail,
    ConversationEnd,
    ConversationListQuery,
    ConversationSummary,
)
from api.schemas.webhooks import (
    DeliveryAttempt,
    EventTypeInfo,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from bridge.events import (
    EVENT_TYPES,
    TEST_EVENT,
    ConversationEndedData,
    ConversationStartedData,
    ErrorOccurredData,
    HandoffData,
    MessageReceivedData,
)
from bridge.models import Agent, Timestamp, id_pattern

REF = "#/components/schemas/{model}"
OPENAPI_PATH = "/v1/openapi.json"

# A response body: a model, several (any of them), a literal JSON Schema, or none (204).
Body = type[BaseModel] | tuple[type[BaseModel], ...] | dict[str, Any] | None


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from a success response: how to call `operation_id` with its output."""

    name: str
    operation_id: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    status: int
    response: Body
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    media_type: str = "application/json"
    links: tuple[Link, ...] = ()
    extra_responses: dict[int, Body] = field(default_factory=dict)
    description: str | None = None

    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def error_statuses(self) -> list[int]:
        """Every error status this operation can answer."""
        statuses = set(self.errors)
        if not self.public:
            statuses |= {401, 503}
        if self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.query is not None:
            statuses.add(422)
            if "cursor" in self.query.model_fields:
                statuses.add(400)
        if self.path_params():
            statuses.add(404)
        return sorted(statuses - set(self.extra_responses))


# Path parameters: the id prefix each names (see bridge.ids).
PATH_IDS = {"agent_id": "agt", "conversation_id": "conv", "webhook_id": "wh"}


def _by_id(prefix: str, *operation_ids: str) -> tuple[Link, ...]:
    names = {"agt": "agent_id", "conv": "conversation_id", "wh": "webhook_id"}
    name = names[prefix]
    return tuple(
        Link(op[0].upper() + op[1:], op, {name: f"$response.body#/{name}"}) for op in operation_ids
    )


def _next_page(operation_id: str) -> tuple[Link, ...]:
    return (Link("NextPage", operation_id, {"cursor": "$response.body#/next_cursor"}),)


OPERATIONS: tuple[Operation, ...] = (
    # agents
    Operation(
        "POST", "/v1/agents", "createAgent", "agents", "Create an agent", 201, Agent,
        body=AgentCreate, errors=(409,),
        links=(
            *_by_id("agt", "getAgent", "updateAgent", "deleteAgent"),
            Link(
                "CreateConversation",
                "createConversation",
                request_body={"agent_id": "$response.body#/agent_id"},
            ),
        ),
    ),
    Operation(
        "GET", "/v1/agents", "listAgents", "agents", "List agents, newest first", 200,
        ListPage[Agent], query=ListQuery, links=_next_page("listAgents"),
    ),
    Operation("GET", "/v1/agents/{agent_id}", "getAgent", "agents", "Get an agent", 200, Agent),
    Operation(
        "PATCH", "/v1/agents/{agent_id}", "updateAgent", "agents", "Change an agent", 200, Agent,
        body=AgentUpdate, errors=(409,),
    ),
    Operation(
        "DELETE", "/v1/agents/{agent_id}", "deleteAgent", "agents", "Delete an agent", 204, None,
    ),
    # conversations
    Operation(
        "POST", "/v1/conversations", "createConversation", "conversations",
        "Start a conversation", 201, ConversationCreated, body=ConversationCreate,
        errors=(404, 409),
        description="404 when agent_id names no agent; 409 when the agent is inactive.",
        links=_by_id("conv", "getConversation", "endConversation"),
    ),
    Operation(
        "GET", "/v1/conversations", "listConversations", "conversations",
        "List conversations, newest first", 200, ListPage[ConversationSummary],
        query=ConversationListQuery, links=_next_page("listConversations"),
    ),
    Operation(
        "GET", "/v1/conversations/{conversation_id}", "getConversation", "conversations",
        "Get a conversation with its transcript", 200, ConversationDetail,
    ),
    Operation(
        "POST", "/v1/conversations/{conversation_id}/end", "endConversation", "conversations",
        "End a conversation", 200, ConversationDetail, body=ConversationEnd, body_required=False,
        description="Ends an active conversation; repeating it returns the ended conversation "
        "unchanged. The body is optional.",
    ),
    Operation(
        "GET", "/v1/conversations/{conversation_id}/recording", "getConversationRecording",
        "conversations", "Download a conversation's recording", 200,
        {"type": "string", "format": "binary"}, media_type="audio/wav", errors=(409,),
        description="A stereo 16-bit PCM WAV, caller on the left channel and agent on the right, "
        'sent as an attachment named after the conversation ("conv_….wav"). Range requests are '
        "answered with 206 Partial Content. 404 `conversation_not_found` for an unknown "
        "conversation, `recording_disabled` when it was started without "
        "settings.recording_enabled, `recording_expired` when the retention period deleted it, "
        "`recording_not_found` when no audio was recorded; 409 `recording_in_progress` while "
        "the conversation is active or its recording is still being written.",
    ),
    # webhooks
    Operation(
        "POST", "/v1/webhooks", "createWebhook", "webhooks", "Subscribe a webhook", 201,
        WebhookWithSecret, body=WebhookCreate,
        description="The secret is shown only in this response (and when rotated).",
        links=_by_id(
            "wh", "getWebhook", "updateWebhook", "deleteWebhook", "listDeliveries", "testWebhook"
        ),
    ),
    Operation(
        "GET", "/v1/webhooks", "listWebhooks", "webhooks", "List webhooks, newest first", 200,
        ListPage[WebhookOut], query=ListQuery, links=_next_page("listWebhooks"),
    ),
    Operation(
        "GET", "/v1/webhooks/{webhook_id}", "getWebhook", "webhooks", "Get a webhook", 200,
        WebhookOut,
    ),
    Operation(
        "PATCH", "/v1/webhooks/{webhook_id}", "updateWebhook", "webhooks", "Change a webhook",
        200, (WebhookWithSecret, WebhookOut), body=WebhookUpdate,
        description="With rotate_secret the response carries the new secret, shown only once.",
    ),
    Operation(
        "DELETE", "/v1/webhooks/{webhook_id}", "deleteWebhook", "webhooks", "Delete a webhook",
        204, None,
    ),
    Operation(
        "GET", "/v1/webhooks/{webhook_id}/deliveries", "listDeliveries", "webhooks",
        "List a webhook's delivery attempts, newest first", 200, ListPage[DeliveryAttempt],
        query=ListQuery,
        links=(
            Link(
                "NextPage",
                "listDeliveries",
                {"webhook_id": "$request.path.webhook_id", "cursor": "$response.body#/next_cursor"},
            ),
        ),
    ),
    Operation(
        "POST", "/v1/webhooks/{webhook_id}/test", "testWebhook", "webhooks",
        "Send a webhook.test event now and report the attempt", 200, DeliveryAttempt,
    ),
    # events and system
    Operation(
        "GET", "/v1/events", "listEventTypes", "events", "List the event types webhooks receive",
        200, ListPage[EventTypeInfo],
    ),
    Operation(
        "GET", "/v1/nodes", "listNodes", "system",
        "List the bridge nodes on this Redis: addresses, live calls, capacity, state", 200,
        ListPage[NodeInfo],
    ),
    Operation(
        "GET", OPENAPI_PATH, "getOpenApi", "system", "This document", 200,
        {"type": "object"}, public=True,
    ),
    Operation("GET", "/healthz", "health", "system", "Liveness", 200, Health, public=True),
    Operation(
        "GET", "/readyz", "ready", "system", "Readiness: the data store answers", 200, Readiness,
        public=True, extra_responses={503: Readiness},
    ),
    Operation(
        "GET", "/metrics", "metrics", "system", "Prometheus metrics", 200, {"type": "string"},
        public=True, media_type="text/plain",
    ),
)  # fmt: skip


ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The body is not JSON (invalid_json) or the cursor is not one this API "
          "returned (invalid_cursor)."),
    401: ("Unauthorized", "No API key, or not a valid one."),
    404: ("NotFound", "No such resource."),
    409: ("Conflict", "The request conflicts with the resource's state (e.g. a phone number "
          "routed to another agent, an inactive agent, a recording still being written)."),
    413: ("PayloadTooLarge", "The body is larger than the configured limit."),
    415: ("UnsupportedMediaType", "The body is not sent as application/json."),
    422: ("ValidationFailed", "A field is missing or invalid; `param` names it and `details` "
          "lists every problem."),
    503: ("Unavailable", "The data store is not reachable; retry after Retry-After seconds."),
}  # fmt: skip

# Headers the error responses carry besides X-Request-Id.
ERROR_HEADERS: dict[int, dict[str, str]] = {
    401: {"WWW-Authenticate": 'Bearer realm="voicebridge"'},
    503: {"Retry-After": "Seconds to wait before retrying."},
}


# -- the webhooks section: event bodies as receivers get them -----------------------------------


class _EventBody(BaseModel):
    id: str = Field(
        json_schema_extra={"pattern": id_pattern("evt")},
        description="Unique per event; the same on every retry, so receivers can deduplicate.",
    )
    created_at: Timestamp


class ConversationStartedEvent(_EventBody):
    event: Literal["conversation.started"]
    data: ConversationStartedData


class ConversationEndedEvent(_EventBody):
    event: Literal["conversation.ended"]
    data: ConversationEndedData


class MessageReceivedEvent(_EventBody):
    event: Literal["message.received"]
    data: MessageReceivedData


class AgentHandoffEvent(_EventBody):
    event: Literal["agent.handoff"]
    data: HandoffData


class ErrorOccurredEvent(_EventBody):
    event: Literal["error.occurred"]
    data: ErrorOccurredData


class WebhookTestData(BaseModel):
    webhook_id: str = Field(json_schema_extra={"pattern": id_pattern("wh")})
    message: str


class WebhookTestEvent(_EventBody):
    event: Literal["webhook.test"]
    data: WebhookTestData


EVENT_BODIES: dict[str, type[_EventBody]] = {
    "conversation.started": ConversationStartedEvent,
    "conversation.ended": ConversationEndedEvent,
    "message.received": MessageReceivedEvent,
    "agent.handoff": AgentHandoffEvent,
    "error.occurred": ErrorOccurredEvent,
    TEST_EVENT: WebhookTestEvent,
}
EVENT_SUMMARIES = {
    **EVENT_TYPES,
    TEST_EVENT: "Sent only by POST /v1/webhooks/{webhook_id}/test, to try a receiver; not retried.",
}

SIGNATURE_HEADERS: dict[str, str] = {
    "X-Signature": "Hex HMAC-SHA256 of the raw request body, keyed with the webhook secret's "
    "UTF-8 bytes (all of it, whsec_ prefix included). Check it, in constant time, before "
    "parsing the body.",
    "X-Webhook-Id": "Id of the event being delivered (evt_…); the same on every retry.",
    "X-Webhook-Timestamp": "Unix seconds when this attempt was signed; reject old ones.",
    "X-Webhook-Event": "The event type, as in the body's `event`.",
    "webhook-id": "Standard Webhooks: the message id (the same as X-Webhook-Id).",
    "webhook-timestamp": "Standard Webhooks: unix seconds when this attempt was signed.",
    "webhook-signature": "Standard Webhooks: `v1,` then base64 HMAC-SHA256 of "
    "`{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of a whsec_ "
    "secret (a secret of your own choosing: its UTF-8 bytes).",
}


# -- building ------------------------------------------------------------------------------------


class _Names(GenerateJsonSchema):
    """Component names: `ListPage[Agent]` is `AgentList`."""

    def normalize_name(self, name: str) -> str:
        match = re.fullmatch(r"ListPage\[(\w+)\]", name)
        return f"{match[1]}List" if match else super().normalize_name(name)


def _version() -> str:
    try:
        return metadata.version("voicebridge")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _models(body: Body) -> tuple[type[BaseModel], ...]:
    if isinstance(body, tuple):
        return body
    if isinstance(body, type):
        return (body,)
    return ()


def _collect_models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorEnvelope, "serialization")]
    for op in OPERATIONS:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        for body in (op.response, *op.extra_responses.values()):
            wanted.extend((model, "serialization") for model in _models(body))
    wanted.extend((model, "serialization") for model in EVENT_BODIES.values())
    return list(dict.fromkeys(wanted))


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text; `null` is not a value it can take."""
    options = schema.get("anyOf")
    if options is None:
        return schema
    rest = [o for o in options if o != {"type": "null"}]
    merged = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(rest) == 1:
        merged.update(rest[0])
    else:
        merged["anyOf"] = rest
    return merged


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = _without_null({k: v for k, v in prop.items() if k != "title"})
        if prop.get("default", 0) is None:
            del prop["default"]
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        param["schema"] = prop
        params.append(param)
    return params


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": id_pattern(PATH_IDS[name])},
        }
        for name in op.path_params()
    ]


def _headers(extra: dict[str, str]) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    for name, description in extra.items():
        headers[name] = {"description": description, "schema": {"type": "string"}}
    return headers


def _content(body: Body, media_type: str, refs: dict[Any, Any]) -> dict[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, dict):
        schema = body
    elif isinstance(body, tuple):
        schema = {"anyOf": [refs[(model, "serialization")] for model in body]}
    else:
        schema = refs[(body, "serialization")]
    return {media_type: {"schema": schema}}


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": link.operation_id}
    if link.parameters:
        out["parameters"] = link.parameters
    if link.request_body is not None:
        out["requestBody"] = link.request_body
    return out


def _operation(op: Operation, refs: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    params = _path_parameters(op)
    if op.query is not None:
        params += _query_parameters(op.query, components)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    success: dict[str, Any] = {"description": op.summary, "headers": _headers({})}
    content = _content(op.response, op.media_type, refs)
    if content is not None:
        success["content"] = content
    if op.links:
        success["links"] = {link.name: _link(link) for link in op.links}
    responses: dict[str, Any] = {str(op.status): success}
    for status, body in op.extra_responses.items():
        extra: dict[str, Any] = {"description": f"HTTP {status}", "headers": _headers({})}
        extra_content = _content(body, "application/json", refs)
        if extra_content is not None:
            extra["content"] = extra_content
        responses[str(status)] = extra
    for status in op.error_statuses():
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    out["responses"] = responses
    out["security"] = [] if op.public else [{"bearerAuth": []}]
    return out


def _error_responses(refs: dict[Any, Any]) -> dict[str, Any]:
    envelope = refs[(ErrorEnvelope, "serialization")]
    return {
        name: {
            "description": description,
            "headers": _headers(ERROR_HEADERS.get(status, {})),
            "content": {"application/json": {"schema": envelope}},
        }
        for status, (name, description) in ERRORS.items()
    }


def _webhooks(refs: dict[Any, Any]) -> dict[str, Any]:
    headers = [
        {"name": name, "in": "header", "required": True, "description": text,
         "schema": {"type": "string"}}
        for name, text in SIGNATURE_HEADERS.items()
    ]  # fmt: skip
    return {
        event: {
            "post": {
                "operationId": "on_" + event.replace(".", "_"),
                "tags": ["events"],
                "summary": EVENT_SUMMARIES[event],
                "parameters": headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                },
                "responses": {
                    "2XX": {"description": "Delivered; no retry."},
                    "410": {"description": "Gone: the webhook is disabled, no more deliveries."},
                    "default": {
                        "description": "Any other status, or no answer within the timeout: "
                        "retried on the configured schedule, then dead-lettered."
                    },
                },
            }
        }
        for event, model in EVENT_BODIES.items()
    }


@lru_cache(maxsize=8)
def _document(server_url: str | None) -> dict[str, Any]:
    refs, defs = models_json_schema(_collect_models(), ref_template=REF, schema_generator=_Names)
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, components)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "voicebridge",
            "version": _version(),
            "description": "Voice agents answering phone calls and WebSocket clients; "
            "conversations, transcripts and signed webhooks. Timestamps are RFC 3339 UTC "
            'with Z; every error is {"error": {code, message, type, ...}}.',
            "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
        },
        "servers": [{"url": server_url or "/"}],
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "webhooks": _webhooks(refs),
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": _error_responses(refs),
            "headers": {
                "RequestId": {
                    "description": "The request's id (yours from X-Request-Id, or req_…); "
                    "quote it when reporting a problem.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (vbk_…) as Authorization: Bearer <key>.",
                }
            },
        },
    }
    return document


def build_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; `server_url` is the public base URL when one is configured."""
    return copy.deepcopy(_document(server_url))
