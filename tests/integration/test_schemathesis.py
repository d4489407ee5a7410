"""Schemathesis against the real server over loopback: every phase (examples, coverage, fuzzing,
stateful through the document's links) with every check, loading the live /v1/openapi.json.
It must find nothing."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp.test_utils import TestServer
from schemathesis.engine import events
from schemathesis.engine.recorder import CheckNode, ScenarioRecorder
from schemathesis.engine.run import TESTING_PHASES, PhaseName

from api.app import PARSER_LIMITS, create_app
from api.metrics import ApiMetrics
from api.openapi import OPENAPI_PATH, OPERATIONS
from bridge.redis_client import connect
from bridge.settings import Settings
from bridge.store import Store

# Bounds that keep the run near a minute and a half on two cores.
MAX_EXAMPLES = 100
STATEFUL_MAX_STEPS = 50

pytestmark = pytest.mark.system_redis


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tested: dict[str, set[str]] = field(default_factory=dict)
    skipped_phases: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class IssuedCursors:
    """Every next_cursor the API has handed out during the run."""

    values: set[str] = field(default_factory=set)

    def after_call(self, _ctx: Any, _case: Any, response: Any) -> None:
        try:
            body = response.json()
        except Exception:
            return
        if isinstance(body, dict) and isinstance(body.get("next_cursor"), str):
            self.values.add(body["next_cursor"])

    def keep_failure(self, _ctx: Any, failure: Any, case: Any, response: Any) -> bool:
        # False positive, dropped only in this exact form: the API refuses, with 400
        # invalid_cursor, a cursor it never issued. A cursor is opaque (it encodes a position
        # only the API can produce), so JSON Schema can say it is a string and nothing more, and
        # schemathesis takes any string for valid input. A cursor the API did issue being
        # refused is still reported.
        if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
            return True
        try:
            code = response.json()["error"]["code"]
        except Exception:
            return True
        cursor = (case.query or {}).get("cursor")
        return not (code == "invalid_cursor" and cursor is not None and cursor not in self.values)


# Why a conversation that exists has no recording to download: it was started without
# recording, the session never wrote one, or the retention deleted it.
ABSENT_RECORDING_CODES = {"recording_disabled", "recording_not_found", "recording_expired"}


def keep_resource_failure(failure: Any, case: Any, response: Any) -> bool:
    # False positive, dropped only in this exact form: ST302 takes a 404 from any path below a
    # resource just created as the resource being unavailable, but a conversation's recording is
    # optional. The 404 then names why there is no recording; one saying the conversation
    # itself is missing is still reported.
    if getattr(failure, "code", None) != "ST302" or response.status_code != 404:
        return True
    if case.operation.label != "GET /v1/conversations/{conversation_id}/recording":
        return True
    try:
        code = response.json()["error"]["code"]
    except Exception:
        return True
    return code not in ABSENT_RECORDING_CODES


def _config(base_url: str, key: str) -> schemathesis.Config:
    project: dict[str, Any] = {
        "base-url": base_url,
        "headers": {"Authorization": f"Bearer {key}"},
        "workers": 1,
        "checks": {"enabled": True},
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "database": "none",
            "mode": "all",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STATEFUL_MAX_STEPS},
        },
    }
    return schemathesis.Config.from_dict(project)


def _describe(node: CheckNode, recorder: ScenarioRecorder) -> str:
    info = node.failure_info
    assert info is not None
    failure = info.failure
    text = f"[{failure.code}] {failure.operation}: {failure.title}\n{failure.message}\n"
    response = recorder.find_response(case_id=failure.case_id) if failure.case_id else None
    if response is not None:
        text += f"-> {response.status_code}: {response.content[:400]!r}\n"
    return text + info.code_sample


def run_schemathesis(base_url: str, key: str) -> Report:
    """Blocking: meant for a worker thread while the server runs on the test's event loop."""
    report = Report()
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(
        f"{base_url}/v1/openapi.json", config=_config(base_url, key)
    )
    cursors = IssuedCursors()

    # Hooks must be plain functions (schemathesis tags them with attributes).
    def after_call(ctx: Any, case: Any, response: Any) -> None:
        cursors.after_call(ctx, case, response)

    def filter_failure(ctx: Any, failure: Any, case: Any, response: Any) -> bool:
        return cursors.keep_failure(ctx, failure, case, response) and keep_resource_failure(
            failure, case, response
        )

    schema.hook(after_call)
    schema.hook(filter_failure)
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            report.tested.setdefault(event.phase.value, set()).add(event.recorder.label)
            for nodes in event.recorder.checks.values():
                report.failures.extend(
                    _describe(node, event.recorder) for node in nodes if node.failure_info
                )
        elif (
            isinstance(event, events.PhaseFinished)
            and event.phase.name in TESTING_PHASES
            and event.phase.skip_reason is not None
        ):
            report.skipped_phases[event.phase.name.value] = str(event.phase.skip_reason)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures.extend(str(f) for f in event.failures)
    report.seconds = time.monotonic() - started
    return report


@pytest.fixture
async def live_api(system_redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    prefix = "st" + secrets.token_hex(6)
    redis = connect(system_redis_url)
    store = Store(redis, prefix)
    settings = Settings(
        redis_url=system_redis_url,
        redis_prefix=prefix,
        data_dir=tmp_path,
        public_url="https://voice.example.com",
        # POST /v1/webhooks/{id}/test calls whatever URL was generated; don't wait long on it.
        webhook_timeout=1.0,
        # Models on demand, as a REST-only node runs: /readyz then answers 200 (a node still
        # loading answers 503, which schemathesis would count as a server error).
        preload_models=False,
    )
    _record, key = await store.api_keys.create("schemathesis")
    server = TestServer(create_app(settings, store, ApiMetrics()), host="127.0.0.1")
    # As `voicebridge serve` runs it (api/server.py).
    await server.start_server(**PARSER_LIMITS)
    try:
        yield str(server.make_url("")).rstrip("/"), key
    finally:
        await server.close()
        keys = [k async for k in redis.scan_iter(f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_schemathesis_finds_nothing(live_api: tuple[str, str]) -> None:
    base_url, key = live_api
    report = await asyncio.to_thread(run_schemathesis, base_url, key)
    print(f"schemathesis: {report.seconds:.1f}s; tested per phase:", report.tested)
    assert not report.errors, "\n\n".join(report.errors)
    assert not report.failures, f"{len(report.failures)} failures:\n\n" + "\n\n".join(
        report.failures
    )
    # A run that quietly tests nothing must not pass: every phase ran, over every operation.
    assert not report.skipped_phases, report.skipped_phases
    for phase in (PhaseName.COVERAGE, PhaseName.FUZZING):
        assert report.tested.get(phase.value) == expected_operations(), (phase, report.tested)
    assert report.tested.get(PhaseName.STATEFUL_TESTING.value), report.tested


def expected_operations() -> set[str]:
    # Schemathesis leaves out the operation serving the document it was loaded from.
    return {f"{op.method} {op.path}" for op in OPERATIONS if op.path != OPENAPI_PATH}
