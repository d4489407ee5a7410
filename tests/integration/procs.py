"""Running the real `voicebridge` command in subprocesses, and looking at the processes it
leaves (or must not leave) behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.ports import free_port

VOICEBRIDGE = Path(sys.executable).with_name("voicebridge")
KEY_PATTERN = re.compile(r"\bvbk_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def command() -> list[str]:
    """The installed console script when there is one (it is what operators run)."""
    if VOICEBRIDGE.is_file():
        return [str(VOICEBRIDGE)]
    return [sys.executable, "-m", "api.cli"]


def environment(**settings: str) -> dict[str, str]:
    """The caller's environment without its VOICEBRIDGE_* variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBRIDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _stat(pid: int | str) -> tuple[str, int] | None:
    """A process's command name and parent pid, from /proc; None once it is gone."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state, ppid, ...
    return stat[stat.index("(") + 1 : stat.rindex(")")], int(
        stat[stat.rindex(")") + 2 :].split()[1]
    )


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(entry.name)) is not None and stat[1] == parent:
            found.append(int(entry.name))
    return found


def children_named(parent: int, name: str) -> list[int]:
    return [pid for pid in children(parent) if (stat := _stat(pid)) and stat[0] == name]


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment, from /proc; empty once it is gone."""
    try:
        raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}


def kill_redis_under(directory: Path) -> list[int]:
    """SIGKILL every redis-server whose unix socket lies under `directory`: what a failed test
    may have left running. Returns their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in title and f"unixsocket:{directory}" in title:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def socket_answers(path: Path) -> bool:
    """Whether anything accepts connections on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ServeProcess:
    """`voicebridge serve` on a loopback port, read until it says it listens."""

    def __init__(self, env: Mapping[str, str], cwd: Path, port: int) -> None:
        # These processes test the REST side; loading the speech models (a second of CPU and
        # 1 GB each) is left to the tests that talk to them, which ask for it.
        self.env = (
            {"VOICEBRIDGE_PRELOAD_MODELS": "false"}
            | dict(env)
            | {
                "VOICEBRIDGE_HTTP_HOST": "127.0.0.1",
                "VOICEBRIDGE_HTTP_PORT": str(port),
                # Every serve process answers SIP too, and tests build one process's environment
                # from another's: each gets a port of its own, never 5060 or a sibling's.
                "VOICEBRIDGE_SIP_HOST": "127.0.0.1",
                "VOICEBRIDGE_SIP_PORT": str(free_port()),
            }
        )
        self.cwd = cwd
        self.base_url = f"http://127.0.0.1:{port}"
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.bootstrap_key: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 30) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *command(),
            "serve",
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        try:
            await asyncio.wait_for(self._read_until_listening(), timeout)
        except BaseException:
            await self.kill()
            raise

    async def _read_until_listening(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                await self.process.wait()
                raise AssertionError(
                    f"serve exited with {self.process.returncode} before listening: "
                    + "".join(self.stderr)
                )
            line = raw.decode()
            self.stdout.append(line)
            found = KEY_PATTERN.search(line)
            if found and "bootstrap" in line:
                self.bootstrap_key = found.group(0)
            if "REST API on" in line:
                return

    async def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._stderr_task is not None:
            await asyncio.wait_for(self._stderr_task, timeout)
        return code

    async def kill(self) -> None:
        """Last resort for a failed test: no process may outlive it."""
        if self.process is None or self.process.returncode is not None:
            return
        redis_children = children_named(self.process.pid, "redis-server")
        self.process.kill()
        await self.process.wait()
        for pid in redis_children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
