"""What every benchmark prints besides its figures: progress as it goes, the machine, how busy
it was, and the command that produced them (so a reader can run it again)."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
from pathlib import Path


def say(text: str) -> None:
    """Progress, on stderr so that the figures on stdout stay clean."""
    print(f"... {text}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    """Other work on the machine skews every figure: report how busy it was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def command_line() -> str:
    """The command as typed from the checkout (the venv's python relative to it)."""
    python = sys.executable
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(python)
        python = relative if not relative.startswith("..") else python
    return shlex.join([python, *sys.argv])
