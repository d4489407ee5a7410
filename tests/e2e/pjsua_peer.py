"""A pjsua2 (pjproject's own SWIG binding) caller, run as a subprocess by the interop test:

    python -m tests.e2e.pjsua_peer --target sip:NUMBER@127.0.0.1:PORT \\
        --play a.wav --play b.wav --record-dir DIR --calls 2 --hold-seconds 12

It places the calls at once (pjsua2-python is built with at most 4), streams one WAV into each
(the `--play` files in turn), records what the far end sends into DIR/call-<i>.wav, hangs each
call up `--hold-seconds` after it is answered and prints a JSON summary as its last stdout line.

Why a subprocess: pjsua2 runs its own media clock thread and aborts the whole process on misuse
(a `pj.Call` collected too early, pjsua objects outliving `libDestroy()`, an unregistered
thread); an abort there must fail one test, not kill pytest. The DESIGN.md §7 rules it follows:
null sound device, codec VAD off, a reference kept to every call, player and recorder until
the end, everything dropped before `libDestroy()`, and one thread only: `threadCnt = 0` and
`mainThreadOnly` make pjsua deliver every callback inside `libHandleEvents()` on the main thread,
which `libCreate()` registered, so no other thread ever calls into pjsua2.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

CLOCK_RATE = 16_000
"""The conference bridge's rate; the played WAVs are written at it so no port resamples."""
MAX_CALLS = 4
"""pjsua2-python is compiled with pjproject's default PJSUA_MAX_CALLS (DESIGN.md §3)."""


@dataclass
class CallSummary:
    index: int
    call_id: str = ""
    states: list[tuple[str, int]] = field(default_factory=list)
    """(state text, last SIP status code) at every state change, as pjsua reported them."""
    connected: bool = False
    duration: float = 0.0
    """Seconds from answer to hang-up (pjsua's connectDuration)."""
    codec: str = ""
    codec_clock_rate: int = 0
    recorded: str = ""
    hung_up_by: str = ""
    """"peer" when we hung up after the hold time, "remote" when the far end did."""
    last_status: int = 0
    last_reason: str = ""
    rtp: dict[str, float] = field(default_factory=dict)
    """The audio stream's RTP counters just before our hang-up (the stream is gone after)."""


class PeerCall(pj.Call):  # type: ignore[misc]
    """One outgoing call: plays `play` into the call and records the far end to `record`."""

    def __init__(self, account: pj.Account, summary: CallSummary, play: Path, record: Path):
        super().__init__(account)
        self.summary = summary
        self.play = play
        self.record = record
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.answered_at: float | None = None
        self.disconnected = False
        self.hangup_sent = False
        self.dtmf_sent = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.summary.call_id = info.callIdString
        self.summary.states.append((info.stateText, info.lastStatusCode))
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.summary.connected = True
            self.answered_at = time.monotonic()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.summary.duration = info.connectDuration.sec + info.connectDuration.msec / 1000
            self.summary.last_status = info.lastStatusCode
            self.summary.last_reason = info.lastReason
            self.summary.hung_up_by = self.summary.hung_up_by or "remote"
            self.disconnected = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            stream = self.getStreamInfo(index)
            self.summary.codec = stream.codecName
            self.summary.codec_clock_rate = stream.codecClockRate
            audio = self.getAudioMedia(index)
            # A re-INVITE brings the media state here again: connect the ports only once.
            if self.player is None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(str(self.play), pj.PJMEDIA_FILE_NO_LOOP)
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(str(self.record))
                self.summary.recorded = str(self.record)
            assert self.player is not None and self.recorder is not None
            self.player.startTransmit(audio)
            audio.startTransmit(self.recorder)

    def hang_up(self) -> None:
        if not self.hangup_sent and not self.disconnected:
            self.hangup_sent = True
            self.summary.rtp = self.rtp_stats()
            self.summary.hung_up_by = "peer"
            self.hangup(pj.CallOpParam())

    def rtp_stats(self) -> dict[str, float]:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                stat = self.getStreamStat(index)
                rx, tx = stat.rtcp.rxStat, stat.rtcp.txStat
                return {
                    "rx_packets": rx.pkt,
                    "rx_loss": rx.loss,
                    "rx_dup": rx.dup,
                    "rx_reorder": rx.reorder,
                    "rx_discard": rx.discard,
                    "rx_jitter_mean_ms": rx.jitterUsec.mean / 1000,
                    "rx_jitter_max_ms": rx.jitterUsec.max / 1000,
                    "tx_packets": tx.pkt,
                    "jb_lost": stat.jbuf.lost,
                    "jb_discard": stat.jbuf.discard,
                    "jb_empty": stat.jbuf.empty,
                }
        return {}


def endpoint(log_file: Path | None, log_level: int) -> pj.Endpoint:
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.maxCalls = MAX_CALLS
    config.uaConfig.userAgent = "voicebridge-interop-pjsua2"
    config.medConfig.clockRate = CLOCK_RATE
    config.medConfig.sndClockRate = CLOCK_RATE
    # G.711 codecs default to VAD on, which would stop sending RTP in the caller's pauses.
    config.medConfig.noVad = True
    config.medConfig.threadCnt = 1
    config.logConfig.consoleLevel = 0
    config.logConfig.level = log_level
    if log_file is not None:
        config.logConfig.filename = str(log_file)
    ep.libInit(config)
    transport = pj.TransportConfig()
    transport.port = 0
    transport.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    return ep


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Places the calls and prints the summary before tearing pjsua down, so that a crash in
    the teardown still leaves the calls' outcome to read."""
    record_dir = Path(args.record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    plays = [Path(p) for p in args.play]
    ep = endpoint(record_dir / "pjsua.log" if args.log_level else None, args.log_level)
    account_config = pj.AccountConfig()
    account_config.idUri = "sip:pjsua@127.0.0.1"
    # RTP on loopback too, so the SDP never names an address the bridge cannot reach.
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(account_config)
    for codec in args.prefer:
        # The highest priority puts the codec first in pjsua's SDP offer.
        ep.codecSetPriority(codec, 255)
    codecs = {c.codecId: c.priority for c in ep.codecEnum2()}

    calls: list[PeerCall] = []
    for index in range(args.calls):
        call = PeerCall(
            account, CallSummary(index), plays[index % len(plays)], record_dir / f"call-{index}.wav"
        )
        calls.append(call)
        call.makeCall(args.target, pj.CallOpParam(True))

    deadline = time.monotonic() + args.hold_seconds + args.timeout
    while time.monotonic() < deadline and not all(c.disconnected for c in calls):
        ep.libHandleEvents(10)
        now = time.monotonic()
        for call in calls:
            if call.answered_at is None:
                continue
            if args.dtmf and not call.dtmf_sent and now - call.answered_at >= args.dtmf_at:
                call.dtmf_sent = True
                # RFC 4733 events, pjsua's default way of sending digits.
                call.dialDtmf(args.dtmf)
            if now - call.answered_at >= args.hold_seconds:
                call.hang_up()
    if not all(c.disconnected for c in calls):
        ep.hangupAllCalls()
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle and not all(c.disconnected for c in calls):
            ep.libHandleEvents(10)

    outcome: dict[str, Any] = {
        "calls": [asdict(c.summary) for c in calls],
        "codecs": codecs,
        "all_disconnected": all(c.disconnected for c in calls),
    }
    print(json.dumps(outcome), flush=True)
    # The recorder writes the WAV header's lengths when destroyed, and every pjsua object must
    # be gone before libDestroy() or the process aborts: drop them now, calls last.
    for each in calls:
        each.player = None
        each.recorder = None
    # Loop variables are references too: a call left bound to one outlives libDestroy().
    del call, each
    calls.clear()
    gc.collect()
    account.shutdown()
    del account
    gc.collect()
    ep.libDestroy()
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--target", required=True, help="SIP URI to call")
    parser.add_argument("--play", action="append", required=True, help="WAV file (repeatable)")
    parser.add_argument("--record-dir", required=True)
    parser.add_argument("--calls", type=int, default=1, choices=range(1, MAX_CALLS + 1))
    parser.add_argument("--hold-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=15.0, help="extra seconds to wait")
    parser.add_argument(
        "--prefer", action="append", default=[], help="codec id to offer first, e.g. G722/16000"
    )
    parser.add_argument("--dtmf", default="", help="digits to send in each call")
    parser.add_argument("--dtmf-at", type=float, default=5.0, help="seconds after the answer")
    parser.add_argument("--log-level", type=int, default=5, help="pjsua log level; 0 = none")
    outcome = run(parser.parse_args(argv))
    return 0 if all(c["connected"] for c in outcome["calls"]) else 1


if __name__ == "__main__":
    sys.exit(main())
