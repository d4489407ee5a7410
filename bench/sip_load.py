"""SIP calls under load: the real `voicebridge serve` answering SIPp, at rising concurrency.

Three phases, each against one server process (REST API, SIP user agent and RTP in one event
loop, Redis on --redis-url under a key prefix of its own, deleted afterwards):

- media: N concurrent calls (50, 100, 150, 200), SIPp playing PCMU RTP into each for the whole
  call while the bridge sends its side back, to a listen agent (dialog engine "listen": it
  never speaks, and nothing runs on what it hears): RTP, the jitter buffer, µ-law decoding and
  8 -> 16 kHz every 20 ms. The caller plays quiet noise (-55 dBFS, every frame different, so
  nothing takes the digital-silence shortcut). With --media-agent builtin the calls go to the
  built-in agent instead, as before the listen agent existed: a one-word greeting, then the
  caller's noise also goes through the session's VAD. Measured over a window while all N calls
  are up: the bridge's RTP send lateness (its `voicebridge_rtp_send_lateness_seconds` on
  /metrics), CPU and RSS of the server per call, and SIPp's failed calls.
- setup: call setup rate (to the same agent as media), SIPp's built-in `uac` scenario (INVITE,
  200, ACK, BYE at once) at rising `-r` for --setup-seconds each until a step has a failed or
  missing call or takes more than 10 % (+1 s) longer than it should (the answers fell behind
  the rate); the same
  steps against SIPp's built-in `uas` on the same machine give the ceiling, and ours is reported
  as a share of it.
- talking: N concurrent calls (1, 2, 4, 6, 8) that talk: each plays the five LibriVox recordings
  of pocketsphinx-testdata with --gap seconds of silence after each for the reply; the built-in
  agent answers every turn. Voice to voice from the server's
  `voicebridge_voice_to_voice_seconds` histogram (end of the caller's speech to the reply's
  first audio), diffed over the phase; p50/p95 interpolated within its buckets.

    .venv/bin/python bench/sip_load.py                 # all three phases, ~15 min
    .venv/bin/python bench/sip_load.py --quick         # smoke run, ~4 min
    .venv/bin/python bench/sip_load.py --phases media --concurrency 50 100 150 200
    .venv/bin/python bench/sip_load.py --nodes 1 2     # the phases through Kamailio, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import cpu_seconds
from bench.report import cpu_model, load_average
from bench.sip_servers import HOST, RTP_PORTS, Server, serve, serve_cluster
from media.resample import resample
from tests.ports import free_port
from tests.sipp import (
    SippOptions,
    SippProcess,
    SippResult,
    free_media_port,
    g711_packets,
    read_wav,
    run_sipp,
    scenario_path,
    start_sipp,
    write_rtp_pcap,
)
from tests.unit.media.recordings import LIBRIVOX

NUMBER = "1000"
"""The built-in agent: it greets and answers every turn (the talking phase)."""
LISTENER = "2000"
"""A listen agent: it never speaks, nothing runs on what it hears (media and setup phases,
unless --media-agent builtin)."""
LATENESS = "voicebridge_rtp_send_lateness_seconds"
VOICE_TO_VOICE = "voicebridge_voice_to_voice_seconds"
SESSIONS = "voicebridge_voice_sessions"

Histogram = dict[float, float]
"""Upper bound (inf for +Inf) -> cumulative count."""


def say(text: str) -> None:
    print(text, flush=True)


async def create_agents(http: aiohttp.ClientSession, server: Server) -> None:
    talker = {
        "name": "sip load",
        # Short, and cached after the first call: with --media-agent builtin, the greeting is
        # the only thing a media call's agent says.
        "custom_responses": {"greeting": "Hi."},
        "phone_numbers": [NUMBER],
    }
    listener = {
        "name": "sip load listener",
        "dialog_engine": {"type": "listen"},
        "phone_numbers": [LISTENER],
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    for body in (talker, listener):
        async with http.post(f"{server.api}/v1/agents", json=body, headers=headers) as response:
            if response.status != 201:
                raise SystemExit(f"creating an agent: {response.status} {await response.text()}")


async def scrape(http: aiohttp.ClientSession, server: Server, name: str) -> tuple[Histogram, float]:
    """Histogram `name` (cumulative bucket counts) and its sum, summed over the nodes."""
    buckets: Histogram = {}
    total = 0.0
    for url in server.metrics_urls:
        async with http.get(url) as response:
            text = await response.text()
        for le, value in re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
        found = re.search(rf"^{name}_sum (\S+)$", text, re.M)
        total += float(found.group(1)) if found else 0.0
    return buckets, total


async def gauge(http: aiohttp.ClientSession, server: Server, name: str) -> float:
    total = 0.0
    for url in server.metrics_urls:
        async with http.get(url) as response:
            found = re.search(rf"^{name} (\S+)$", await response.text(), re.M)
        if found is None:
            return math.nan
        total += float(found.group(1))
    return total


def quantile(before: Histogram, after: Histogram, q: float) -> float:
    """The q-quantile of what was observed between two scrapes, interpolated within buckets
    (as PromQL's histogram_quantile)."""
    diff = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = diff[-1][1] if diff else 0.0
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in diff:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return lower


def count(before: Histogram, after: Histogram, upto: float = math.inf) -> float:
    return after.get(upto, 0.0) - before.get(upto, 0.0)


async def wait_for_sessions(
    http: aiohttp.ClientSession, server: Server, want: float, timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    while True:
        now = await gauge(http, server, SESSIONS)
        if now == want or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


# Audio for SIPp


def noise_pcap(path: Path, seconds: float) -> None:
    rng = np.random.default_rng(5)
    samples = (rng.standard_normal(round(8000 * seconds)) * 32768 * 10 ** (-55 / 20)).astype(
        np.int16
    )
    write_rtp_pcap(path, g711_packets(samples))


def talk_pcap(path: Path, gap_s: float) -> float:
    """The five LibriVox recordings at 8 kHz, each followed by `gap_s` of silence (RTP goes on,
    as a phone's does); returns the duration."""
    pieces = [np.zeros(8000, dtype=np.int16)]
    for wav in sorted(LIBRIVOX.glob("*.wav")):
        samples, rate = read_wav(wav)
        pieces += [resample(samples, rate, 8000), np.zeros(round(8000 * gap_s), dtype=np.int16)]
    audio = np.concatenate(pieces)
    write_rtp_pcap(path, g711_packets(audio))
    return audio.size / 8000


def media_port() -> int:
    """A port block for SIPp's media outside the bridge's RTP range."""
    while True:
        port = free_media_port(HOST)
        if not RTP_PORTS[0] - 4 <= port <= RTP_PORTS[1]:
            return port


# Phases


@dataclass
class MediaRow:
    calls: int
    established: float
    window_s: float
    packets: float
    expected_packets: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    within_2ms: float
    """Share of packets that left at most 2 ms late."""
    cpu_percent_per_call: float
    cpu_percent_total: float
    sipp_cpu_percent: float
    kamailio_cpu_percent: float
    rss_mb_per_call: float
    turns: float
    """Replies the agent gave in the window: 0 if the caller's noise was never heard as speech."""
    successful: int
    failed: int


async def media_phase(
    args: argparse.Namespace, http: aiohttp.ClientSession, server: Server, workdir: Path
) -> list[MediaRow]:
    pcap = workdir / "noise.pcap"
    ramp_s = max(args.concurrency) / args.ramp_rate
    hold_s = ramp_s + args.settle + args.window + 5
    noise_pcap(pcap, hold_s + 5)
    rows = []
    for calls in args.concurrency:
        idle_rss = server.rss()
        sipp = await start_sipp(
            SippOptions(
                scenario_path("load_call"),
                remote=f"{HOST}:{server.sip_port}",
                media_port=media_port(),
                service=args.media_number,
                rate=args.ramp_rate,
                call_limit=calls,
                calls=calls,
                keys={"pcap": str(pcap)},
                extra_args=["-d", str(round(hold_s * 1000))],
            ),
            workdir / f"media-{calls}",
        )
        try:
            await asyncio.sleep(calls / args.ramp_rate + args.settle)
            server.check()
            established = await gauge(http, server, SESSIONS)
            before, _ = await scrape(http, server, LATENESS)
            replies0, _ = await scrape(http, server, VOICE_TO_VOICE)
            cpu0, sipp0, t0 = server.cpu(), cpu_seconds(sipp.process.pid), time.time()
            kam0 = server.balancer_cpu()
            await asyncio.sleep(args.window)
            cpu1, sipp1, t1 = server.cpu(), cpu_seconds(sipp.process.pid), time.time()
            kam1 = server.balancer_cpu()
            after, _ = await scrape(http, server, LATENESS)
            replies1, _ = await scrape(http, server, VOICE_TO_VOICE)
            rss = server.rss()
            result = await sipp.wait(hold_s + 60)
        finally:
            await sipp.kill()
        window = t1 - t0
        packets = count(before, after)
        row = MediaRow(
            calls=calls,
            established=established,
            window_s=window,
            packets=packets,
            expected_packets=calls * window * 50,
            lateness_p50_ms=quantile(before, after, 0.5) * 1000,
            lateness_p99_ms=quantile(before, after, 0.99) * 1000,
            within_2ms=count(before, after, 0.002) / packets if packets else math.nan,
            cpu_percent_per_call=(cpu1 - cpu0) / window / calls * 100,
            cpu_percent_total=(cpu1 - cpu0) / window * 100,
            sipp_cpu_percent=(sipp1 - sipp0) / window * 100,
            kamailio_cpu_percent=(kam1 - kam0) / window * 100,
            rss_mb_per_call=(rss - idle_rss) / calls,
            turns=count(replies0, replies1),
            successful=result.successful_calls,
            failed=result.failed_calls,
        )
        rows.append(row)
        say(
            f"  {calls:5d} calls ({established:.0f} up)  sent {packets:7.0f} of "
            f"{row.expected_packets:7.0f}  lateness p50 {row.lateness_p50_ms:5.2f} ms  "
            f"p99 {row.lateness_p99_ms:5.2f} ms  <=2 ms {100 * row.within_2ms:6.2f} %  "
            f"CPU {row.cpu_percent_total:5.1f} % ({row.cpu_percent_per_call:4.2f} %/call)  "
            f"SIPp CPU {row.sipp_cpu_percent:5.1f} %  Kamailio CPU "
            f"{row.kamailio_cpu_percent:4.1f} %  RSS {row.rss_mb_per_call:5.2f} MB/call  "
            f"replies {row.turns:.0f}  calls ok {row.successful} failed {row.failed}"
        )
        if not result.ok:
            say(f"    SIPp: {result.describe()[:600]}")
        await wait_for_sessions(http, server, 0, 60)
    return rows


@dataclass
class SetupStep:
    target: str
    rate: float
    attempted: int
    successful: int
    failed: int
    seconds: float
    ok: bool
    cpu_ms_per_call: float | None
    """The server's CPU time over the step (all its threads) per call set up and ended."""


async def setup_steps(
    args: argparse.Namespace,
    remote: str,
    target: str,
    workdir: Path,
    scenario: Path | str = "uac",
    extra: tuple[str, ...] = (),
    server: Server | None = None,
) -> list[SetupStep]:
    """`scenario`: SIPp's built-in `uac` by default, which ignores Record-Route; through
    Kamailio a scenario that honours it (call_caller_hangup with no pause: the same messages)."""
    steps: list[SetupStep] = []
    for rate in args.setup_rates:
        calls = round(rate * args.setup_seconds)
        started = time.monotonic()
        cpu_before = server.cpu() if server is not None else 0.0
        result: SippResult = await run_sipp(
            SippOptions(
                scenario,
                remote=remote,
                media_port=media_port(),
                service=args.media_number,
                rate=rate,
                calls=calls,
                call_limit=max(50, round(rate * 2)),
                recv_timeout_ms=5000,
                extra_args=extra,
            ),
            timeout=args.setup_seconds * 3 + 30,
            workdir=workdir / f"setup-{target}-{rate:g}",
        )
        seconds = time.monotonic() - started
        cpu_ms = (
            1000 * (server.cpu() - cpu_before) / result.successful_calls
            if server is not None and result.successful_calls
            else None
        )
        # Kept up: every call set up, and no backlog (SIPp's start and the last call's BYE
        # take a fraction of a second on top of the calls' own span).
        kept_up = seconds <= args.setup_seconds * 1.1 + 1.0
        ok = result.ok and result.successful_calls == calls and not result.timed_out and kept_up
        steps.append(
            SetupStep(
                target,
                rate,
                calls,
                result.successful_calls,
                result.failed_calls,
                seconds,
                ok,
                cpu_ms,
            )
        )
        say(
            f"  {target:6s} -r {rate:6g}/s: {result.successful_calls}/{calls} calls ok, "
            f"{result.failed_calls} failed, {seconds:5.1f} s "
            f"({result.successful_calls / seconds:6.1f} calls/s overall)"
            + ("" if cpu_ms is None else f", server CPU {cpu_ms:.2f} ms/call")
            + ("" if ok else "  <- failed calls or fell behind")
        )
        if not ok:
            break
    return steps


async def setup_phase(
    args: argparse.Namespace, http: aiohttp.ClientSession, server: Server, workdir: Path
) -> dict[str, Any]:
    through_kamailio = bool(server.balancer)
    ours = await setup_steps(
        args,
        f"{HOST}:{server.sip_port}",
        "bridge",
        workdir,
        scenario_path("call_caller_hangup") if through_kamailio else "uac",
        ("-d", "0") if through_kamailio else (),
        server,
    )
    await wait_for_sessions(http, server, 0, 60)
    uas_port = free_port()
    uas: SippProcess = await start_sipp(
        SippOptions("uas", local_port=uas_port, media_port=media_port(), calls=None),
        workdir / "setup-uas",
    )
    try:
        await asyncio.sleep(1)
        ceiling = await setup_steps(args, f"{HOST}:{uas_port}", "uas", workdir)
    finally:
        await uas.stop()
    best = max((s.rate for s in ours if s.ok), default=0.0)
    top = max((s.rate for s in ceiling if s.ok), default=0.0)
    sustained = max((s.successful / s.seconds for s in ours), default=0.0)
    say(
        f"  highest rate with every call set up in time: bridge {best:g}/s, SIPp uas {top:g}/s"
        + (" (the highest step tried)" if ceiling and ceiling[-1].ok else "")
        + (f"; ratio {best / top:.3f}" if top else "")
        + f"; the bridge's most calls/s over a step: {sustained:.1f}"
    )
    return {"bridge": [asdict(s) for s in ours], "uas": [asdict(s) for s in ceiling]}


@dataclass
class TalkRow:
    calls: int
    turns: float
    expected_turns: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    cpu_percent_total: float
    successful: int
    failed: int


async def talking_phase(
    args: argparse.Namespace, http: aiohttp.ClientSession, server: Server, workdir: Path
) -> list[TalkRow]:
    pcap = workdir / "talk.pcap"
    duration = talk_pcap(pcap, args.gap)
    utterances = len(list(LIBRIVOX.glob("*.wav")))
    rows = []
    for calls in args.talking:
        before, sum0 = await scrape(http, server, VOICE_TO_VOICE)
        cpu0, t0 = server.cpu(), time.time()
        result = await run_sipp(
            SippOptions(
                scenario_path("load_call"),
                remote=f"{HOST}:{server.sip_port}",
                media_port=media_port(),
                service=NUMBER,
                rate=calls,
                rate_period_ms=round(args.stagger * 1000),
                call_limit=calls,
                calls=calls,
                keys={"pcap": str(pcap)},
                extra_args=["-d", str(round((duration + 2) * 1000))],
            ),
            timeout=duration + args.stagger + 60,
            workdir=workdir / f"talk-{calls}",
        )
        cpu1, t1 = server.cpu(), time.time()
        await wait_for_sessions(http, server, 0, 30)
        after, sum1 = await scrape(http, server, VOICE_TO_VOICE)
        turns = count(before, after)
        row = TalkRow(
            calls=calls,
            turns=turns,
            expected_turns=calls * utterances,
            p50_ms=quantile(before, after, 0.5) * 1000,
            p95_ms=quantile(before, after, 0.95) * 1000,
            mean_ms=(sum1 - sum0) / turns * 1000 if turns else math.nan,
            cpu_percent_total=(cpu1 - cpu0) / (t1 - t0) * 100,
            successful=result.successful_calls,
            failed=result.failed_calls,
        )
        rows.append(row)
        say(
            f"  {calls:3d} talking calls: {turns:.0f}/{row.expected_turns} turns answered, "
            f"voice to voice p50 {row.p50_ms:5.0f} ms  p95 {row.p95_ms:5.0f} ms  mean "
            f"{row.mean_ms:5.0f} ms  CPU {row.cpu_percent_total:5.1f} %  calls ok "
            f"{row.successful} failed {row.failed}"
        )
        if not result.ok:
            say(f"    SIPp: {result.describe()[:600]}")
    return rows


# Main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few, short steps")
    parser.add_argument("--phases", nargs="+", choices=["media", "setup", "talking"])
    parser.add_argument("--concurrency", type=int, nargs="+", help="media: calls at once")
    parser.add_argument("--window", type=float, help="media: seconds measured per step")
    parser.add_argument("--settle", type=float, default=3.0, help="media: after the ramp")
    parser.add_argument("--ramp-rate", type=float, default=20.0, help="media: new calls/s")
    parser.add_argument("--setup-rates", type=float, nargs="+", help="setup: -r steps")
    parser.add_argument("--setup-seconds", type=float, help="setup: seconds per step")
    parser.add_argument("--talking", type=int, nargs="+", help="talking: calls at once")
    parser.add_argument("--gap", type=float, default=5.0, help="talking: s after each utterance")
    parser.add_argument("--stagger", type=float, default=3.0, help="talking: call starts spread")
    parser.add_argument(
        "--media-agent",
        choices=["listen", "builtin"],
        default="listen",
        help="media and setup: the agent called (builtin: greets 'Hi.', VAD on the caller's "
        "noise, as measured before the listen agent existed)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the server (one node) under cProfile and write its statistics here",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        help="run the phases through Kamailio (serve --nodes N --balancer) for each N, one "
        "after the other, and print them side by side",
    )
    args = parser.parse_args()
    quick = args.quick
    args.phases = args.phases or ["media", "setup", "talking"]
    args.concurrency = args.concurrency or ([50, 100] if quick else [50, 100, 150, 200])
    args.window = args.window or (5.0 if quick else 20.0)
    args.setup_rates = args.setup_rates or (
        [10, 40, 160]
        if quick
        else [10, 20, 40, 60, 80, 100, 120, 140, 160, 200, 250, 320, 640, 1280, 2560, 5120]
    )
    args.setup_seconds = args.setup_seconds or (3.0 if quick else 10.0)
    args.talking = args.talking or ([1, 2] if quick else [1, 2, 4, 6, 8])
    args.media_number = LISTENER if args.media_agent == "listen" else NUMBER
    # The server runs in a directory of its own.
    args.profile = args.profile.resolve() if args.profile else None
    return args


async def run_phases(
    args: argparse.Namespace, http: aiohttp.ClientSession, server: Server, workdir: Path
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    await create_agents(http, server)
    say(f"server pids {server.pids}, RSS {server.rss():.0f} MB with models loaded")
    if "media" in args.phases:
        agent = "a listen agent" if args.media_agent == "listen" else "agent silent after 'Hi.'"
        say(
            f"\nmedia-only calls (PCMU, caller plays -55 dBFS noise, {agent}), "
            f"{args.window:g} s measured per step:"
        )
        figures["media"] = [asdict(r) for r in await media_phase(args, http, server, workdir)]
    if "setup" in args.phases:
        say(f"\ncall setup rate (SIPp -sn uac, {args.setup_seconds:g} s per step):")
        figures["setup"] = await setup_phase(args, http, server, workdir)
    if "talking" in args.phases:
        say(f"\ntalking calls (LibriVox, {args.gap:g} s after each utterance):")
        figures["talking"] = [asdict(r) for r in await talking_phase(args, http, server, workdir)]
    server.check()
    return figures


def side_by_side(runs: dict[int, dict[str, Any]]) -> None:
    """The figures of each node count next to the first one's, as ratios."""
    counts = sorted(runs)
    first = counts[0]
    say("\nside by side, through Kamailio (ratio to " + f"{first} node{'s' * (first > 1)}):")
    if all("setup" in runs[n] for n in counts):

        def best(n: int) -> float:
            return max((s["rate"] for s in runs[n]["setup"]["bridge"] if s["ok"]), default=0.0)

        say(
            "  setup rate with every call in time: "
            + ", ".join(f"{n} nodes {best(n):g}/s ({best(n) / best(first):.2f}x)" for n in counts)
            if best(first)
            else "  setup: no step kept up"
        )
    if all("media" in runs[n] for n in counts):
        for index, row in enumerate(runs[first]["media"]):
            cells = []
            for n in counts:
                other = runs[n]["media"][index]
                cells.append(
                    f"{n} nodes p99 {other['lateness_p99_ms']:5.2f} ms, "
                    f"<=2 ms {100 * other['within_2ms']:6.2f} %, "
                    f"CPU {other['cpu_percent_total']:5.1f} %, "
                    f"Kamailio {other['kamailio_cpu_percent']:4.1f} %"
                )
            say(f"  media {row['calls']:4d} calls: " + " | ".join(cells))
    if all("talking" in runs[n] for n in counts):
        for index, row in enumerate(runs[first]["talking"]):
            cells = [
                f"{n} nodes p50 {runs[n]['talking'][index]['p50_ms']:4.0f} / p95 "
                f"{runs[n]['talking'][index]['p95_ms']:4.0f} ms"
                for n in counts
            ]
            say(f"  talking {row['calls']:3d} calls: " + " | ".join(cells))


def max_calls(args: argparse.Namespace) -> int:
    return int(max(args.concurrency)) + 100


async def main() -> None:
    args = parse_args()
    say("command: " + shlex.join([".venv/bin/python", *sys.argv]))
    say(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}; load "
        f"average {load_average()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    figures: dict[str, Any] = {"command": sys.argv, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="vb-sipload-") as tmp:
        workdir = Path(tmp)
        if args.nodes:
            runs: dict[int, dict[str, Any]] = {}
            for nodes in args.nodes:
                say(f"\n=== {nodes} node{'s' * (nodes > 1)} behind Kamailio ===")
                (workdir / f"n{nodes}").mkdir()
                async with (
                    serve_cluster(
                        args.redis_url, max_calls(args), args.startup_timeout, nodes
                    ) as server,
                    aiohttp.ClientSession() as http,
                ):
                    runs[nodes] = await run_phases(args, http, server, workdir / f"n{nodes}")
            figures["nodes"] = runs
            side_by_side(runs)
        else:
            async with (
                serve(
                    args.redis_url, max_calls(args), args.startup_timeout, args.profile
                ) as server,
                aiohttp.ClientSession() as http,
            ):
                figures |= await run_phases(args, http, server, workdir)
    figures["load_after"] = os.getloadavg()
    say(f"\nload average after: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
