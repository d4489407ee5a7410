"""What every voice session in a process shares: the models, the inference pool and the
voice metrics. Models take seconds to load and hundreds of MB, so they load once, in a worker
thread (the event loop keeps serving meanwhile), and sessions wait for `ready()`.

VAD and ASR are required: without them no call can be taken. Each voice loads on its own, and
one that cannot (festival not installed, say) is recorded as unavailable with the reason while
the others speak: agents of that voice are refused, not answered into silence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from prometheus_client import CollectorRegistry

from bridge.models import VoiceType
from bridge.voice_metrics import VoiceMetrics
from media.asr import MoonshineModel
from media.festival import slt, slt_missing
from media.inference import InferencePool
from media.tts import Speaker, Voice, joe, joe_missing
from media.vad import SileroModel

log = logging.getLogger(__name__)

LoadState = Literal["not_loaded", "loading", "ok", "failed"]


@dataclass(frozen=True)
class VoiceSource:
    load: Callable[[], Voice]
    missing: Callable[[], str | None]
    """Why the voice cannot load here, found without loading it."""


VOICES: Mapping[VoiceType, VoiceSource] = {
    "male": VoiceSource(joe, joe_missing),
    "female": VoiceSource(slt, slt_missing),
}


class VoiceUnavailable(Exception):
    """An agent's voice cannot speak on this server; the message says why."""


@dataclass(frozen=True)
class Models:
    vad: SileroModel
    asr: MoonshineModel
    speakers: dict[VoiceType, Speaker]


def load_models(
    sources: Mapping[VoiceType, VoiceSource], unavailable: dict[VoiceType, str]
) -> Models:
    """Load VAD, ASR and every voice of `sources` not already in `unavailable`; a voice that
    fails to load is added there with the reason. VAD or ASR failing raises."""
    started = time.perf_counter()
    wanted = [name for name in sources if name not in unavailable]
    log.info(
        "loading speech models: VAD (Silero), ASR (Moonshine base), voices %s",
        ", ".join(wanted) or "none",
    )
    vad = SileroModel()
    asr = MoonshineModel()
    # The first run of an onnxruntime session allocates its buffers; a caller should not wait
    # for that, so run each model once on a second of silence.
    asr.transcribe(np.zeros(16_000, np.float32))
    log.info("loaded VAD and ASR in %.1f s", time.perf_counter() - started)
    speakers: dict[VoiceType, Speaker] = {}
    for name in wanted:
        began = time.perf_counter()
        try:
            speaker = Speaker(sources[name].load())
            list(speaker.frames("Hello."))
        except Exception as exc:
            unavailable[name] = f"{type(exc).__name__}: {exc}"
            log.warning("voice %s unavailable: %s", name, unavailable[name])
            continue
        speakers[name] = speaker
        log.info("loaded voice %s in %.1f s", name, time.perf_counter() - began)
    log.info("speech models loaded in %.1f s", time.perf_counter() - started)
    return Models(vad, asr, speakers)


class VoiceRuntime:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        workers: int | None = None,
        voices: Mapping[VoiceType, VoiceSource] = VOICES,
    ) -> None:
        self.pool = InferencePool(workers)
        self.metrics = VoiceMetrics(registry or CollectorRegistry())
        self._voices = voices
        self._models: Models | None = None
        self._loading: asyncio.Task[Models] | None = None
        self.failure: str | None = None
        # Known before any model loads, so that agents and calls can be refused at once.
        self.unavailable: dict[VoiceType, str] = {}
        for name, source in voices.items():
            missing = source.missing()
            if missing is not None:
                self.unavailable[name] = missing
                log.warning("voice %s unavailable: %s", name, missing)

    async def ready(self) -> Models:
        """The models, loading them on first use; concurrent callers share one load."""
        if self._models is not None:
            return self._models
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(
                asyncio.to_thread(load_models, self._voices, self.unavailable)
            )
        try:
            self._models = await asyncio.shield(self._loading)
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise
        return self._models

    @property
    def loaded(self) -> bool:
        return self._models is not None

    @property
    def state(self) -> LoadState:
        if self._models is not None:
            return "ok"
        if self.failure is not None:
            return "failed"
        return "not_loaded" if self._loading is None else "loading"

    def voice_problem(self, voice: VoiceType) -> str | None:
        """Why `voice` cannot speak here, or None while it can (or may, not yet loaded)."""
        reason = self.unavailable.get(voice)
        if reason is not None:
            return f"voice {voice} is not available on this server: {reason}"
        return None

    def voices(self) -> dict[str, str]:
        """Each voice: "ok", "not_loaded" (yet) or "unavailable: why"."""
        result: dict[str, str] = {}
        for name in self._voices:
            if name in self.unavailable:
                result[name] = f"unavailable: {self.unavailable[name]}"
            elif self._models is not None and name in self._models.speakers:
                result[name] = "ok"
            else:
                result[name] = "not_loaded"
        return result

    def close(self) -> None:
        self.pool.shutdown()
