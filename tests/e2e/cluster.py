"""`voicebridge serve --nodes N` in a subprocess: real Kamailio in front of real nodes, on
loopback ports of their own, sharing the system Redis under a prefix of the test's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bridge.store import Store
from tests.integration.procs import (
    KEY_PATTERN,
    children,
    children_named,
    command,
    environ_of,
    environment,
)
from tests.ports import free_port

KAMAILIO = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
READY_MARK = "voicebridge cluster:"


class Cluster:
    def __init__(self, directory: Path, redis_url: str | None, nodes: int, **settings: str) -> None:
        """`redis_url` None: the supervisor's embedded Redis under the data directory."""
        self.nodes = nodes
        self.prefix = "t" + secrets.token_hex(6)
        self.sip_port = free_port()
        # Each node listens on the shared HTTP port and on that port + its index.
        self.http_port = free_port(nodes + 1)
        base = free_port(nodes + 1)
        self.env = environment(
            **({"VOICEBRIDGE_REDIS_URL": redis_url} if redis_url else {}),
            VOICEBRIDGE_REDIS_PREFIX=self.prefix,
            VOICEBRIDGE_DATA_DIR=str(directory / "data"),
            VOICEBRIDGE_SIP_HOST="127.0.0.1",
            VOICEBRIDGE_SIP_PORT=str(self.sip_port),
            VOICEBRIDGE_HTTP_HOST="127.0.0.1",
            VOICEBRIDGE_HTTP_PORT=str(self.http_port),
            VOICEBRIDGE_CLUSTER_PORT_BASE=str(base),
            VOICEBRIDGE_PRELOAD_MODELS="false",
            VOICEBRIDGE_NODE_ID="t" + secrets.token_hex(3),
            **settings,
        )
        self.directory = directory
        self.lines: list[str] = []
        self.key = ""
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def node_url(self, index: int) -> str:
        """Node `index`'s own REST port."""
        return f"http://127.0.0.1:{self.http_port + index}"

    def node_id(self, index: int) -> str:
        return f"{self.env['VOICEBRIDGE_NODE_ID']}-{index}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def start(self, timeout: float = 90) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *command(),
            "serve",
            "--nodes",
            str(self.nodes),
            env=self.env,
            cwd=self.directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        ready = asyncio.Event()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, ready)),
            asyncio.create_task(self._read(self.process.stderr, ready)),
        ]
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError("the cluster did not start:\n" + "\n".join(self.lines)) from None
        assert self.key, "no bootstrap key was printed"

    async def _read(self, stream: asyncio.StreamReader, ready: asyncio.Event) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            found = KEY_PATTERN.search(line)
            if found and "bootstrap" in line:
                self.key = found.group(0)
            if line.startswith(READY_MARK):
                ready.set()

    def pid_of(self, name: str) -> int:
        """The pid of `node-<i>`, `kamailio` or `redis`, as the supervisor runs them now."""
        assert self.process is not None
        if name == "redis":
            found = children_named(self.process.pid, "redis-server")
            if found:
                return found[0]
        for pid in children(self.process.pid):
            env = environ_of(pid)
            if name == "kamailio" and "VOICEBRIDGE_BALANCER_NODES" in env:
                return pid
            index = name.removeprefix("node-")
            if env.get("VOICEBRIDGE_NODE_ID") == self.node_id(int(index) if index.isdigit() else 0):
                return pid
        raise AssertionError(f"no {name} under the supervisor")

    def kill_child(self, name: str, sig: int = signal.SIGKILL) -> int:
        pid = self.pid_of(name)
        os.kill(pid, sig)
        return pid

    async def stop(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def kill(self) -> None:
        """Last resort: the supervisor and everything under it."""
        if self.process is None or self.process.returncode is not None:
            return
        for pid in children(self.process.pid):
            for grandchild in children(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(grandchild, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        await self.process.wait()

    async def get(self, http: aiohttp.ClientSession, path: str, base: str | None = None) -> Any:
        async with http.get(f"{base or self.base_url}{path}", headers=self.headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def conversations(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        listed = await self.get(http, "/v1/conversations?limit=100")
        return [
            await self.get(http, f"/v1/conversations/{c['conversation_id']}")
            for c in listed["data"]
        ]

    async def by_node(self, http: aiohttp.ClientSession) -> Counter[str | None]:
        return Counter(c["node"] for c in await self.conversations(http))

    async def ended_events(self, store: Store, conversation_id: str) -> int:
        """How many conversation.ended events the stream holds for the conversation."""
        entries = await store.redis.xrange(store.keys.events)
        return sum(
            1
            for _id, fields in entries
            if fields["type"] == "conversation.ended"
            and json.loads(fields["body"])["data"].get("conversation_id") == conversation_id
        )
