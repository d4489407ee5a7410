"""The process's log: one line per record, as text for people or as JSON lines for shippers.

Structured fields ride on records as `extra={...}` (conversation_id, call_id, status, reason,
duration_s, …); the JSON form carries them as keys, the text form appends them as key=value.
Nothing here decides what is logged: callers never pass secrets, tokens or what was said."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # default=str: a field of any type still makes a line rather than an error.
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in fields_of(record).items())
        # A traceback stays readable, but never splits a record in two without a marker.
        line = line.replace("\n", "\n  | ")
        return f"{line} [{extra}]" if extra and "\n" not in line else line


def configure(level: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Send every record (ours and libraries') at `level` or above to `stream` (stderr), one
    per line. Replaces whatever handlers an imported library installed on the root logger: an
    early `basicConfig` elsewhere made ours a no-op, and the bridge logged nothing at INFO.
    Python's warnings go through the same handler, so JSON output stays one object per line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
