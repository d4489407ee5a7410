"""The `voicebridge keys …` commands as an operator runs them: real subprocesses on a real Redis
(the embedded one under VOICEBRIDGE_DATA_DIR, and the system one under a prefix of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.embedded_redis import EmbeddedRedis
from bridge.redis_client import connect
from bridge.store import Store
from tests.integration.procs import (
    KEY_PATTERN,
    environment,
    kill_redis_under,
    run_cli,
    socket_answers,
)


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    cwd: Path
    data_dir: Path
    open_store: Callable[[], AbstractAsyncContextManager[Store]]


@pytest.fixture(params=["embedded", "system"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, system_redis_url: str
) -> AsyncIterator[Backend]:
    data_dir = tmp_path / "data"
    if request.param == "embedded":

        @contextlib.asynccontextmanager
        async def embedded_store() -> AsyncIterator[Store]:
            # The CLI stopped its Redis on exit; the AOF it left is what this one loads.
            server = EmbeddedRedis(data_dir)
            await server.start()
            client = connect(server.url)
            try:
                yield Store(client, "vb")
            finally:
                await client.aclose()
                await server.stop()

        yield Backend(
            "embedded",
            environment(VOICEBRIDGE_DATA_DIR=str(data_dir)),
            tmp_path,
            data_dir,
            embedded_store,
        )
        kill_redis_under(tmp_path)
        return

    prefix = "t" + secrets.token_hex(6)

    @contextlib.asynccontextmanager
    async def system_store() -> AsyncIterator[Store]:
        client = connect(system_redis_url)
        try:
            yield Store(client, prefix)
        finally:
            await client.aclose()

    yield Backend(
        "system",
        environment(
            VOICEBRIDGE_DATA_DIR=str(data_dir),
            VOICEBRIDGE_REDIS_URL=system_redis_url,
            VOICEBRIDGE_REDIS_PREFIX=prefix,
        ),
        tmp_path,
        data_dir,
        system_store,
    )
    client = connect(system_redis_url)
    keys = [key async for key in client.scan_iter(f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def cli(backend: Backend, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_cli, list(args), backend.env, backend.cwd)
    return done.returncode, done.stdout, done.stderr


async def create_key(backend: Backend, name: str) -> tuple[str, str]:
    """(key_id, key) from `keys create`, checking the key is printed exactly once."""
    code, out, err = await cli(backend, "keys", "create", "--name", name)
    assert code == 0, err
    keys = KEY_PATTERN.findall(out)
    assert len(keys) == 1, out
    key_id = out.split()[1]
    assert key_id.startswith("key_"), out
    return key_id, keys[0]


async def test_keys_create_list_revoke(backend: Backend) -> None:
    key_id, key = await create_key(backend, "ops laptop")
    prefix = key.split("_")[1]

    code, listing, err = await cli(backend, "keys", "list")
    assert code == 0, err
    [line] = [row for row in listing.splitlines() if key_id in row]
    assert f"vbk_{prefix}_" in line
    assert "ops laptop" in line
    assert line.endswith("active")
    assert key not in listing, "the secret is shown only once, at creation"

    async with backend.open_store() as store:
        record = await store.api_keys.verify(key)
        assert record is not None and record.key_id == key_id

    code, out, err = await cli(backend, "keys", "revoke", key_id)
    assert code == 0, err
    assert f"revoked {key_id}" in out

    code, listing, err = await cli(backend, "keys", "list")
    assert code == 0, err
    [line] = [row for row in listing.splitlines() if key_id in row]
    assert "\trevoked " in line

    async with backend.open_store() as store:
        assert await store.api_keys.verify(key) is None


async def test_revoke_by_prefix_leaves_other_keys_alone(backend: Backend) -> None:
    _first_id, first = await create_key(backend, "first")
    _second_id, second = await create_key(backend, "second")
    assert first != second
    code, _out, err = await cli(backend, "keys", "revoke", second.split("_")[1])
    assert code == 0, err
    async with backend.open_store() as store:
        assert await store.api_keys.verify(first) is not None
        assert await store.api_keys.verify(second) is None


async def test_revoking_an_unknown_key_fails(backend: Backend) -> None:
    await create_key(backend, "another")
    code, _out, err = await cli(backend, "keys", "revoke", "key_nosuchkey")
    assert code == 1
    assert "no API key 'key_nosuchkey'" in err


async def test_the_cli_leaves_no_redis_behind(backend: Backend) -> None:
    await create_key(backend, "k")
    socket_path = backend.data_dir / "redis.sock"
    if backend.name == "system":
        assert not socket_path.exists(), "with VOICEBRIDGE_REDIS_URL nothing is embedded"
    else:
        assert (backend.data_dir / "voicebridge.aof").is_file()
        assert not socket_answers(socket_path), "the CLI stops the Redis it started"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("VOICEBRIDGE_HTTP_PORT", "notaport"), ("VOICEBRIDGE_REDIS_URL", "localhost:6379")],
)
def test_a_bad_setting_exits_2_with_one_line(tmp_path: Path, variable: str, value: str) -> None:
    env = environment(VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"), **{variable: value})
    for args in (["keys", "list"], ["serve"]):
        done = run_cli(args, env, tmp_path, timeout=30)
        assert done.returncode == 2
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith("voicebridge: bad setting ")
        assert variable in line
    assert not (tmp_path / "data").exists(), "nothing starts before the settings are valid"


def test_an_unknown_key_in_the_config_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "vb.toml"
    config.write_text("http_prot = 8080\n")
    env = environment(VOICEBRIDGE_CONFIG=str(config), VOICEBRIDGE_DATA_DIR=str(tmp_path / "d"))
    done = run_cli(["keys", "list"], env, tmp_path, timeout=30)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "unknown setting 'http_prot'" in line and str(config) in line


def test_an_unreachable_redis_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = environment(
        VOICEBRIDGE_REDIS_URL="redis://127.0.0.1:1/0", VOICEBRIDGE_DATA_DIR=str(tmp_path)
    )
    done = run_cli(["keys", "list"], env, tmp_path, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [row for row in done.stderr.splitlines() if row.startswith("voicebridge:")]
    assert "VOICEBRIDGE_REDIS_URL" in line


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "revoke", "key_x"]])
def test_reading_keys_where_there_is_no_data_says_where_and_makes_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    done = run_cli(command, environment(), tmp_path, timeout=30)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    data = tmp_path / "data"
    assert f"API keys in the embedded Redis under {data}" in done.stderr
    [line] = [row for row in done.stderr.splitlines() if row.startswith("voicebridge:")]
    assert f"no voicebridge data under {data}" in line
    assert "VOICEBRIDGE_DATA_DIR" in line
    assert not data.exists(), "a command that only reads must not create the data directory"


async def test_every_keys_command_says_which_redis_it_used(backend: Backend) -> None:
    await create_key(backend, "k")
    code, _out, err = await cli(backend, "keys", "list")
    assert code == 0
    if backend.name == "system":
        prefix = backend.env["VOICEBRIDGE_REDIS_PREFIX"]
        assert f"API keys in {backend.env['VOICEBRIDGE_REDIS_URL']}" in err
        assert f"prefix {prefix}" in err
    else:
        assert f"API keys in the embedded Redis under {backend.data_dir}" in err


def test_a_password_in_the_redis_url_is_not_shown(tmp_path: Path) -> None:
    env = environment(VOICEBRIDGE_REDIS_URL="redis://user:hunter2@127.0.0.1:1/0")
    done = run_cli(["keys", "list"], env, tmp_path, timeout=60)
    assert done.returncode == 1
    assert "hunter2" not in done.stderr + done.stdout
    assert "redis://127.0.0.1:1/0" in done.stderr
