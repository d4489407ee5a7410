"""`voicebridge serve --nodes N`: one box's worth of bridge nodes behind Kamailio.

Starts the embedded Redis (unless VOICEBRIDGE_REDIS_URL names one), node 1 (alone first, so
the bootstrap key is made once), the other nodes, then Kamailio in front of them
(config/kamailio/kamailio.cfg, fed by the plan's environment). Each child's output is passed on
line by line under its name. A node, Kamailio or the embedded Redis that dies is started again
(after a pause that grows while it keeps dying); a node that exits 0 (drained with a SIGTERM
of its own) is left stopped. SIGTERM or SIGINT drains every node (each finishes its calls
within VOICEBRIDGE_SIP_DRAIN_TIMEOUT), then stops Kamailio, then Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from bridge.cluster.plan import ClusterPlan, plan, probe_host
from bridge.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from bridge.settings import Settings

log = logging.getLogger("voicebridge.cluster")

KAMAILIO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "kamailio" / "kamailio.cfg"
LISTENING_MARK = "REST API on"
START_TIMEOUT_S = 120.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0
"""A child that ran this long starts its restart delays from the beginning again."""
STOP_GRACE_S = 15.0


class ClusterError(RuntimeError):
    """The cluster cannot start; the message is one line saying why."""


async def _exit_of(pid: int) -> None:
    """Returns once process `pid` has exited, without reaping it (asyncio's watcher does)."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(handle, readable)
    try:
        await exited
    finally:
        loop.remove_reader(handle)
        os.close(handle)


class Child:
    """One supervised process: started, its output passed on, restarted when it dies."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.listening = asyncio.Event()
        self.stopping = False
        self._pipes: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.listening.clear()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Ctrl-C reaches the whole foreground process group: the children must hear of it
            # from here, in order (Kamailio last, as in-dialog requests pass through it).
            start_new_session=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pipes = [
            asyncio.create_task(self._pass_on(self.process.stdout, sys.stdout)),
            asyncio.create_task(self._pass_on(self.process.stderr, sys.stderr)),
        ]

    async def _pass_on(self, stream: asyncio.StreamReader, out: TextIO) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if LISTENING_MARK in line:
                self.listening.set()
            print(f"{self.name} | {line}", file=out, flush=True)

    async def wait(self) -> int:
        assert self.process is not None
        await _exit_of(self.process.pid)
        # What it left behind goes too: Kamailio's workers outlive a killed main process,
        # holding its sockets and our pipes, and Process.wait() waits for the pipes to close.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        code = await self.process.wait()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        return code

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, timeout: float) -> None:
        self.stopping = True
        if self.process is None or self.process.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), timeout)
        except TimeoutError:
            log.warning("%s did not stop within %.0f s: killed", self.name, timeout)
            self.signal(signal.SIGKILL)
            await self.wait()


async def _keep_running(child: Child) -> None:
    """Start `child` again whenever it dies, until it is being stopped."""
    failures = 0
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        code = await child.wait()
        if child.stopping:
            return
        if code == 0:
            # Drained on purpose (SIGTERM to that one process): it stays stopped.
            log.info("%s stopped (exit 0); not started again", child.name)
            return
        if loop.time() - began >= STABLE_AFTER_S:
            failures = 0
        delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
        failures += 1
        log.warning("%s exited with %s; starting it again in %.0f s", child.name, code, delay)
        await asyncio.sleep(delay)
        if child.stopping:
            return
        await child.start()


async def _keep_redis_running(embedded: EmbeddedRedis) -> None:
    """Start the embedded Redis again when it dies: its AOF has the data, and the nodes
    reconnect and write what they held back meanwhile."""
    failures = 0
    while True:
        await asyncio.sleep(1.0)
        if not embedded.exited:
            continue
        delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
        failures += 1
        log.warning("the embedded Redis exited; starting it again in %.0f s", delay)
        await asyncio.sleep(delay)
        try:
            await embedded.start()
        except EmbeddedRedisError as exc:
            log.error("the embedded Redis did not start again: %s", exc)
        else:
            failures = 0


def kamailio_binary() -> str:
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(
            "kamailio is not installed (apt-get install kamailio, or ./scripts/serve)"
        )
    return found


async def check_kamailio_config(binary: str, env: dict[str, str]) -> None:
    """`kamailio -c`: a configuration Kamailio refuses fails the start, with its reason."""
    checked = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        "-f",
        str(KAMAILIO_CONFIG),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await checked.communicate()
    if checked.returncode != 0:
        errors = [line for line in output.decode(errors="replace").splitlines() if "ERROR" in line]
        raise ClusterError(f"Kamailio refuses its configuration: {' / '.join(errors[-3:])}")


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        parts = data.split(b" ", 2)
        if not self.status.done() and len(parts) > 1 and parts[1].isdigit():
            self.status.set_result(int(parts[1]))


async def balancer_status(host: str, port: int, timeout: float = 1.0) -> int | None:
    """The status Kamailio answers an OPTIONS to itself with (200: some node takes calls,
    503: none), or None when nothing answers."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Answers, remote_addr=(host, port))
    try:
        local = transport.get_extra_info("sockname")
        tag = os.urandom(4).hex()
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{tag};rport\r\n"
            f"From: <sip:supervisor@{local[0]}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\nCall-ID: {tag}@supervisor\r\nCSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        transport.sendto(request.encode())
        try:
            return await asyncio.wait_for(protocol.status, timeout)
        except TimeoutError:
            return None
    finally:
        transport.close()


async def _balancer_up(kamailio: Child, host: str, port: int) -> None:
    """Kamailio answers, or the start fails: a configuration `kamailio -c` passes can still
    fail when Kamailio fixes it up at start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        assert kamailio.process is not None
        if kamailio.process.returncode is not None:
            raise ClusterError(
                f"Kamailio exited with {kamailio.process.returncode} at start; its errors "
                "are above (kamailio | …)"
            )
        if await balancer_status(host, port) is not None:
            return
    raise ClusterError(f"Kamailio did not answer on {host}:{port} within {START_TIMEOUT_S:.0f} s")


def node_children(cluster: ClusterPlan, command: Sequence[str]) -> list[Child]:
    base = dict(os.environ) | {"PYTHONUNBUFFERED": "1"}
    return [
        Child(f"node-{node.index}", [*command, "serve"], base | node.environment)
        for node in cluster.nodes
    ]


async def _started(children: Sequence[Child]) -> None:
    for child in children:
        await child.start()

    async def listening(child: Child) -> None:
        waiter = asyncio.ensure_future(child.listening.wait())
        exited = asyncio.ensure_future(child.wait())
        await asyncio.wait((waiter, exited), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not child.listening.is_set():
            raise ClusterError(f"{child.name} exited with {exited.result()} before it listened")
        exited.cancel()

    try:
        await asyncio.wait_for(asyncio.gather(*(listening(c) for c in children)), START_TIMEOUT_S)
    except TimeoutError:
        raise ClusterError(f"the nodes did not listen within {START_TIMEOUT_S:.0f} s") from None


async def run(settings: Settings, count: int, command: Sequence[str]) -> None:
    """Run the cluster until SIGTERM or SIGINT. `command` starts `voicebridge` (its `serve` is
    appended)."""
    binary = kamailio_binary()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    run_dir = (settings.data_dir / "cluster").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedRedis(settings.data_dir) if settings.redis_url is None else None
    if embedded is not None:
        await embedded.start()
    redis_url = embedded.url if embedded is not None else str(settings.redis_url)
    children: list[Child] = []
    keepers: list[asyncio.Task[None]] = []
    try:
        cluster = plan(settings, count, run_dir, redis_url, cpus=os.cpu_count() or 1)
        cluster.nodes_file.write_text(cluster.dispatcher_list())
        balancer_env = dict(os.environ) | cluster.balancer_environment
        await check_kamailio_config(binary, balancer_env)
        nodes = node_children(cluster, command)
        children.extend(nodes)
        await _started(nodes[:1])
        await _started(nodes[1:])
        kamailio = Child(
            "kamailio", [binary, "-DD", "-E", "-f", str(KAMAILIO_CONFIG)], balancer_env
        )
        children.append(kamailio)
        await kamailio.start()
        await _balancer_up(kamailio, probe_host(settings), settings.sip_port)
        keepers = [asyncio.create_task(_keep_running(child)) for child in children]
        if embedded is not None:
            keepers.append(asyncio.create_task(_keep_redis_running(embedded)))
        print(
            f"voicebridge cluster: {count} nodes behind Kamailio on udp+tcp "
            f"{settings.sip_host}:{settings.sip_port}; REST API on {settings.base_url()}",
            flush=True,
        )
        await stop.wait()
        log.info("cluster stopping: draining %d nodes", count)
    finally:
        for child in children:
            child.stopping = True
        node_stops = [c.stop(settings.sip_drain_timeout + STOP_GRACE_S) for c in children[:count]]
        await asyncio.gather(*node_stops)
        for child in children[count:]:
            await child.stop(STOP_GRACE_S)
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if embedded is not None:
            await embedded.stop()
        log.info("cluster stopped")
