"""Prometheus metrics of the voice pipeline: how long callers wait, and where the time goes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
_STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class VoiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.voice_to_voice = Histogram(
            "voicebridge_voice_to_voice_seconds",
            "From the end of the caller's speech to the first agent audio of the reply.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.asr_wait = Histogram(
            "voicebridge_asr_final_wait_seconds",
            "From the confirmed end of a turn to its transcript (0 when the speculative final "
            "was ready).",
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.asr_compute = Histogram(
            "voicebridge_asr_compute_seconds",
            "Model time of a final transcript (encoder and decoder).",
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.dialog_first_text = Histogram(
            "voicebridge_dialog_first_text_seconds",
            "From a caller turn to the dialog engine's first text.",
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.tts = Histogram(
            "voicebridge_tts_piece_seconds",
            "Synthesis time of one reply piece (a clause or sentence), queueing included.",
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.sessions = Gauge(
            "voicebridge_voice_sessions",
            "Voice sessions running in this process.",
            registry=registry,
        )
        self.barge_ins = Counter(
            "voicebridge_barge_ins",
            "Caller speech over the agent by outcome (interrupted, resumed).",
            ["outcome"],
            registry=registry,
        )
