"""Voice pipeline benchmark: real recordings streamed in real time over WebSockets.

Starts `voicebridge serve` (free loopback port, embedded Redis in a temporary directory,
models preloaded) and a stand-in OpenAI-compatible model, then for each agent setup, each
encoding (pcm16 16 kHz, µ-law 8 kHz) and each --concurrency runs that many conversations at
once, their starts spread over --stagger seconds. A conversation waits for the greeting, then
says --turns LibriVox recordings (Debian's pocketsphinx-testdata) on a continuous line
(silence in between, as a phone sends), each --pause seconds after the previous reply ended.

Setups: `builtin` (fixed lines, whose audio the server caches after the first time) and
`openai` (the stand-in model streams "Request <n> noted, I heard you say: <transcript> Let me
look into request <n> for you." token by token without delay; <n> counts requests, so the
first piece is always new and needs fresh TTS).

Reported per run: voice to voice as the client sees it (arrival of `agent.audio.start` minus
the moment the utterance's last voiced frame left; the voice ends at the last 10 ms window within
20 dB of the recording's loud speech) and as the server stored it (meta.latency_ms), word error
rate, the server's stage histograms, its CPU per conversation and peak RSS. bench/README.md
says how each is measured.

    .venv/bin/python bench/pipeline.py            # 1, 4 and 8 conversations, about 11 min
    .venv/bin/python bench/pipeline.py --quick    # smoke run, about 3.5 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import command_line, load_average, say
from examples.ws_client import Samples, VoiceClient
from media.resample import resample
from media.wer import edit_distance, words
from tests.ports import free_port
from tests.unit.media.recordings import librivox, load_wav

KEY_LINE = re.compile(r"bootstrap API key.*?(vbk_[0-9a-f]{12}_[A-Za-z0-9_-]+)")
RATES = {"pcm16": 16_000, "mulaw": 8_000}
HISTOGRAMS = {
    "v2v": "voicebridge_voice_to_voice_seconds",
    "asr_wait": "voicebridge_asr_final_wait_seconds",
    "dialog": "voicebridge_dialog_first_text_seconds",
    "tts": "voicebridge_tts_piece_seconds",
}
EVENT_TIMEOUT = 60.0


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# Caller audio


@dataclass
class Utterance:
    reference: str
    voiced: Samples
    tail: Samples


def speech_end(samples: Samples, rate: int) -> float:
    """Seconds to the end of the last 10 ms window within 20 dB of the loud speech."""
    window = rate // 100
    frames = samples[: samples.size // window * window].reshape(-1, window).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1)
    voiced = np.nonzero(level > np.percentile(level, 95) - 20)[0]
    return float(voiced[-1] + 1) / 100


def utterances(rate: int) -> list[Utterance]:
    out = []
    for _name, path, reference in librivox():
        samples, source_rate = load_wav(path)
        split = math.ceil(speech_end(samples, source_rate) / 0.02) * (rate // 50)
        line = resample(samples, source_rate, rate)
        out.append(Utterance(reference, line[:split], line[split:]))
    return out


# The stand-in model: OpenAI-compatible streamed chat completions, no delay

REQUESTS = itertools.count(1)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Streams a reply that repeats the caller's last message, as chat.completion.chunks."""
    body = await request.json()
    heard = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user").strip()
    heard += "" if heard.endswith((".", "!", "?")) else "."
    n = next(REQUESTS)
    text = f"Request {n} noted, I heard you say: {heard} Let me look into request {n} for you."
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for token in [*re.findall(r"\s*\S+", text), None]:
        choice = {"index": 0, "delta": {"content": token} if token else {}}
        choice["finish_reason"] = None if token else "stop"
        chunk = {"id": "bench", "object": "chat.completion.chunk", "choices": [choice]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


@contextlib.asynccontextmanager
async def fake_model() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


# The server under test


@dataclass
class Server:
    url: str
    key: str
    process: asyncio.subprocess.Process
    stderr: Path

    def check(self) -> None:
        if self.process.returncode is not None:
            raise SystemExit(f"voicebridge serve died ({self.process.returncode}); see its stderr")


@contextlib.asynccontextmanager
async def serve(
    startup_timeout: float, settings: dict[str, str] | None = None, profile: Path | None = None
) -> AsyncIterator[Server]:
    """`voicebridge serve` with the models loaded; `settings` adds VOICEBRIDGE_* variables.
    With `profile` (an absolute path), the server runs under cProfile and writes its statistics
    there on exit."""
    with tempfile.TemporaryDirectory(prefix="vb-pipe-") as tmp:
        port, errors = free_port(), Path(tmp) / "stderr.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBRIDGE_")}
        env |= {
            "VOICEBRIDGE_HTTP_HOST": "127.0.0.1", "VOICEBRIDGE_HTTP_PORT": str(port),
            "VOICEBRIDGE_DATA_DIR": str(Path(tmp) / "data"), "VOICEBRIDGE_PRELOAD_MODELS": "true",
            "VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE": "true", "VOICEBRIDGE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        env |= settings or {}
        voicebridge = Path(sys.executable).with_name("voicebridge")
        command = [str(voicebridge)] if voicebridge.is_file() else [sys.executable, "-m", "api.cli"]
        if profile is not None:
            command = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(profile),
                "-m",
                "api.cli",
            ]
        with errors.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *command, "serve", env=env, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        drain: asyncio.Task[bytes] | None = None
        try:
            try:
                key = await asyncio.wait_for(read_key(process), startup_timeout)
            except TimeoutError:
                raise SystemExit(f"serve: no models within {startup_timeout:g} s") from None
            assert process.stdout is not None
            drain = asyncio.create_task(process.stdout.read())
            yield Server(f"http://127.0.0.1:{port}", key, process, errors)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    say("voicebridge serve ignored SIGTERM for 30 s: killing it")
                    process.kill()
                    await process.wait()
                    kill_leftovers(tmp)
            if drain is not None:
                drain.cancel()
            log = [line for line in errors.read_text().splitlines() if line.strip()]
            if log or process.returncode:
                print(f"\nserver exit status {process.returncode}; stderr ({len(log)} lines):")
                print("\n".join(f"  {line}" for line in log[-60:]))


def kill_leftovers(directory: str) -> None:
    """SIGKILL the embedded redis-server a killed serve leaves behind (its socket is in ours)."""
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
            if "redis-server" in title and f"unixsocket:{directory}" in title:
                os.kill(int(entry.name), signal.SIGKILL)


async def read_key(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    key: str | None = None
    while line := (await process.stdout.readline()).decode():
        if found := KEY_LINE.search(line):
            key = found.group(1)
        if "speech models loaded" in line and key is not None:
            return key
        if "speech models loaded" in line:
            raise SystemExit("voicebridge serve printed no bootstrap key")
    raise SystemExit(f"voicebridge serve exited with {await process.wait()} before it was ready")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    return int(re.findall(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[0]) / 1024


Histogram = dict[str, float]
"""'le' bound (as text) -> cumulative count, plus 'sum' and 'count'."""


async def scrape(http: aiohttp.ClientSession, server: Server) -> dict[str, Histogram]:
    async with http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    out: dict[str, Histogram] = {}
    for short, name in HISTOGRAMS.items():
        hist = out[short] = {}
        for le, value in re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
            hist[le] = float(value)
        for part in ("sum", "count"):
            found = re.search(rf"^{name}_{part} (\S+)$", text, re.M)
            hist[part] = float(found.group(1)) if found else 0.0
    return out


def stage(before: Histogram, after: Histogram) -> dict[str, float]:
    """Count, mean and p50/p95 in ms (interpolated in buckets, as histogram_quantile does)."""
    diff = {k: after[k] - before.get(k, 0.0) for k in after}
    count = diff.get("count", 0.0)
    result = {"n": count, "mean": math.nan, "p50": math.nan, "p95": math.nan}
    if count:
        result["mean"] = diff["sum"] / count * 1000
    bounds = sorted((float(le), n) for le, n in diff.items() if le not in ("sum", "count"))
    for q in (50, 95) if count else ():
        rank, lower, below = q / 100 * count, 0.0, 0.0
        for bound, cumulative in bounds:
            if cumulative >= rank:
                upper = bound if math.isfinite(bound) else lower
                share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                result[f"p{q}"] = 1000 * (lower + (upper - lower) * share)
                break
            lower, below = bound, cumulative
    return result


# Conversations


@dataclass
class Outcome:
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    edits: int = 0
    ref_words: int = 0
    turns: int = 0
    split_turns: int = 0
    """Turns the server heard as more than one transcript.final."""
    errors: list[str] = field(default_factory=list)


async def converse(
    http: aiohttp.ClientSession, server: Server, agent_id: str, encoding: str,
    script: list[Utterance], delay: float, pause: float, outcome: Outcome,
) -> None:  # fmt: skip
    await asyncio.sleep(delay)
    auth = {"Authorization": f"Bearer {server.key}"}
    body = {"agent_id": agent_id, "user_id": "bench"}
    async with http.post(f"{server.url}/v1/conversations", json=body, headers=auth) as response:
        created = await response.json()
        if response.status != 201:
            raise RuntimeError(f"POST /v1/conversations: {response.status} {created}")
    details = created["connection_details"]
    client = await VoiceClient.connect(
        http, details["websocket_url"], details["token"], encoding=encoding,
        sample_rate=RATES[encoding],
    )  # fmt: skip
    try:
        client.open_line()
        await client.wait_for("agent.audio.end", timeout=EVENT_TIMEOUT)
        for utterance in script:
            await asyncio.sleep(pause)
            mark = len(client.events)
            voiced_end = await client.speak(utterance.voiced)
            client.queue(utterance.tail)
            start = await client.wait_for("agent.audio.start", after=mark, timeout=EVENT_TIMEOUT)
            end = await client.wait_for(
                "agent.audio.end", after=client.index(start), timeout=EVENT_TIMEOUT
            )
            turn = client.events[mark : client.index(end)]
            finals = [e.data["text"] for e in turn if e.type == "transcript.final"]
            odd = [f"{e.type} {e.data}" for e in turn if e.type in ("error", "interrupted")]
            outcome.errors += odd
            outcome.client_ms.append((start.at - voiced_end) * 1000)
            reference = words(utterance.reference)
            outcome.edits += edit_distance(reference, words(" ".join(finals)))
            outcome.ref_words += len(reference)
            outcome.turns += 1
            outcome.split_turns += len(finals) > 1
        await client.end()
        await client.wait_for("conversation.ended", timeout=EVENT_TIMEOUT)
    finally:
        await client.close()
    conversation_url = f"{server.url}/v1/conversations/{created['conversation_id']}"
    async with http.get(conversation_url, headers=auth) as response:
        stored = await response.json()
    for message in stored.get("messages", []):
        latency = (message.get("meta") or {}).get("latency_ms")
        if message["type"] == "agent" and latency is not None:
            outcome.server_ms.append(float(latency))


async def run(
    args: argparse.Namespace, http: aiohttp.ClientSession, server: Server, setup: str,
    agent_id: str, encoding: str, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    lines, outcome, pid = utterances(RATES[encoding]), Outcome(), server.process.pid
    before, cpu_before, began = await scrape(http, server), cpu_seconds(pid), time.monotonic()
    scripts = [[lines[(c + t) % len(lines)] for t in range(args.turns)] for c in range(concurrency)]
    failures = await asyncio.gather(*(
        converse(http, server, agent_id, encoding, script, args.stagger * c / concurrency,
                 args.pause, outcome)
        for c, script in enumerate(scripts)
    ), return_exceptions=True)  # fmt: skip
    for failure in failures:
        if failure is not None:
            outcome.errors.append(f"{type(failure).__name__}: {failure}"[:600])
    seconds, cpu = time.monotonic() - began, cpu_seconds(pid) - cpu_before
    after = await scrape(http, server)
    return {
        "setup": setup, "encoding": encoding, "concurrency": concurrency,
        "turns": outcome.turns, "turns_planned": concurrency * args.turns,
        "split_turns": outcome.split_turns, "errors": outcome.errors,
        "client_ms": outcome.client_ms, "server_ms": outcome.server_ms,
        "edits": outcome.edits, "ref_words": outcome.ref_words,
        "stages": {k: stage(before[k], after[k]) for k in HISTOGRAMS},
        "seconds": seconds, "cpu_per_conversation": 100 * cpu / (concurrency * seconds),
        "vm_hwm_mb": peak_rss_mb(pid),
    }  # fmt: skip


# Reporting


def fmt(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f}"


def p50_p95(values: list[float]) -> str:
    return f"{fmt(percentile(values, 50))} / {fmt(percentile(values, 95))}"


def report(rows: list[dict[str, Any]], load_before: str) -> None:
    git = ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
    print(f"\ncommand: {command_line()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit}; {os.cpu_count()} "
        f"cores; load average (1, 5, 15 min) {load_before} before, {load_average()} after"
    )
    print(
        "\n| setup | encoding | conv. | turns | v2v client p50 / p95 ms | v2v server p50 / p95 ms "
        "| WER | ASR wait mean ms | dialog 1st text mean ms | TTS piece mean / p95 ms "
        "| CPU % core / conv. | VmHWM MB |\n|" + "---|" * 12
    )
    for r in rows:
        s, wer = r["stages"], 100 * r["edits"] / max(1, r["ref_words"])
        print(
            f"| {r['setup']} | {r['encoding']} {RATES[r['encoding']] // 1000} kHz "
            f"| {r['concurrency']} | {r['turns']}/{r['turns_planned']} | {p50_p95(r['client_ms'])} "
            f"| {p50_p95(r['server_ms'])} | {wer:.1f} % | {fmt(s['asr_wait']['mean'])} "
            f"| {fmt(s['dialog']['mean'])} | {fmt(s['tts']['mean'])} / {fmt(s['tts']['p95'])} "
            f"| {r['cpu_per_conversation']:.0f} | {r['vm_hwm_mb']:.0f} |"
        )
    print("\nper run: server histogram voice_to_voice p50 / p95 ms (bucket estimates), anomalies")
    for r in rows:
        v2v = r["stages"]["v2v"]
        print(
            f"  {r['setup']:8} {r['encoding']:6} x{r['concurrency']}: {fmt(v2v['p50'])} / "
            f"{fmt(v2v['p95'])} (n={v2v['n']:.0f}); {r['seconds']:.0f} s; "
            f"split turns {r['split_turns']}; errors {len(r['errors'])}"
        )
        print("".join(f"    ! {error}\n" for error in r["errors"][:5]), end="")
    print("\naims: voice to voice p50 ≤ 600 ms at 1 conversation, p95 ≤ 900 ms at 8")
    aims = {1: (50, 600.0), 8: (95, 900.0)}
    for r, side in ((r, side) for r in rows for side in ("client", "server")):
        if r["concurrency"] in aims:
            p, limit = aims[r["concurrency"]]
            value = percentile(r[f"{side}_ms"], p)
            where = f"{r['setup']} {r['encoding']} x{r['concurrency']} {side}"
            print(f"  {where}: p{p} {fmt(value)} ms, {'met' if value <= limit else 'NOT met'}")
    for encoding in dict.fromkeys(r["encoding"] for r in rows):
        edits = sum(r["edits"] for r in rows if r["encoding"] == encoding)
        total = sum(r["ref_words"] for r in rows if r["encoding"] == encoding)
        wer = 100 * edits / total if total else math.nan
        aim = f"; aim ≤ 5 %: {'met' if wer <= 5 else 'NOT met'}" if encoding == "mulaw" else ""
        print(f"  WER {encoding}, all runs: {wer:.1f} % ({edits} edits / {total} words){aim}")


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with (
        fake_model() as model_url,
        serve(args.startup_timeout) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10)) as http,
    ):
        engines = {
            "builtin": {"type": "builtin"},
            "openai": {"type": "openai", "base_url": model_url, "model": "bench-echo"},
        }
        for setup in args.setups:
            agent = {"name": f"Bench {setup}", "dialog_engine": engines[setup]}
            auth = {"Authorization": f"Bearer {server.key}"}
            async with http.post(f"{server.url}/v1/agents", json=agent, headers=auth) as response:
                created = await response.json()
                if response.status != 201:
                    raise SystemExit(f"POST /v1/agents ({setup}): {response.status} {created}")
            say(f"{setup}: a warm-up conversation (not measured)")
            await run(args, http, server, setup, created["agent_id"], "pcm16", 1)
            for encoding, concurrency in itertools.product(args.encodings, args.concurrency):
                server.check()
                say(f"{setup}, {encoding}: {concurrency} conversations x {args.turns} turns")
                rows.append(
                    await run(args, http, server, setup, created["agent_id"], encoding, concurrency)
                )
                say(f"  {rows[-1]['turns']} turns, {len(rows[-1]['errors'])} errors")
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    add("--turns", type=int, default=3, help="utterances per conversation (default 3)")
    add("--setups", type=lambda s: s.split(","), default=["builtin", "openai"])
    add("--encodings", type=lambda s: s.split(","), default=["pcm16", "mulaw"])
    add("--pause", type=float, default=0.8, help="s of silence before each utterance")
    add("--stagger", type=float, default=3.0, help="conversation starts spread over this many s")
    add("--startup-timeout", type=float, default=180.0, help="s to wait for the models")
    add("--quick", action="store_true", help="smoke run: 1 and 2 conversations, 1 turn")
    add("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.turns = [1, 2], 1
    if bad := (set(args.setups) - {"builtin", "openai"}) | (set(args.encodings) - set(RATES)):
        parser.error(f"unknown setup or encoding: {', '.join(sorted(bad))}")
    return args


def main() -> None:
    args = parse_args()
    load_before = load_average()
    rows = asyncio.run(main_async(args))
    report(rows, load_before)
    if args.json:
        args.json.write_text(json.dumps({"command": command_line(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
