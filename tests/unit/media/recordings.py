"""Real human recordings with transcripts, from Debian's pocketsphinx-testdata package."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.frames import Pcm16

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
