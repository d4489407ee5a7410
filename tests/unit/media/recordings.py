"""Speech for the tests: real human recordings with transcripts (Debian's pocketsphinx-testdata)
and phrases synthesized by espeak-ng."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np

from media.frames import Pcm16
from media.resample import resample

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox() -> list[tuple[str, Path, str]]:
    """(name, wav path, reference transcript) of each LibriVox utterance."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition("(")
        name = name.strip(" )")
        out.append(
            (name, LIBRIVOX / f"{name}.wav", text.replace("<s>", "").replace("</s>", "").strip())
        )
    return out


def load_wav(path: Path) -> tuple[Pcm16, int]:
    with wave.open(str(path)) as clip:
        samples = np.frombuffer(clip.readframes(clip.getnframes()), "<i2").astype(np.int16)
        return samples, clip.getframerate()


def espeak(text: str, rate: int = 16_000) -> Pcm16:
    """`text` spoken by espeak-ng (Debian's espeak-ng package), resampled to `rate`."""
    made = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True)
    with wave.open(io.BytesIO(made.stdout)) as clip:
        samples = np.frombuffer(clip.readframes(clip.getnframes()), "<i2").astype(np.int16)
        return resample(samples, clip.getframerate(), rate)
