"""The SIPp tooling the SIP tests and the load benchmark stand on, checked against SIPp itself on
loopback: the pcaps tests/sipp.py writes are what SIPp really plays, and the runner reports
success, failure and hangs as they are."""

from __future__ import annotations

import asyncio
import socket
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.resample import resample
from tests.ports import free_port
from tests.sipp import (
    EXIT_ALL_SUCCEEDED,
    EXIT_SOME_FAILED,
    SIPP,
    Codec,
    RtpReceived,
    SippOptions,
    dtmf_to_pcap,
    parse_rtp,
    run_sipp,
    scenario_path,
    start_sipp,
    wav_to_pcap,
)

pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed (Debian package sip-tester, scripts/apt-packages.txt)",
)


def write_tone(path: Path, rate: int, seconds: float) -> None:
    # Two tones so a shifted or reordered packet cannot still correlate well.
    t = np.arange(round(rate * seconds)) / rate
    signal = 6000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1230 * t + 0.5 * t)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(signal.astype("<i2").tobytes())


@pytest.fixture
async def rtp_sink() -> AsyncIterator[tuple[int, list[RtpReceived]]]:
    """A UDP socket standing where the answer's SDP sends the caller's media."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    received: list[RtpReceived] = []

    async def collect() -> None:
        loop = asyncio.get_running_loop()
        while True:
            received.append(parse_rtp(await loop.sock_recv(sock, 2048)))

    task = asyncio.create_task(collect())
    yield sock.getsockname()[1], received
    task.cancel()
    sock.close()


async def play(pcap: Path, scenario: str, sink_port: int, tmp_path: Path, stay_ms: int) -> None:
    uas_port = free_port()
    uas = await start_sipp(
        SippOptions(
            scenario_path("peers/uas_media_sink"),
            local_port=uas_port,
            keys={"sink_port": str(sink_port)},
        ),
        tmp_path / "uas",
    )
    try:
        await asyncio.sleep(0.3)
        uac = await run_sipp(
            SippOptions(
                scenario_path(scenario),
                remote=f"127.0.0.1:{uas_port}",
                service="1000",
                keys={"pcap": str(pcap)},
                extra_args=["-d", str(stay_ms)],
            ),
            timeout=30,
            workdir=tmp_path / "uac",
        )
        assert uac.ok, uac.describe()
        served = await uas.wait(10)
        assert served.ok, served.describe()
    finally:
        await uas.kill()


@pytest.mark.parametrize(("codec", "payload_type"), [("PCMU", 0), ("PCMA", 8)])
async def test_sipp_plays_the_wav_pcap(
    codec: Codec,
    payload_type: int,
    rtp_sink: tuple[int, list[RtpReceived]],
    tmp_path: Path,
) -> None:
    wav_path, pcap = tmp_path / "tone.wav", tmp_path / "tone.pcap"
    write_tone(wav_path, 16000, 1.5)
    assert wav_to_pcap(wav_path, pcap, codec) == 75
    sink_port, received = rtp_sink

    await play(pcap, "call_speech", sink_port, tmp_path, stay_ms=2000)

    assert len(received) == 75
    assert {p.payload_type for p in received} == {payload_type}
    assert [p.seq for p in received] == list(range(75))
    assert [p.timestamp for p in received] == [i * 160 for i in range(75)]
    assert [p.marker for p in received] == [True] + [False] * 74
    decode = ulaw_decode if codec == "PCMU" else alaw_decode
    heard = np.concatenate([decode(p.payload) for p in received]).astype(np.float64)
    with wave.open(str(wav_path), "rb") as wav:
        original = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    expected = resample(original, 16000, 8000).astype(np.float64)
    assert len(heard) == len(expected)
    assert np.corrcoef(heard, expected)[0, 1] > 0.999


@pytest.mark.parametrize("marker", [True, False])
async def test_sipp_plays_the_dtmf_pcap(
    marker: bool, rtp_sink: tuple[int, list[RtpReceived]], tmp_path: Path
) -> None:
    pcap = tmp_path / "dtmf.pcap"
    dtmf_to_pcap("5#", pcap, duration_ms=100, marker=marker)
    sink_port, received = rtp_sink

    await play(pcap, "dtmf_rfc4733", sink_port, tmp_path, stay_ms=1000)

    assert {p.payload_type for p in received} == {101}
    assert [p.seq for p in received] == list(range(len(received)))
    events = [(p.timestamp, p.payload[0], bool(p.payload[1] & 0x80)) for p in received]
    assert [event for _, event, _ in events] == [5] * 7 + [11] * 7
    assert sum(end for _, event, end in events if event == 5) == 3
    assert sum(end for _, event, end in events if event == 11) == 3
    assert len({ts for ts, _, _ in events}) == 2
    assert [p.marker for p in received] == ([True] + [False] * 6) * 2 if marker else [False] * 14


async def test_runner_reports_success_of_a_uac_uas_pair(tmp_path: Path) -> None:
    uas_port = free_port()
    uas = await start_sipp(SippOptions("uas", local_port=uas_port, calls=5), tmp_path / "uas")
    try:
        await asyncio.sleep(0.3)
        uac = await run_sipp(
            SippOptions("uac", remote=f"127.0.0.1:{uas_port}", rate=20, calls=5),
            timeout=30,
            workdir=tmp_path / "uac",
        )
        served = await uas.wait(10)
    finally:
        await uas.kill()

    assert uac.ok, uac.describe()
    assert (uac.returncode, uac.successful_calls, uac.failed_calls) == (EXIT_ALL_SUCCEEDED, 5, 0)
    assert (served.returncode, served.successful_calls) == (EXIT_ALL_SUCCEEDED, 5), (
        served.describe()
    )


async def test_runner_reports_failure_when_the_remote_is_absent(tmp_path: Path) -> None:
    result = await run_sipp(
        SippOptions(
            "uac", remote=f"127.0.0.1:{free_port()}", calls=2, rate=10, recv_timeout_ms=1000
        ),
        timeout=30,
        workdir=tmp_path,
    )

    assert not result.ok
    assert not result.timed_out
    assert (result.returncode, result.successful_calls, result.failed_calls) == (
        EXIT_SOME_FAILED,
        0,
        2,
    )
    assert "receive timeout" in result.errors


async def test_runner_kills_a_hung_sipp_at_its_timeout(tmp_path: Path) -> None:
    process = await start_sipp(SippOptions("uas", local_port=free_port(), calls=1), tmp_path)
    started = time.monotonic()

    result = await process.wait(timeout=2)

    assert 2 <= time.monotonic() - started < 10
    assert result.timed_out
    assert result.returncode is None
    assert not result.ok
    assert process.process.returncode is not None
