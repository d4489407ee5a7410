"""The servers bench/sip_load.py drives: one `voicebridge serve`, or `serve --nodes N --balancer`
(N nodes behind Kamailio), each seen as a `Server` whose figures are summed over its nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis.asyncio

from bench import pipeline
from bench.pipeline import cpu_seconds
from tests.integration.procs import children, environ_of
from tests.ports import free_port

HOST = "127.0.0.1"
# Above tests/ports.py's range: a benchmark may run beside a test suite.
RTP_PORTS = (30_000, 31_999)
PROBE_S = 2
"""Kamailio's OPTIONS probe interval (the default, VOICEBRIDGE_CLUSTER_PROBE_INTERVAL)."""


@dataclass
class Server:
    """What the phases call: one `voicebridge serve`, or `serve --nodes N` behind Kamailio.
    `sip_port` is where calls go (Kamailio's, in a cluster); the figures of several nodes are
    summed (CPU, RSS, counters, histogram buckets) over `pids` and `metrics_urls`."""

    api: str
    key: str
    sip_port: int
    process: asyncio.subprocess.Process
    pids: list[int]
    metrics_urls: list[str]
    balancer: list[int]
    """Kamailio's processes (none without one)."""

    @property
    def pid(self) -> int:
        return self.pids[0]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def balancer_cpu(self) -> float:
        total = 0.0
        for pid in self.balancer:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def rss(self) -> float:
        return sum(rss_mb(pid) for pid in self.pids)

    def check(self) -> None:
        if self.process.returncode is not None:
            raise SystemExit(f"voicebridge serve died ({self.process.returncode}); see its stderr")


@contextlib.asynccontextmanager
async def serve(
    redis_url: str, max_calls: int, startup_timeout: float, profile: Path | None = None
) -> AsyncIterator[Server]:
    """One `voicebridge serve` (bench/pipeline.py starts it), Redis on `redis_url` under a
    prefix of its own, deleted afterwards."""
    sip_port = free_port()
    prefix = f"bench{secrets.token_hex(4)}"
    settings = {
        "VOICEBRIDGE_SIP_HOST": HOST, "VOICEBRIDGE_SIP_PORT": str(sip_port),
        "VOICEBRIDGE_RTP_PORT_MIN": str(RTP_PORTS[0]),
        "VOICEBRIDGE_RTP_PORT_MAX": str(RTP_PORTS[1]),
        "VOICEBRIDGE_SIP_MAX_CALLS": str(max_calls),
        "VOICEBRIDGE_SIP_RATE_LIMIT": "0", "VOICEBRIDGE_REDIS_URL": redis_url,
        "VOICEBRIDGE_REDIS_PREFIX": prefix,
    }  # fmt: skip
    try:
        async with pipeline.serve(startup_timeout, settings, profile) as served:
            metrics = [f"{served.url}/metrics"]
            pid = served.process.pid
            yield Server(served.url, served.key, sip_port, served.process, [pid], metrics, [])
    finally:
        await forget(redis_url, prefix)


@contextlib.asynccontextmanager
async def serve_cluster(
    redis_url: str, max_calls: int, startup_timeout: float, nodes: int
) -> AsyncIterator[Server]:
    """`voicebridge serve --nodes N --balancer`: N nodes behind Kamailio, models preloaded in
    each, Redis on `redis_url` under a prefix of its own."""
    sip_port, http_port, base = free_port(), free_port(nodes + 1), free_port(nodes + 1)
    prefix = f"bench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="vb-cluster-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBRIDGE_")}
        env |= {
            "VOICEBRIDGE_HTTP_HOST": HOST, "VOICEBRIDGE_HTTP_PORT": str(http_port),
            "VOICEBRIDGE_SIP_HOST": HOST, "VOICEBRIDGE_SIP_PORT": str(sip_port),
            "VOICEBRIDGE_CLUSTER_PORT_BASE": str(base),
            "VOICEBRIDGE_CLUSTER_PROBE_INTERVAL": str(PROBE_S),
            "VOICEBRIDGE_RTP_PORT_MIN": str(RTP_PORTS[0]),
            "VOICEBRIDGE_RTP_PORT_MAX": str(RTP_PORTS[1]),
            "VOICEBRIDGE_SIP_MAX_CALLS": str(max_calls),
            "VOICEBRIDGE_SIP_RATE_LIMIT": "0", "VOICEBRIDGE_REDIS_URL": redis_url,
            "VOICEBRIDGE_REDIS_PREFIX": prefix, "VOICEBRIDGE_DATA_DIR": str(Path(tmp) / "data"),
            "VOICEBRIDGE_PRELOAD_MODELS": "true", "VOICEBRIDGE_LOG_LEVEL": "WARNING",
            "VOICEBRIDGE_NODE_ID": "bench", "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        voicebridge = Path(sys.executable).with_name("voicebridge")
        command = [str(voicebridge)] if voicebridge.is_file() else [sys.executable, "-m", "api.cli"]
        errors = Path(tmp) / "stderr.txt"
        with errors.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *command, "serve", "--nodes", str(nodes), "--balancer", env=env, cwd=tmp,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        assert process.stdout is not None
        drain: asyncio.Task[bytes] | None = None
        try:
            key = ""
            while line := (await asyncio.wait_for(process.stdout.readline(), 120)).decode():
                if found := pipeline.KEY_LINE.search(line):
                    key = found.group(1)
                if line.startswith("voicebridge cluster:"):
                    break
            else:
                raise SystemExit(f"serve --nodes exited: {errors.read_text()[-2000:]}")
            drain = asyncio.create_task(process.stdout.read())
            own = [f"http://{HOST}:{http_port + i}" for i in range(1, nodes + 1)]
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + startup_timeout
                for url in own:
                    while True:
                        with contextlib.suppress(aiohttp.ClientError):
                            async with http.get(f"{url}/readyz") as ready:
                                if ready.status == 200:
                                    break
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{url}: not ready in {startup_timeout:g} s")
                        await asyncio.sleep(0.5)
            # A node answers Kamailio's probes 503 until its models are loaded; Kamailio takes it
            # back at its first probe after that.
            await asyncio.sleep(PROBE_S + 1)
            spawned = children(process.pid)
            node_pids = sorted(
                (environ_of(pid).get("VOICEBRIDGE_NODE_ID", ""), pid)
                for pid in spawned
                if environ_of(pid).get("VOICEBRIDGE_NODE_ID", "").startswith("bench-")
            )
            kamailio = [p for p in spawned if "VOICEBRIDGE_BALANCER_NODES" in environ_of(p)]
            balancer = [*kamailio, *(c for k in kamailio for c in children(k))]
            yield Server(
                f"http://{HOST}:{http_port}",
                key,
                sip_port,
                process,
                [pid for _name, pid in node_pids],
                [f"{url}/metrics" for url in own],
                balancer,
            )
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            if drain is not None:
                drain.cancel()
            await forget(redis_url, prefix)


async def forget(url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.findall(r"VmRSS:\s+(\d+)", status)[0]) / 1024
