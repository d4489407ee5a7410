"""`voicebridge serve` as a real process: bootstrap key, health, an authenticated request, a
clean SIGTERM, and data that outlives a restart, on the embedded and on the system Redis."""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.redis_client import connect
from tests.integration.procs import (
    KEY_PATTERN,
    ServeProcess,
    alive,
    children_named,
    environment,
    kill_redis_under,
    run_cli,
    socket_answers,
)
from tests.ports import free_port

# SIGTERM to exit: the HTTP server closes, the embedded Redis flushes its AOF and stops.
PROMPT_EXIT = 5.0

Launch = Callable[[dict[str, str]], ServeProcess]

# What a server that loads its models on the first conversation (these tests' setting) says:
# it can take a call now.
ON_DEMAND = {
    "status": "ok",
    "redis": "ok",
    "models": "on_demand",
    "voices": {"male": "not_loaded", "female": "not_loaded"},
    "draining": False,
    "reason": None,
}


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Makes ServeProcess objects that are killed, with their Redis, if a test leaves them."""
    made: list[ServeProcess] = []

    def make(env: dict[str, str]) -> ServeProcess:
        process = ServeProcess(env, tmp_path, free_port())
        made.append(process)
        return process

    yield make
    for process in made:
        await process.kill()
    kill_redis_under(tmp_path)


async def request(
    method: str, url: str, key: str | None = None, json: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, json=json, headers=headers) as response,
    ):
        body = await response.json(content_type=None)
        return response.status, body


async def stop_promptly(server: ServeProcess) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    code = await server.stop(signal.SIGTERM)
    assert code == 0, "".join(server.stderr)
    assert loop.time() - began < PROMPT_EXIT
    assert "Traceback" not in "".join(server.stderr)


async def test_serve_on_the_embedded_redis(launch: Launch, tmp_path: Path) -> None:
    env = environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"))
    first = launch(env)
    await first.start()
    key = first.bootstrap_key
    assert key is not None, "the first start prints a key: " + "".join(first.stdout)

    assert await request("GET", f"{first.base_url}/healthz") == (200, {"status": "ok"})
    assert await request("GET", f"{first.base_url}/readyz") == (200, ON_DEMAND)
    status, body = await request("POST", f"{first.base_url}/v1/agents", json={"name": "x"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, agent = await request(
        "POST", f"{first.base_url}/v1/agents", key, json={"name": "Support"}
    )
    assert status == 201, agent
    assert agent["agent_id"].startswith("agt_")

    [redis_pid] = children_named(first.pid, "redis-server")
    await stop_promptly(first)
    assert not alive(redis_pid), "serve must stop the Redis it started"

    second = launch(env)
    await second.start()
    assert second.bootstrap_key is None, "a key exists: no new bootstrap key"
    status, again = await request("GET", f"{second.base_url}/v1/agents/{agent['agent_id']}", key)
    assert status == 200, "the key and the agent survived the restart"
    assert again["name"] == "Support"
    [redis_pid] = children_named(second.pid, "redis-server")
    await stop_promptly(second)
    assert not alive(redis_pid)


async def test_keys_managed_while_serve_runs_take_effect_at_once(
    launch: Launch, tmp_path: Path
) -> None:
    """The CLI reuses the running server's embedded Redis (and must not stop it on exit)."""
    env = environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"))
    server = launch(env)
    await server.start()
    agents = f"{server.base_url}/v1/agents"

    created = await asyncio.to_thread(run_cli, ["keys", "create", "--name", "ci"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    [key] = KEY_PATTERN.findall(created.stdout)
    key_id = created.stdout.split()[1]
    assert (await request("GET", agents, key))[0] == 200
    assert (await request("GET", f"{server.base_url}/readyz"))[0] == 200

    revoked = await asyncio.to_thread(run_cli, ["keys", "revoke", key_id], env, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    status, body = await request("GET", agents, key)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert server.bootstrap_key is not None
    assert (await request("GET", agents, server.bootstrap_key))[0] == 200
    await stop_promptly(server)


async def test_serve_on_the_system_redis(
    launch: Launch, tmp_path: Path, system_redis_url: str
) -> None:
    prefix = "t" + secrets.token_hex(6)
    env = environment(
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
        VOICEBRIDGE_REDIS_URL=system_redis_url,
        VOICEBRIDGE_REDIS_PREFIX=prefix,
    )
    try:
        first = launch(env)
        await first.start()
        key = first.bootstrap_key
        assert key is not None
        assert children_named(first.pid, "redis-server") == []
        assert await request("GET", f"{first.base_url}/readyz") == (200, ON_DEMAND)
        status, agent = await request(
            "POST", f"{first.base_url}/v1/agents", key, json={"name": "Sales"}
        )
        assert status == 201, agent
        await stop_promptly(first)

        second = launch(env)
        await second.start()
        assert second.bootstrap_key is None
        url = f"{second.base_url}/v1/agents/{agent['agent_id']}"
        assert (await request("GET", url, key))[0] == 200
        await stop_promptly(second)
        assert not (tmp_path / "data" / "redis.sock").exists()
    finally:
        client = connect(system_redis_url)
        keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
        assert keys, "serve wrote under its own prefix"
        await client.delete(*keys)
        await client.aclose()


async def test_sigint_stops_serve_cleanly_too(launch: Launch, tmp_path: Path) -> None:
    server = launch(environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "data")))
    await server.start()
    [redis_pid] = children_named(server.pid, "redis-server")
    assert await server.stop(signal.SIGINT) == 0
    assert not alive(redis_pid)


async def test_a_port_in_use_is_one_line_and_no_redis_left(launch: Launch, tmp_path: Path) -> None:
    first = launch(environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "one")))
    await first.start()
    port = first.base_url.rsplit(":", 1)[1]
    env = environment(
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "two"),
        VOICEBRIDGE_HTTP_HOST="127.0.0.1",
        VOICEBRIDGE_HTTP_PORT=port,
    )
    done = await asyncio.to_thread(run_cli, ["serve"], env, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [row for row in done.stderr.splitlines() if row.startswith("voicebridge:")]
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert (tmp_path / "two" / "voicebridge.aof").is_file(), "its embedded Redis had started"
    assert not socket_answers(tmp_path / "two" / "redis.sock"), "and was stopped on the way out"
    await stop_promptly(first)


@pytest.mark.parametrize("taken", ["http", "sip"])
async def test_a_failed_start_keeps_the_bootstrap_key_for_the_next(
    launch: Launch, tmp_path: Path, taken: str
) -> None:
    data = environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip, socket.socket() as http:
        http.bind(("127.0.0.1", 0))
        http.listen()
        sip.bind(("127.0.0.1", 0))
        blocked = {
            "http": {"VOICEBRIDGE_HTTP_PORT": str(http.getsockname()[1])},
            "sip": {"VOICEBRIDGE_SIP_PORT": str(sip.getsockname()[1])},
        }[taken]
        env = data | {"VOICEBRIDGE_HTTP_HOST": "127.0.0.1", "VOICEBRIDGE_SIP_HOST": "127.0.0.1"}
        failed = await asyncio.to_thread(
            run_cli, ["serve"], env | {"VOICEBRIDGE_PRELOAD_MODELS": "false"} | blocked, tmp_path
        )
    assert failed.returncode == 1, failed.stderr
    assert "cannot listen" in failed.stderr
    assert not KEY_PATTERN.search(failed.stdout + failed.stderr)
    server = launch(data)
    await server.start()
    assert server.bootstrap_key is not None, "the failed start must not have used it up"
    assert "voicebridge keys create" in "".join(server.stdout)
    status, _body = await request("GET", f"{server.base_url}/v1/agents", server.bootstrap_key)
    assert status == 200
    await stop_promptly(server)
