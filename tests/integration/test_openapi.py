"""The OpenAPI document: valid OpenAPI 3.1, served publicly, and in step with the router, the
models and the error handling (schemathesis then checks it against the running server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from api.openapi import EVENT_BODIES, OPERATIONS, SIGNATURE_HEADERS, build_document
from api.schemas.conversations import ConversationListQuery
from bridge.events import EVENT_TYPES, TEST_EVENT, Event

Client = TestClient[Any, Any]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _responses(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's responses with component references followed."""
    resolved = {}
    for status, response in operation["responses"].items():
        if "$ref" in response:
            response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        resolved[status] = response
    return resolved


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


async def test_served_without_a_key_and_equal_to_the_built_one(app_client: Client) -> None:
    response = await app_client.get("/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    # The fixture's settings have a public URL; the document names it as the server.
    assert served == build_document("https://voice.example.com")
    assert served["servers"] == [{"url": "https://voice.example.com"}]


async def test_every_route_is_documented_and_every_documented_route_exists(
    app_client: Client,
) -> None:
    served = await (await app_client.get("/v1/openapi.json")).json()
    routed = {
        (route.method, route.resource.canonical)
        for route in app_client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/v1/ws/")
    }
    documented = {(method, path) for method, path, _ in _operations(served)}
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations no route serves"


def test_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    OPENAPI_31_VALIDATOR.validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)


def test_has_no_pydantic_keywords_that_json_schema_ignores(document: dict[str, Any]) -> None:
    # A constraint pydantic cannot place (e.g. on a validated type) lands as "ge"/"le", which
    # JSON Schema ignores: the document would then claim less than the API enforces.
    leaked = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of", "strict"}

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "type" in node or "$ref" in node or "anyOf" in node:
                yield from (f"{where}.{key}" for key in leaked & node.keys())
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{where}[{i}]")

    assert list(walk(document["components"], "components")) == []


def test_operation_ids_are_unique_and_tagged(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    assert all(op.get("tags") for _, _, op in _operations(document))


def test_every_v1_operation_but_the_document_wants_the_bearer_key(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in _operations(document):
        public = path == "/v1/openapi.json" or not path.startswith("/v1/")
        responses = _responses(document, operation)
        if public:
            assert operation["security"] == [], (method, path)
            assert "401" not in responses
        else:
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"]
            assert "Retry-After" in responses["503"]["headers"]


def test_errors_each_operation_can_answer_are_documented_as_the_envelope(
    document: dict[str, Any],
) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for method, path, operation in _operations(document):
        responses = _responses(document, operation)
        statuses = set(responses)
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if names:
            assert "422" in statuses, (method, path)
        if "cursor" in names:
            assert "400" in statuses, (method, path)
        for status, response in responses.items():
            assert "X-Request-Id" in response["headers"], (method, path, status)
            if status.startswith(("4", "5")) and path != "/readyz":
                assert response["content"]["application/json"]["schema"] == envelope


def test_query_models_become_one_parameter_per_field(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/conversations"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == set(ConversationListQuery.model_fields)
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())
    # Absent is how a query says "none": no parameter may claim a null value.
    assert "null" not in repr(params)
    assert params["status"]["schema"]["enum"] == ["active", "completed", "failed", "transferred"]
    assert params["created_after"]["schema"]["format"] == "date-time"
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }


def test_path_ids_carry_their_prefix(document: dict[str, Any]) -> None:
    agent = document["paths"]["/v1/agents/{agent_id}"]["get"]["parameters"][0]
    assert agent["in"] == "path" and agent["required"] is True
    assert re.fullmatch(agent["schema"]["pattern"], "agt_01jd4y3k8m2q9w7e5r1t6y0z3h")
    assert not re.fullmatch(agent["schema"]["pattern"], "conv_01jd4y3k8m2q9w7e5r1t6y0z3h")


def _validator(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def test_request_examples_are_valid_and_accepted(document: dict[str, Any]) -> None:
    for op in OPERATIONS:
        if op.body is None:
            continue
        examples = document["components"]["schemas"][op.body.__name__].get("examples", [])
        for example in examples:
            _validator(document, op.body.__name__).validate(example)
            op.body.model_validate(example, strict=True)


def test_the_webhooks_section_describes_each_event_and_its_signature(
    document: dict[str, Any],
) -> None:
    assert set(document["webhooks"]) == {*EVENT_TYPES, TEST_EVENT} == set(EVENT_BODIES)
    for event, item in document["webhooks"].items():
        operation = item["post"]
        assert {p["name"] for p in operation["parameters"]} == set(SIGNATURE_HEADERS)
        assert "X-Signature" in SIGNATURE_HEADERS
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        # The documented body has exactly the fields bridge.events writes.
        assert set(body["properties"]) == set(Event.model_fields)
        assert body["properties"]["event"]["const"] == event


def test_webhook_bodies_built_by_bridge_events_validate(document: dict[str, Any]) -> None:
    from bridge import events
    from bridge.models import Message, Metrics

    ref = {
        "conversation_id": "conv_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "agent_id": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
        "user_id": "user_12345",
        "channel": "websocket",
        "initial_context": {"customer_name": "John Doe"},
    }
    message = Message(
        id="msg_01jd4y3k8m2q9w7e5r1t6y0z3h",
        type="user",
        content="hi",
        timestamp="2024-11-05T14:48:00.000Z",
    )
    data: dict[str, Any] = {
        "conversation.started": events.ConversationStartedData(
            **ref, started_at="2024-11-05T14:48:00.000Z"
        ),
        "conversation.ended": events.ConversationEndedData(
            **ref,
            status="completed",
            end_reason="user_ended",
            ended_at="2024-11-05T14:50:00.000Z",
            duration=120.0,
            metrics=Metrics(),
        ),
        "message.received": events.MessageReceivedData(**ref, message=message),
        "agent.handoff": events.HandoffData(**ref, target="sip:human@example.com", status="failed"),
        "error.occurred": events.ErrorOccurredData(
            **ref, error=events.ErrorDetail(code="asr_failed", message="no model")
        ),
        # As POST /v1/webhooks/{id}/test builds it.
        TEST_EVENT: {"webhook_id": "wh_01jd4y3k8m2q9w7e5r1t6y0z3h", "message": "Test event."},
    }
    for event_type, payload in data.items():
        body = events.build(event_type, payload).model_dump(mode="json")
        _validator(document, EVENT_BODIES[event_type].__name__).validate(body)
