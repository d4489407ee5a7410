"""Interop with baresip (Debian's package): a headless baresip calls the bridge and plays a
LibriVox recording from a WAV; the stored conversation must hold the caller's words and end with
the caller's hang-up, and what baresip heard, dumped by its `sndfile` filter, must be the
greeting.

baresip 1.0.0 (Debian bookworm) has no null audio device and its `aufile` module is a source
only, so the player is `aubridge` on a device nothing else uses (the decoded audio is dropped)
and `sndfile` writes what each call decodes to `dump-<time>-dec.wav`. `aufile` needs its WAV at
the rate of the codec, so each run pins the account to one codec and writes the WAV at its rate.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bridge.sip.useragent import UserAgent
from media.asr import MoonshineModel
from media.resample import resample
from media.wer import word_error_rate
from tests.e2e.phone import (
    GREETING,
    NUMBER,
    Client,
    ended,
    make_agent,
    the_conversation,
    write_wav,
)
from tests.ports import free_port
from tests.unit.media.recordings import librivox, load_wav

BARESIP = shutil.which("baresip")

pytestmark = pytest.mark.skipif(
    BARESIP is None, reason="baresip is not installed (Debian package, scripts/apt-packages.txt)"
)

LEAD_IN_S = 4.0
"""Silence before the caller speaks, so the greeting is heard out rather than barged in on."""
TAIL_S = 5.0
"""Silence after the caller's words, for them to be transcribed before the hang-up: baresip
hangs up when `aufile` reaches the end of the WAV ("menu: audio error (0,end of file)")."""
BACKSTOP_S = 15
"""baresip quits by itself (`-t`) this long after its WAV's end should have ended the call;
normally the test stops it (SIGTERM, a clean exit 0) as soon as it logs the call's end."""
CALL_OVER = "terminated (duration"

MODULES = ("aufile.so", "aubridge.so", "sndfile.so")


def write_config(directory: Path, port: int, wav: Path, dumps: Path, codec_module: str) -> None:
    directory.mkdir(parents=True)
    lines = [
        "poll_method epoll",
        f"sip_listen 127.0.0.1:{port}",
        # Loopback for RTP too: baresip would otherwise put the host's first interface in its
        # SDP.
        "net_interface 127.0.0.1",
        "call_local_timeout 20",
        "call_max_calls 1",
        f"audio_source aufile,{wav}",
        "audio_player aubridge,voicebridge-test-nowhere",
        "audio_alert aubridge,voicebridge-test-nowhere",
        "audio_level no",
        f"snd_path {dumps}",
        "module_path /usr/lib/baresip/modules",
        f"module {codec_module}",
        *(f"module {m}" for m in MODULES),
        "module_tmp account.so",
        "module_app menu.so",
    ]
    (directory / "config").write_text("\n".join(lines) + "\n")
    # No registrar: regint=0 keeps baresip from sending REGISTER.
    (directory / "accounts").write_text("<sip:baresip@127.0.0.1>;regint=0\n")


@pytest.mark.parametrize(
    ("codec", "codec_module", "rate"),
    [("G722", "g722.so", 16_000), ("PCMU", "g711.so", 8000)],
    ids=["g722", "pcmu"],
)
async def test_baresip_calls_in_plays_a_recording_and_hangs_up(
    phone: tuple[Client, UserAgent],
    auth: dict[str, str],
    asr: MoonshineModel,
    tmp_path: Path,
    codec: str,
    codec_module: str,
    rate: int,
) -> None:
    assert BARESIP is not None
    client, ua = phone
    await make_agent(client, auth)
    _name, path, reference = librivox()[0]
    human, human_rate = load_wav(path)
    padded = np.concatenate(
        [
            np.zeros(int(LEAD_IN_S * rate), np.int16),
            resample(human, human_rate, rate),
            np.zeros(int(TAIL_S * rate), np.int16),
        ]
    )
    wav = write_wav(tmp_path / "caller.wav", padded, rate)
    seconds = padded.size / rate
    # What baresip hears up to the end of the caller's words can only be the greeting: the
    # bridge's answer cannot begin before them.
    greeting_window_s = LEAD_IN_S + human.size / human_rate
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    config = tmp_path / "baresip"
    write_config(config, free_port(), wav, dumps, codec_module)
    log = tmp_path / "baresip.log"

    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            BARESIP,
            "-4",
            "-s",
            "-f",
            str(config),
            "-e",
            f"/dial sip:{NUMBER}@127.0.0.1:{ua.port}",
            "-t",
            str(int(seconds) + BACKSTOP_S),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds + BACKSTOP_S
            while process.returncode is None and loop.time() < deadline:
                if CALL_OVER in log.read_text(errors="replace"):
                    process.terminate()
                    break
                await asyncio.sleep(0.2)
            returncode = await asyncio.wait_for(process.wait(), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    trace = log.read_text(errors="replace")
    assert returncode == 0, trace[-4000:]
    assert "Call established" in trace, trace[-4000:]
    assert CALL_OVER in trace, trace[-4000:]
    # baresip, not the -t quit, ended the call: at the end of its WAV, with a BYE.
    assert "audio error (0,end of file)" in trace, trace[-4000:]
    assert re.search(r"^BYE sip:", trace, re.MULTILINE), trace[-4000:]
    call_id = re.search(r"^Call-ID: (\S+)", trace, re.MULTILINE)
    assert call_id is not None, trace[-4000:]

    conversation = await the_conversation(client, auth, ended)
    assert conversation["channel"] == "phone"
    assert conversation["call"]["call_id"] == call_id[1]
    assert conversation["call"]["codec"] == codec
    assert conversation["end_reason"] == "caller_hangup", trace[-4000:]
    assert conversation["status"] == "completed"
    messages = conversation["messages"]
    assert messages[0]["type"] == "agent"
    assert word_error_rate(GREETING, messages[0]["content"]) == 0, messages
    said = " ".join(m["content"] for m in messages if m["type"] == "user")
    assert word_error_rate(reference, said) <= 0.25, said

    heard_files = sorted(dumps.glob("dump-*-dec.wav"))
    assert len(heard_files) == 1, (list(dumps.iterdir()), trace[-4000:])
    heard, heard_rate = load_wav(heard_files[0])
    head = resample(heard[: int(greeting_window_s * heard_rate)], heard_rate, 16_000)
    text = asr.transcribe(head.astype(np.float32) / 32768.0).text
    assert word_error_rate(GREETING, text) <= 0.2, text
    assert ua.calls == []
