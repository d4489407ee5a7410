"""The embedded redis-server: lifecycle, durability through the AOF, sharing one server per data
directory, and clear failures instead of hangs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from bridge.redis_client import connect
from tests.integration.procs import alive, kill_redis_under

# Generous, but far below a hang: every failure here must be reported within it.
QUICK = 15.0


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[list[EmbeddedRedis]]:
    """Servers a test starts; stopped even when the test fails half-way, and so are servers
    it orphaned on purpose."""
    started: list[EmbeddedRedis] = []
    yield started
    for server in started:
        await server.stop()
    kill_redis_under(tmp_path)


async def start(servers: list[EmbeddedRedis], data_dir: Path) -> EmbeddedRedis:
    server = EmbeddedRedis(data_dir)
    servers.append(server)
    await asyncio.wait_for(server.start(), QUICK)
    return server


async def server_pid(server: EmbeddedRedis) -> int:
    client = connect(server.url)
    try:
        info = await client.info("server")
        return int(info["process_id"])
    finally:
        await client.aclose()


async def test_start_answers_on_the_socket_and_stop_ends_the_process(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    server = await start(servers, tmp_path / "data")
    assert server.url == f"unix://{tmp_path / 'data' / 'redis.sock'}"
    pid = server.pid
    assert pid is not None and alive(pid)
    assert await server_pid(server) == pid
    client = connect(server.url)
    config = await client.config_get("port")
    await client.aclose()
    assert config["port"] == "0", "the embedded server must not listen on TCP"

    await server.stop()
    assert not alive(pid)
    assert server.pid is None
    assert not (tmp_path / "data" / "redis.sock").exists()


async def test_data_survives_stop_and_start(tmp_path: Path, servers: list[EmbeddedRedis]) -> None:
    data_dir = tmp_path / "data"
    first = await start(servers, data_dir)
    client = connect(first.url)
    await client.set("greeting", "hello")
    await client.rpush("messages", "a", "b")
    await client.aclose()
    await first.stop()
    assert (data_dir / "voicebridge.aof").stat().st_size > 0

    second = await start(servers, data_dir)
    client = connect(second.url)
    try:
        assert await client.get("greeting") == "hello"
        assert await client.lrange("messages", 0, -1) == ["a", "b"]
    finally:
        await client.aclose()


async def test_a_second_instance_reuses_the_running_server(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    owner = await start(servers, tmp_path / "data")
    guest = await start(servers, tmp_path / "data")
    assert guest.pid is None, "the guest started no server of its own"
    assert await server_pid(guest) == owner.pid

    await guest.stop()
    assert await server_pid(owner) == owner.pid, "a guest's stop leaves the owner's server up"
    await owner.stop()


async def test_concurrent_starts_on_one_directory_share_one_server(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    group = [EmbeddedRedis(tmp_path / "data") for _ in range(4)]
    servers.extend(group)
    await asyncio.wait_for(asyncio.gather(*(s.start() for s in group)), QUICK)
    owners = [s.pid for s in group if s.pid is not None]
    assert len(owners) == 1
    assert {await server_pid(s) for s in group} == set(owners)


async def test_a_server_left_by_a_killed_bridge_is_reused(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    first = await start(servers, tmp_path / "data")
    pid = first.pid
    assert pid is not None
    first._process = None  # the bridge died without stopping its server
    second = await start(servers, tmp_path / "data")
    assert await server_pid(second) == pid
    os.kill(pid, signal.SIGTERM)


async def test_a_stale_socket_file_from_a_dead_server_is_replaced(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    data_dir = tmp_path / "data"
    first = await start(servers, data_dir)
    pid = first.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.1)
    assert (data_dir / "redis.sock").exists(), "SIGKILL leaves the socket file behind"
    second = await start(servers, data_dir)
    assert second.pid is not None and second.pid != pid


async def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("oops")
    with pytest.raises(EmbeddedRedisError, match="cannot use data directory"):
        await asyncio.wait_for(EmbeddedRedis(not_a_dir).start(), QUICK)


async def test_a_corrupt_aof_is_a_clear_error_not_a_hang(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "voicebridge.aof").write_text("*3\r\n$3\r\nSET\r\nthis is not redis protocol\n")
    server = EmbeddedRedis(data_dir)
    servers.append(server)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(EmbeddedRedisError) as caught:
        await asyncio.wait_for(server.start(), QUICK)
    assert loop.time() - began < 5
    message = str(caught.value)
    assert "exited" in message
    assert "append only file" in message.lower(), "the reason from redis.log is quoted"
    assert "\n" not in message
    assert server.pid is None


async def test_a_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    with pytest.raises(EmbeddedRedisError, match="too long"):
        await asyncio.wait_for(EmbeddedRedis(deep).start(), QUICK)


async def test_a_wedged_server_on_the_socket_does_not_hang_start(
    tmp_path: Path, servers: list[EmbeddedRedis]
) -> None:
    """A stopped (SIGSTOP) server accepts connections and never answers: start must give up
    with an error instead of waiting forever."""
    data_dir = tmp_path / "data"
    first = await start(servers, data_dir)
    pid = first.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        second = EmbeddedRedis(data_dir)
        servers.append(second)
        with pytest.raises(EmbeddedRedisError, match="does not answer"):
            await asyncio.wait_for(second.start(timeout=3), QUICK)
    finally:
        os.kill(pid, signal.SIGCONT)
