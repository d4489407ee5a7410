"""Barge-in on real audio: the caller's speech pauses the agent fast; echo and noise do not."""

from __future__ import annotations

import numpy as np
import pytest

from media import g711
from media.barge_in import BargeIn, Decision, is_backchannel, max_normalized_correlation
from media.frames import Pcm16
from media.resample import resample
from media.tts import Speaker
from media.vad import SileroModel, SileroStream
from tests.unit.media.recordings import librivox, load_wav


@pytest.fixture(scope="module")
def silero() -> SileroModel:
    return SileroModel()


@pytest.fixture(scope="module")
def agent_frames(male_speaker: Speaker) -> list[Pcm16]:
    text = "Our opening hours are nine to five on weekdays, and ten to two on Saturdays."
    return male_speaker.phrase(text)


def _frames(audio: Pcm16) -> list[Pcm16]:
    return [audio[i : i + 320] for i in range(0, audio.size - 319, 320)]


def _run(
    detector: BargeIn, silero: SileroModel, agent: list[Pcm16], caller: list[Pcm16]
) -> list[tuple[int, Decision]]:
    stream = SileroStream(silero, 16000)
    decisions = []
    for i, heard in enumerate(caller):
        speaking = i < len(agent)
        if speaking:
            detector.agent_frame(agent[i])
        decision = detector.caller_frame(heard, stream.push(heard), speaking)
        if decision is not Decision.NONE:
            decisions.append((i, decision))
    return decisions


def test_real_speech_over_the_agent_pauses_within_200ms_and_interrupts(
    silero: SileroModel, agent_frames: list[Pcm16]
) -> None:
    _name, path, reference = librivox()[1]
    samples, rate = load_wav(path)
    speech = resample(samples, rate, 16000)
    onset_frame = 25  # the caller starts 500 ms into the agent's sentence
    caller = np.concatenate((np.zeros(onset_frame * 320, np.int16), speech))
    frames = _frames(caller)
    levels = [np.sqrt(np.mean(f.astype(float) ** 2)) for f in _frames(speech)]
    # Onset: the first of three frames in a row well above the recording's background.
    first_voiced = onset_frame + next(i for i in range(len(levels)) if min(levels[i : i + 3]) > 500)
    detector = BargeIn()
    decisions = _run(detector, silero, agent_frames, frames)
    assert [decision for _, decision in decisions] == [Decision.PAUSE, Decision.INTERRUPT]
    assert (decisions[0][0] - first_voiced) * 20 <= 200
    # A sentence this long interrupted before its transcript came; the transcript settles nothing.
    assert detector.transcript(reference) is Decision.NONE


def test_the_agents_own_echo_does_not_pause_it(
    silero: SileroModel, agent_frames: list[Pcm16]
) -> None:
    sent = np.concatenate(agent_frames)
    # A phone line's echo: 120 ms late, 10 dB down, through 8 kHz µ-law.
    delayed = np.concatenate((np.zeros(16 * 120, np.int16), sent))[: sent.size]
    line = g711.ulaw_decode(
        g711.ulaw_encode(resample((delayed * 0.32).astype(np.int16), 16000, 8000))
    )
    echo = resample(line, 8000, 16000)[: sent.size]
    assert _run(BargeIn(), silero, agent_frames, _frames(echo)) == []


def test_noise_and_a_click_do_not_pause(silero: SileroModel, agent_frames: list[Pcm16]) -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 800, len(agent_frames) * 320).astype(np.int16)
    click = np.zeros(len(agent_frames) * 320, np.int16)
    click[8000:8400] = 20000
    for caller in (noise, click):
        assert _run(BargeIn(), silero, agent_frames, _frames(caller)) == []


@pytest.mark.parametrize("text", ["Mhm.", "Okay.", "Yeah, yeah.", "uh-huh", "Right.", ""])
def test_backchannels_resume(text: str) -> None:
    assert is_backchannel(text)
    detector = BargeIn()
    detector.paused = True
    assert detector.transcript(text) is Decision.RESUME


@pytest.mark.parametrize("text", ["Wait, stop.", "Can I talk to a person?", "No, Tuesday."])
def test_words_interrupt(text: str) -> None:
    assert not is_backchannel(text)
    detector = BargeIn()
    detector.paused = True
    assert detector.transcript(text) is Decision.INTERRUPT


def test_long_overlap_interrupts_before_its_transcript() -> None:
    detector = BargeIn()
    loud = (np.sin(np.arange(320) / 3) * 5000).astype(np.int16)
    decisions = [detector.caller_frame(loud, 0.95, agent_speaking=True) for _ in range(60)]
    assert decisions.index(Decision.PAUSE) == 6
    assert decisions.index(Decision.INTERRUPT) == 44
    assert detector.transcript("anything") is Decision.NONE


def test_nothing_happens_while_the_agent_is_quiet() -> None:
    detector = BargeIn()
    loud = np.full(320, 5000, np.int16)
    assert {detector.caller_frame(loud, 0.99, agent_speaking=False) for _ in range(50)} == {
        Decision.NONE
    }


def test_correlation_finds_a_delayed_copy() -> None:
    rng = np.random.default_rng(2)
    signal = rng.normal(0, 1, 8000)
    assert max_normalized_correlation(signal[3000:3800] * 0.2, signal) > 0.99
    assert max_normalized_correlation(rng.normal(0, 1, 800), signal) < 0.3
