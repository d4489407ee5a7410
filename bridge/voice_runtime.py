"""What every voice session in a process shares: the models, the inference pool and the
voice metrics. Models take seconds to load and hundreds of MB, so they load once, in a worker
thread (the event loop keeps serving meanwhile), and sessions wait for `ready()`."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry

from bridge.models import VoiceType
from bridge.voice_metrics import VoiceMetrics
from media.asr import MoonshineModel
from media.inference import InferencePool
from media.tts import Speaker, joe
from media.vad import SileroModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    vad: SileroModel
    asr: MoonshineModel
    speakers: dict[VoiceType, Speaker]


def load_models() -> Models:
    from media.festival import slt

    started = time.perf_counter()
    asr = MoonshineModel()
    speakers: dict[VoiceType, Speaker] = {"male": Speaker(joe()), "female": Speaker(slt())}
    # The first run of an onnxruntime session allocates its buffers; a caller should not wait
    # for that, so run each model once on a second of silence.
    asr.transcribe(np.zeros(16_000, np.float32))
    for speaker in speakers.values():
        list(speaker.frames("Hello."))
    log.info("voice models loaded in %.1f s", time.perf_counter() - started)
    return Models(SileroModel(), asr, speakers)


class VoiceRuntime:
    def __init__(
        self, registry: CollectorRegistry | None = None, workers: int | None = None
    ) -> None:
        self.pool = InferencePool(workers)
        self.metrics = VoiceMetrics(registry or CollectorRegistry())
        self._models: Models | None = None
        self._loading: asyncio.Task[Models] | None = None

    async def ready(self) -> Models:
        """The models, loading them on first use; concurrent callers share one load."""
        if self._models is not None:
            return self._models
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(asyncio.to_thread(load_models))
        self._models = await asyncio.shield(self._loading)
        return self._models

    @property
    def loaded(self) -> bool:
        return self._models is not None

    def close(self) -> None:
        self.pool.shutdown()
