"""The log formats: one line per record, `extra` fields as JSON keys or as key=value."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.logs import configure


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_fields_of_a_record(restore_root: None) -> None:
    out = io.StringIO()
    configure("INFO", "json", out)
    logging.getLogger("bridge.calls").info(
        "call %s ended", "c1", extra={"call_id": "c1", "duration_s": 1.5, "at": object()}
    )
    logging.getLogger("bridge.calls").debug("not at INFO")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["msg"] == "call c1 ended"
    assert (entry["level"], entry["logger"]) == ("INFO", "bridge.calls")
    assert (entry["call_id"], entry["duration_s"]) == ("c1", 1.5)
    assert entry["at"].startswith("<object")
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == 24


def test_a_traceback_stays_inside_its_json_line(restore_root: None) -> None:
    out = io.StringIO()
    configure("INFO", "json", out)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = out.getvalue().splitlines()
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_lines_append_the_fields_and_mark_continuations(restore_root: None) -> None:
    out = io.StringIO()
    configure("INFO", "text", out)
    logging.getLogger("bridge.conversations").info(
        "conversation %s started", "conv_1", extra={"conversation_id": "conv_1"}
    )
    logging.getLogger("x").warning("first\nsecond")
    first, second, third = out.getvalue().splitlines()
    assert first.endswith(
        "INFO bridge.conversations: conversation conv_1 started [conversation_id=conv_1]"
    )
    assert second.endswith("WARNING x: first") and third == "  | second"


def test_configure_replaces_a_handler_a_library_installed_first(restore_root: None) -> None:
    early = io.StringIO()
    logging.basicConfig(level="WARNING", stream=early, force=True)
    out = io.StringIO()
    configure("INFO", "text", out)
    logging.getLogger("bridge").info("node ready")
    assert "node ready" in out.getvalue() and early.getvalue() == ""
