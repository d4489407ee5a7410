"""SIPp as a test and benchmark peer: running it as a subprocess and reading its outcome, and
writing the RTP pcap files its `play_pcap_audio` action replays (speech from a WAV, RFC 4733
DTMF events).

SIPp (Debian's `sip-tester`) runs in the foreground with stdin disabled: `-bg` would detach it,
and then neither its exit status nor its end could be waited for. Its exit statuses: 0 every call
succeeded, 1 at least one failed, 97 stopped by an internal command, 99 ended without processing
a call, 255 fatal error, 254 fatal error binding a socket.

Each run gets a directory of its own with the statistics (`-trace_stat`), the unexpected
messages (`-trace_err`) and the final screen (`-trace_screen`), so parallel runs never mix
their files and a failed test can show what SIPp saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import random
import shutil
import signal
import socket
import struct
import tempfile
import wave
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from media.g711 import Pcm16, alaw_encode, ulaw_encode
from media.resample import resample

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).resolve().parent.parent / "sipp-scenarios"

EXIT_ALL_SUCCEEDED = 0
EXIT_SOME_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALL_PROCESSED = 99
EXIT_FATAL = 255
EXIT_FATAL_BIND = 254

Codec = Literal["PCMU", "PCMA"]
PAYLOAD_TYPES: Mapping[Codec, int] = {"PCMU": 0, "PCMA": 8}
TELEPHONE_EVENT_PT = 101
DTMF_EVENTS = {d: i for i, d in enumerate("0123456789*#ABCD")}

RATE = 8000
PTIME_MS = 20
SAMPLES_PER_PACKET = RATE * PTIME_MS // 1000

Address = tuple[str, int]
# Addresses written into the pcap: SIPp keeps only the UDP payload and sends it from its own
# media socket to the address the peer's SDP names, so these only make the file readable in
# Wireshark.
PCAP_SRC: Address = ("10.0.0.1", 6000)
PCAP_DST: Address = ("10.0.0.2", 6000)


class SippNotInstalled(RuntimeError):
    pass


@dataclass(frozen=True)
class SippResult:
    command: list[str]
    returncode: int | None
    """None when the runner killed SIPp at its timeout."""
    timed_out: bool
    successful_calls: int
    failed_calls: int
    retransmissions: int
    stats: dict[str, str]
    """The last row of the `-trace_stat` file, by column (cumulative columns end in `(C)`)."""
    errors: str
    """The `-trace_err` log: every unexpected message and aborted call."""
    screen: str
    output: str
    """What SIPp wrote to stdout and stderr (scenario load errors land here)."""
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_ALL_SUCCEEDED and self.failed_calls == 0

    def describe(self) -> str:
        """A summary for assertion messages."""
        return (
            f"sipp exit {self.returncode} (timed out: {self.timed_out}), "
            f"{self.successful_calls} successful / {self.failed_calls} failed calls, "
            f"files in {self.workdir}\n{' '.join(self.command)}\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- output ---\n{self.output[-2000:]}"
        )


def require_sipp() -> str:
    if SIPP is None:
        raise SippNotInstalled("sipp is not installed (Debian package sip-tester)")
    return SIPP


def scenario_path(name: str) -> Path:
    """A scenario of sipp-scenarios/ by file name, with or without `.xml`."""
    path = SCENARIOS / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def free_media_port(host: str = "127.0.0.1") -> int:
    """An even port with the three above it free too: SIPp binds its media port and port + 2
    (video), and RTCP conventionally takes each one's odd neighbour. SIPp's own default (6000) is
    shared by every instance, so each one needs its own."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no free block of four UDP ports")


@dataclass
class SippOptions:
    """One SIPp run. `scenario` is a file (see `scenario_path`) or a built-in name for `-sn`
    (`uac`, `uas`, …); `remote` is `host:port`, or None for a UAS."""

    scenario: Path | str
    remote: str | None = None
    local_ip: str = "127.0.0.1"
    local_port: int | None = None
    """None: SIPp takes a free port (fine for a UAC, a UAS needs a known one)."""
    media_port: int | None = None
    """None: a free one is picked (SIPp's default 6000 would clash between instances)."""
    transport: str = "u1"
    """`-t`: u1 one UDP socket, un one per call, t1 / tn likewise over TCP."""
    service: str | None = None
    """`-s`: the Request-URI user."""
    rate: float | None = None
    rate_period_ms: int | None = None
    call_limit: int | None = None
    calls: int | None = 1
    """`-m`: SIPp exits once this many calls are processed; None runs until stopped."""
    keys: Mapping[str, str] = field(default_factory=dict)
    """`-key name value`: `[name]` in the scenario."""
    injection_file: Path | None = None
    """`-inf`: a CSV whose fields are `[field0]`, `[field1]`, … per call."""
    recv_timeout_ms: int | None = None
    """`-recv_timeout`: how long a `<recv>` waits before the call fails."""
    rtp_echo: bool = False
    extra_args: Sequence[str] = ()


def sipp_command(options: SippOptions, workdir: Path) -> list[str]:
    scenario = options.scenario
    if isinstance(scenario, Path):
        cmd = [require_sipp(), "-sf", str(scenario)]
    else:
        cmd = [require_sipp(), "-sn", scenario]
    if options.remote is not None:
        cmd.append(options.remote)
    media_port = options.media_port or free_media_port(options.local_ip)
    cmd += ["-i", options.local_ip, "-mi", options.local_ip, "-mp", str(media_port)]
    cmd += ["-t", options.transport, "-nostdin"]
    if options.local_port is not None:
        cmd += ["-p", str(options.local_port)]
    if options.service is not None:
        cmd += ["-s", options.service]
    if options.rate is not None:
        cmd += ["-r", f"{options.rate:g}"]
    if options.rate_period_ms is not None:
        cmd += ["-rp", str(options.rate_period_ms)]
    if options.call_limit is not None:
        cmd += ["-l", str(options.call_limit)]
    if options.calls is not None:
        cmd += ["-m", str(options.calls)]
    for name, value in options.keys.items():
        cmd += ["-key", name, value]
    if options.injection_file is not None:
        cmd += ["-inf", str(options.injection_file)]
    if options.recv_timeout_ms is not None:
        cmd += ["-recv_timeout", str(options.recv_timeout_ms)]
    if options.rtp_echo:
        cmd.append("-rtp_echo")
    cmd += ["-trace_stat", "-stf", str(workdir / "stat.csv")]
    cmd += ["-trace_err", "-error_file", str(workdir / "errors.log")]
    cmd += ["-trace_screen", "-screen_file", str(workdir / "screen.log")]
    cmd += list(options.extra_args)
    return cmd


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _last_stats(path: Path) -> dict[str, str]:
    rows = list(csv.reader(_read(path).splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _count(stats: Mapping[str, str], column: str) -> int:
    try:
        return int(stats.get(column, "0"))
    except ValueError:
        return 0


class SippProcess:
    """A running SIPp. `start_sipp` makes one; `wait` (or `stop`) gives its `SippResult`."""

    def __init__(
        self, command: list[str], process: asyncio.subprocess.Process, workdir: Path
    ) -> None:
        self.command = command
        self.process = process
        self.workdir = workdir

    async def wait(self, timeout: float) -> SippResult:
        """Wait for SIPp to exit; past `timeout` seconds kill it (the result says timed_out)."""
        timed_out = False
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await self.kill()
        return self._result(timed_out)

    async def stop(self, grace: float = 5.0) -> SippResult:
        """SIGUSR1 asks SIPp to place no new calls and exit once the live ones end (how a UAS
        that runs with no call count is ended); killed if it has not exited after `grace`."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGUSR1)
        return await self.wait(grace)

    async def kill(self) -> None:
        if self.process.returncode is None:
            # SIPp runs in a session of its own; its `exec` actions' children go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    def _result(self, timed_out: bool) -> SippResult:
        stats = _last_stats(self.workdir / "stat.csv")
        return SippResult(
            command=self.command,
            returncode=None if timed_out else self.process.returncode,
            timed_out=timed_out,
            successful_calls=_count(stats, "SuccessfulCall(C)"),
            failed_calls=_count(stats, "FailedCall(C)"),
            retransmissions=_count(stats, "Retransmissions(C)"),
            stats=stats,
            errors=_read(self.workdir / "errors.log"),
            screen=_read(self.workdir / "screen.log"),
            output=_read(self.workdir / "output.log"),
            workdir=self.workdir,
        )


async def start_sipp(options: SippOptions, workdir: Path | None = None) -> SippProcess:
    """Start SIPp in the background; its files go to `workdir` (a new temporary directory when
    None, left in place for post-mortems)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sipp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = sipp_command(options, workdir)
    with (workdir / "output.log").open("wb") as output:
        # A file rather than a pipe: SIPp redraws its screen every second, and an unread pipe
        # would block it mid-test.
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    return SippProcess(command, process, workdir)


async def run_sipp(
    options: SippOptions, timeout: float = 60.0, workdir: Path | None = None
) -> SippResult:
    """Run SIPp to its end (or kill it at `timeout` seconds) and return what it reported."""
    process = await start_sipp(options, workdir)
    try:
        return await process.wait(timeout)
    finally:
        await process.kill()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload: bytes, src: Address, dst: Address, ident: int) -> bytes:
    src_ip, dst_ip = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    udp_length = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_length, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + udp_length,
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,
        socket.IPPROTO_UDP,
        0,
        src_ip,
        dst_ip,
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ethernet = bytes.fromhex("020000000002020000000001") + struct.pack("!H", 0x0800)
    return ethernet + ip + udp


def rtp_packet(
    payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    return (
        struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | payload_type,
            seq & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        + payload
    )


def write_rtp_pcap(
    pcap_path: Path,
    packets: Iterable[tuple[float, bytes]],
    src: Address = PCAP_SRC,
    dst: Address = PCAP_DST,
) -> int:
    """A libpcap file (microsecond timestamps, Ethernet link type) of `(send time in seconds,
    RTP packet)` pairs; SIPp replays the packets with the file's spacing. Returns the count."""
    count = 0
    with pcap_path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for count, (at, rtp) in enumerate(packets, start=1):
            frame = _udp_frame(rtp, src, dst, count)
            micros = round(at * 1_000_000)
            out.write(
                struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, *[len(frame)] * 2)
            )
            out.write(frame)
    return count


def read_wav(wav_path: Path) -> tuple[Pcm16, int]:
    """16-bit PCM samples (channels mixed down to mono) and the sample rate."""
    with wave.open(str(wav_path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{wav_path}: {wav.getsampwidth() * 8}-bit samples, expected 16")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).round()
    return data.astype(np.int16), rate


def g711_packets(
    samples: Pcm16,
    codec: Codec = "PCMU",
    ssrc: int = 0x5170_0001,
    first_seq: int = 0,
    first_timestamp: int = 0,
    start: float = 0.0,
) -> list[tuple[float, bytes]]:
    """8 kHz samples as 20 ms G.711 RTP packets, the last one padded with silence; the first one
    carries the marker (the start of a talkspurt)."""
    encode = ulaw_encode if codec == "PCMU" else alaw_encode
    padded_length = -(-len(samples) // SAMPLES_PER_PACKET) * SAMPLES_PER_PACKET
    padded = np.zeros(padded_length, dtype=np.int16)
    padded[: len(samples)] = samples
    packets = []
    for index in range(padded_length // SAMPLES_PER_PACKET):
        frame = padded[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET]
        rtp = rtp_packet(
            PAYLOAD_TYPES[codec],
            first_seq + index,
            first_timestamp + index * SAMPLES_PER_PACKET,
            ssrc,
            encode(frame),
            marker=index == 0,
        )
        packets.append((start + index * PTIME_MS / 1000, rtp))
    return packets


def wav_to_pcap(
    wav_path: Path,
    pcap_path: Path,
    codec: Codec = "PCMU",
    ssrc: int = 0x5170_0001,
    src: Address = PCAP_SRC,
    dst: Address = PCAP_DST,
) -> int:
    """The pcap SIPp's `play_pcap_audio` replays for a WAV of any rate (16-bit, mono or
    stereo): resampled to 8 kHz, G.711 in 20 ms RTP packets. Returns the packet count."""
    samples, rate = read_wav(wav_path)
    packets = g711_packets(resample(samples, rate, RATE), codec, ssrc)
    return write_rtp_pcap(pcap_path, packets, src, dst)


def dtmf_packets(
    digit: str,
    duration_ms: int = 100,
    marker: bool = True,
    volume: int = 10,
    end_packets: int = 3,
    payload_type: int = TELEPHONE_EVENT_PT,
    ssrc: int = 0x5170_0002,
    first_seq: int = 0,
    timestamp: int = 0,
    start: float = 0.0,
) -> list[tuple[float, bytes]]:
    """One RFC 4733 event as a sender puts it on the wire (§2.5.1): every packet has the event's
    start timestamp and the duration so far, one per 20 ms; the end packet (E bit, final
    duration) goes `end_packets` times. `marker=False` leaves out the marker bit some senders
    forget on the first packet."""
    event = DTMF_EVENTS[digit.upper()]
    ticks = max(1, duration_ms // PTIME_MS)
    durations = [(i + 1) * SAMPLES_PER_PACKET for i in range(ticks)]
    packets = []
    for index, duration in enumerate(durations + [durations[-1]] * (end_packets - 1)):
        end = index >= ticks - 1
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration)
        rtp = rtp_packet(
            payload_type, first_seq + index, timestamp, ssrc, payload, marker and index == 0
        )
        packets.append((start + index * PTIME_MS / 1000, rtp))
    return packets


def dtmf_to_pcap(
    digits: str,
    pcap_path: Path,
    duration_ms: int = 100,
    gap_ms: int = 100,
    marker: bool = True,
    end_packets: int = 3,
) -> int:
    """A pcap of DTMF `digits` as RFC 4733 events, `gap_ms` apart; each event starts a new RTP
    timestamp, as a sender's clock keeps running between events."""
    packets: list[tuple[float, bytes]] = []
    at = 0.0
    for digit in digits:
        timestamp = round(at * RATE)
        event = dtmf_packets(
            digit,
            duration_ms,
            marker,
            end_packets=end_packets,
            first_seq=len(packets),
            timestamp=timestamp,
            start=at,
        )
        packets += event
        at = event[-1][0] + (PTIME_MS + gap_ms) / 1000
    return write_rtp_pcap(pcap_path, packets)


@dataclass(frozen=True)
class RtpReceived:
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpReceived:
    first, second, seq, timestamp, ssrc = struct.unpack_from("!BBHII", data)
    header = 12 + 4 * (first & 0x0F)
    return RtpReceived(second & 0x7F, bool(second & 0x80), seq, timestamp, ssrc, data[header:])
