"""examples/ws_client.py run as a user runs it, a subprocess against the real `voicebridge serve`:
what it prints, its exit status, and what the conversation looks like through the API after."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from media.resample import resample
from media.wer import word_error_rate
from tests.integration.procs import ServeProcess, environment, kill_redis_under
from tests.ports import free_port
from tests.unit.media.recordings import librivox, load_wav

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "examples" / "ws_client.py"
STEP_TIMEOUT = 180.0
"""Seconds for one step of a conversation; generous, as the machine is shared."""


@dataclass
class Bridge:
    serve: ServeProcess
    key: str
    agent: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.serve.base_url}{path}", headers=self.headers) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def conversations_of(self, user: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.get(f"/v1/conversations?user_id={user}"))["data"]
        return found

    def args(self, user: str, *extra: str) -> list[str]:
        return [
            *("--api", self.serve.base_url, "--key", self.key, "--agent", self.agent),
            *("--user", user, *extra),
        ]


async def start_bridge(directory: Path, redis_url: str) -> Bridge:
    env = environment(
        VOICEBRIDGE_REDIS_URL=redis_url,
        VOICEBRIDGE_REDIS_PREFIX="t" + secrets.token_hex(6),
        VOICEBRIDGE_DATA_DIR=str(directory / "data"),
        VOICEBRIDGE_PRELOAD_MODELS="true",
    )
    serve = ServeProcess(env, directory, free_port())
    await serve.start()
    assert serve.bootstrap_key is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{serve.base_url}/v1/agents",
            json={"name": "Support"},
            headers={"Authorization": f"Bearer {serve.bootstrap_key}"},
        ) as made,
    ):
        assert made.status == 201, await made.text()
        agent = (await made.json())["agent_id"]
    return Bridge(serve, serve.bootstrap_key, agent)


@pytest.fixture(scope="module")
async def bridge(
    tmp_path_factory: pytest.TempPathFactory, system_redis_url: str
) -> AsyncIterator[Bridge]:
    directory = tmp_path_factory.mktemp("ws-client-serve")
    started = await start_bridge(directory, system_redis_url)
    yield started
    await started.serve.kill()
    kill_redis_under(directory)


def user() -> str:
    return "ws-client-" + secrets.token_hex(4)


async def start_client(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        *args,
        cwd=ROOT,
        env=environment(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_client(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await start_client(*args)
    out, err = await asyncio.wait_for(process.communicate(stdin), STEP_TIMEOUT * 2)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def read_until(process: asyncio.subprocess.Process, prefix: str, seen: list[str]) -> None:
    """Reads the client's stdout into `seen` up to a line starting with `prefix`."""
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT)
        assert raw, f"the client exited before printing {prefix!r}: {''.join(seen)}"
        seen.append(raw.decode())
        if raw.decode().startswith(prefix):
            return


def events(stdout: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for line in stdout.splitlines():
        if line.startswith("<- "):
            kind, _, data = line[3:].partition(" ")
            found.append((kind, json.loads(data)))
    return found


def conversation_id(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("conversation conv_"), stdout
    return first.split()[1]


def internal_silences(samples: np.ndarray[Any, Any], rate: int, at_least_s: float) -> int:
    """How many runs of digital silence of at least `at_least_s` lie between sounds."""
    sound = np.flatnonzero(samples != 0)
    if sound.size < 2:
        return 0
    gaps = np.diff(sound) - 1
    return int(np.count_nonzero(gaps >= at_least_s * rate))


async def test_no_bridge_is_one_line_and_a_failure_exit() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_client("--api", url, "--key", "vbk_x", "--agent", "agt_x")
    assert code == 1
    assert out == ""
    assert err == f"ws_client.py: no bridge at {url}; is `./scripts/serve` running?\n"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"--key": "vbk_000000000000_wrong"}, "the API key was refused (401): "),
        ({"--agent": "agt_01jd4y3k8m2q9w7e5r1t6y0z3h"}, "no agent agt_01jd4y3k8m2q9w7e5r1t6y0z3h"),
        (
            {"--settings": '{"voice_speed": 9}'},
            "POST /v1/conversations failed (422 validation_error): "
            "body field 'settings.voice_speed'",
        ),
    ],
)
async def test_api_errors_are_one_line_with_the_servers_message(
    bridge: Bridge, change: dict[str, str], said: str
) -> None:
    caller = user()
    options = {"--key": bridge.key, "--agent": bridge.agent, "--user": caller} | change
    args = ["--api", bridge.serve.base_url, *[part for item in options.items() for part in item]]
    code, out, err = await run_client(*args)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ws_client.py: {said}"), err
    assert await bridge.conversations_of(caller) == []


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--wav", "missing.wav"], "--wav missing.wav: no such file"),
        (["--wav", str(CLIENT)], f"--wav {CLIENT}: not a WAV file"),
        (["--settings", "{voice_speed: 1}"], "--settings is not valid JSON: "),
        (["--settings", '{"volume": 3}'], "--settings: unknown field 'volume'"),
        (["--initial-context", '["a"]'], "--initial-context must be a JSON object"),
        (["--initial-context", "{"], "--initial-context is not valid JSON: "),
        (["--out", "no/such/dir/reply.wav"], "--out no/such/dir/reply.wav: the directory"),
        (["--api", "127.0.0.1:8080"], "--api '127.0.0.1:8080' is not an http:// or https:// URL"),
    ],
)
async def test_bad_inputs_are_refused_before_any_conversation(
    bridge: Bridge, extra: list[str], said: str
) -> None:
    caller = user()
    code, out, err = await run_client(*bridge.args(caller, *extra))
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ws_client.py: {said}"), err
    assert await bridge.conversations_of(caller) == []


async def test_text_turns_print_every_event_and_out_keeps_the_replies_apart_in_time(
    bridge: Bridge, tmp_path: Path
) -> None:
    caller = user()
    out_wav = tmp_path / "reply.wav"
    context = {"customer_name": "Ann", "plan": {"tier": "gold"}}
    settings = {"voice_speed": 1.25, "recording_enabled": True}
    process = await start_client(
        *bridge.args(caller),
        "--rate",
        "8000",
        "--out",
        str(out_wav),
        "--initial-context",
        json.dumps(context),
        "--settings",
        json.dumps(settings),
    )
    assert process.stdin is not None
    seen: list[str] = []
    try:
        await read_until(process, "<- agent.audio.end", seen)
        # The user waits before typing: the caller hears that silence, so --out must hold it.
        for turn in (b"hello\n", b"what are your opening hours\n"):
            await asyncio.sleep(1.5)
            process.stdin.write(turn)
            await process.stdin.drain()
            await read_until(process, "<- agent.audio.end", seen)
        process.stdin.close()
        out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stdout = "".join(seen) + out.decode()
    assert process.returncode == 0, (stdout, err.decode())
    kinds = [kind for kind, _data in events(stdout)]
    assert kinds[0] == "ready"
    assert kinds[-1] == "conversation.ended", stdout
    assert kinds.count("agent.message") == 3, stdout
    assert dict(events(stdout))["conversation.ended"] == {
        "reason": "user_ended",
        "status": "completed",
    }
    assert stdout.splitlines()[-1].startswith(f"agent audio saved to {out_wav}")

    with wave.open(str(out_wav)) as saved:
        assert (saved.getnchannels(), saved.getframerate()) == (1, 8000)
        samples = np.frombuffer(saved.readframes(saved.getnframes()), "<i2")
    assert internal_silences(samples, 8000, 1.0) >= 2

    detail = await bridge.get(f"/v1/conversations/{conversation_id(stdout)}")
    assert detail["status"] == "completed"
    assert detail["user_id"] == caller
    assert detail["initial_context"] == context
    assert detail["settings"] == {**settings, "voice_pitch": "medium"}


async def test_a_stereo_22050_hz_wav_is_resampled_and_understood(
    bridge: Bridge, tmp_path: Path
) -> None:
    _name, path, reference = librivox()[0]
    human, rate = load_wav(path)
    at_22050 = resample(human, rate, 22_050)
    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as clip:
        clip.setnchannels(2)
        clip.setsampwidth(2)
        clip.setframerate(22_050)
        clip.writeframes(np.column_stack((at_22050, at_22050)).astype("<i2").tobytes())
    code, out, err = await run_client(*bridge.args(user()), "--wav", str(question))
    assert code == 0, (out, err)
    finals = [data["text"] for kind, data in events(out) if kind == "transcript.final"]
    assert finals, out
    assert word_error_rate(reference, finals[0]) <= 0.2, finals
    assert events(out)[-1][0] == "conversation.ended"


async def test_ctrl_c_ends_the_conversation_and_exits_130(bridge: Bridge) -> None:
    caller = user()
    process = await start_client(*bridge.args(caller))
    seen: list[str] = []
    try:
        await read_until(process, "<- agent.audio.end", seen)
        process.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert err.decode().splitlines()[-1] == "ws_client.py: interrupted"
    detail = await bridge.get(f"/v1/conversations/{conversation_id(''.join(seen))}")
    assert detail["status"] == "completed"
    assert detail["end_reason"] == "user_ended"


async def test_the_bridge_going_away_mid_call_is_one_line_and_a_failure_exit(
    tmp_path: Path, system_redis_url: str
) -> None:
    doomed = await start_bridge(tmp_path, system_redis_url)
    process = await start_client(*doomed.args(user()))
    seen: list[str] = []
    try:
        # Waiting for a typed line, as a user at the keyboard would be.
        await read_until(process, "<- agent.audio.end", seen)
        await doomed.serve.kill()
        _out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await doomed.serve.kill()
        kill_redis_under(tmp_path)
    text = err.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    assert text.splitlines()[-1].startswith("ws_client.py: the bridge closed the connection"), text
