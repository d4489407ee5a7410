"""The README's first phone call, run as printed: its shell block (curl to give an agent a
number, SIPp to call it, curl to look) against the real `voicebridge serve`. Only the two ports
are moved (the bridge's 5060 and SIPp's own 5070), so that the test never takes the machine's."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port
from tests.sipp import SIPP

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)


def first_call_block() -> str:
    """The fenced shell block after "A first call" in the README."""
    readme = (REPO / "README.md").read_text()
    after = readme[readme.index("A first call") :]
    found = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def serve(tmp_path: Path, system_redis_url: str) -> AsyncIterator[ServeProcess]:
    env = environment(
        VOICEBRIDGE_REDIS_URL=system_redis_url,
        VOICEBRIDGE_REDIS_PREFIX="t" + secrets.token_hex(6),
        VOICEBRIDGE_DATA_DIR=str(tmp_path / "data"),
    )
    process = ServeProcess(env, tmp_path, free_port())
    await process.start()
    yield process
    await process.kill()
    kill_redis_under(tmp_path)


async def test_the_first_phone_call_works_as_printed(serve: ServeProcess) -> None:
    assert serve.bootstrap_key is not None
    key = serve.bootstrap_key
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        made = await http.post(
            f"{serve.base_url}/v1/agents", json={"name": "Support line"}, headers=headers
        )
        agent: dict[str, Any] = await made.json()
        block = first_call_block()
        assert "-p 5070" in block and "127.0.0.1:5060" in block
        script = block.replace("127.0.0.1:5060", f"127.0.0.1:{serve.env['VOICEBRIDGE_SIP_PORT']}")
        script = script.replace("-p 5070", f"-p {free_port()}")
        shell_env = {
            **os.environ,
            "VB": serve.base_url,
            "KEY": key,
            "auth": f"Authorization: Bearer {key}",
            "AGENT": agent["agent_id"],
        }
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        fetched = await (
            await http.get(f"{serve.base_url}/v1/agents/{agent['agent_id']}", headers=headers)
        ).json()
        assert fetched["phone_numbers"] == ["+15550100"]
        for _ in range(100):
            listed = await (
                await http.get(f"{serve.base_url}/v1/conversations", headers=headers)
            ).json()
            if listed["data"] and listed["data"][0]["status"] != "active":
                break
            await asyncio.sleep(0.1)
        (call,) = listed["data"]
        assert call["channel"] == "phone"
        assert (call["status"], call["end_reason"]) == ("completed", "caller_hangup")
