"""The speech models load part by part: a voice that cannot load is unavailable, with its
reason, and the others speak; one known missing beforehand is never even tried."""

from __future__ import annotations

from bridge.voice_runtime import VoiceRuntime, VoiceSource
from media.tts import Voice, joe


def _broken() -> Voice:
    raise FileNotFoundError("the voice files went away")


def _never_loaded() -> Voice:
    raise AssertionError("a voice known to be missing must not be loaded")


async def test_one_voice_failing_leaves_the_other_speaking() -> None:
    runtime = VoiceRuntime(voices={"male": VoiceSource(joe, lambda: None),
                                   "female": VoiceSource(_broken, lambda: None)})  # fmt: skip
    try:
        assert runtime.voice_problem("female") is None, "not known before loading"
        models = await runtime.ready()
        assert runtime.state == "ok"
        assert set(models.speakers) == {"male"}
        assert runtime.voices() == {
            "male": "ok",
            "female": "unavailable: FileNotFoundError: the voice files went away",
        }
        problem = runtime.voice_problem("female")
        assert problem is not None and "the voice files went away" in problem
        assert runtime.voice_problem("male") is None
    finally:
        runtime.close()


async def test_a_voice_known_missing_is_refused_before_any_load() -> None:
    runtime = VoiceRuntime(
        voices={
            "male": VoiceSource(joe, lambda: None),
            "female": VoiceSource(_never_loaded, lambda: "festival is not installed"),
        }
    )
    try:
        assert runtime.state == "not_loaded"
        assert runtime.voice_problem("female") == (
            "voice female is not available on this server: festival is not installed"
        )
        models = await runtime.ready()
        assert set(models.speakers) == {"male"}
    finally:
        runtime.close()
