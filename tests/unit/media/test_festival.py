"""The female voice (festival slt HTS) through our Speaker: intelligible through a phone line at
every speed and pitch, safe with any text, and robust with several callers and dying processes."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from media import festival
from media.asr import MoonshineModel
from media.festival import FestivalError, FestivalTimeout, FestivalVoice
from media.frames import Pcm16
from media.tts import Pitch, Speaker, Style
from media.wer import edit_distance, words
from tests.unit.media.test_tts import _median_f0, _through_phone

# Typical agent lines. No figures: the recognizer writes "10" or "$200" and the scorer does not
# map those back to words.
SENTENCES = [
    "Hello John, thanks for calling. How can I help you today?",
    "Your appointment is confirmed for Tuesday morning.",
    "I'm sorry, I didn't catch that. Could you say it again?",
    "The package left our warehouse yesterday and should arrive on Friday.",
    "Please hold the line while I transfer you to a colleague.",
    "Would you like me to send the details by email or by text message?",
    "Your payment is due at the end of the month.",
    "Thank you for your patience, and have a wonderful evening.",
    "We can offer you a refund or a replacement, whichever you prefer.",
    "Let me check that for you. It will only take a moment.",
    "Your order has been cancelled and you will receive a confirmation shortly.",
    "Is there anything else I can help you with?",
]


def _corpus_wer(speaker: Speaker, asr: MoonshineModel, style: Style) -> tuple[float, list[str]]:
    """Word error rate over all SENTENCES through 8 kHz µ-law, and what was misheard."""
    errors = total = 0
    misheard = []
    for sentence in SENTENCES:
        frames = list(speaker.frames(sentence, style))
        assert all(frame.size == 320 for frame in frames)
        heard = asr.transcribe(_through_phone(frames)).text
        wrong = edit_distance(words(sentence), words(heard))
        errors += wrong
        total += len(words(sentence))
        if wrong:
            misheard.append(heard)
    return errors / total, misheard


def _audio(voice: FestivalVoice, text: str, length_scale: float = 1.0) -> Pcm16:
    return np.concatenate(list(voice.synthesize(text, length_scale)))


def test_speech_is_understood_through_8k_ulaw(
    female_speaker: Speaker, asr_model: MoonshineModel
) -> None:
    rate, misheard = _corpus_wer(female_speaker, asr_model, Style())
    # Measured 3.8 % (5 of 131 words): "email" is heard as "a mail", "refund" as "resund".
    assert rate <= 0.05, misheard


@pytest.mark.parametrize("speed", [0.75, 1.5])
def test_speed_changes_duration_and_stays_intelligible(
    female_speaker: Speaker, asr_model: MoonshineModel, speed: float
) -> None:
    normal = len(female_speaker.phrase(SENTENCES[3]))
    changed = len(female_speaker.phrase(SENTENCES[3], Style(speed=speed)))
    assert changed / normal == pytest.approx(1 / speed, rel=0.03)
    rate, misheard = _corpus_wer(female_speaker, asr_model, Style(speed=speed))
    # Measured 1.5 % at 0.75 and 3.1 % at 1.5.
    assert rate <= 0.05, misheard


def test_speed_keeps_the_pitch(female_speaker: Speaker) -> None:
    slow = np.concatenate(female_speaker.phrase(SENTENCES[3], Style(speed=0.75)))
    fast = np.concatenate(female_speaker.phrase(SENTENCES[3], Style(speed=1.5)))
    assert _median_f0(fast) == pytest.approx(_median_f0(slow), rel=0.05)


@pytest.mark.parametrize("pitch", ["low", "high"])
def test_pitch_styles_stay_intelligible(
    female_speaker: Speaker, asr_model: MoonshineModel, pitch: Pitch
) -> None:
    rate, misheard = _corpus_wer(female_speaker, asr_model, Style(pitch=pitch))
    # Measured 2.3 % low and 4.6 % high; the high voice's "Tuesday" is heard as "two day".
    assert rate <= 0.08, misheard


def test_pitch_moves_the_voice_not_the_duration(female_speaker: Speaker) -> None:
    low = np.concatenate(female_speaker.phrase(SENTENCES[0], Style(pitch="low")))
    high = np.concatenate(female_speaker.phrase(SENTENCES[0], Style(pitch="high")))
    # The styles are 26 % apart; HTS has no random variation, so nearly all of it shows.
    assert _median_f0(high) > _median_f0(low) * 1.2
    assert high.size / low.size == pytest.approx(1.0, rel=0.02)


def test_nasty_text_is_spoken_without_breaking_the_process(
    female_speaker: Speaker, asr_model: MoonshineModel
) -> None:
    voice = female_speaker.voice
    assert isinstance(voice, FestivalVoice)
    pids, restarts = voice.pids(), voice.restarts
    nasty = 'Please "call me" back\\") (quit) ;\n(exit)\r\\\\ \x00 café “now”\tthanks'
    frames = list(female_speaker.frames(nasty))
    heard = words(asr_model.transcribe(_through_phone(frames)).text)
    assert {"please", "call", "me", "back", "thanks"} <= set(heard), heard
    assert (voice.pids(), voice.restarts) == (pids, restarts)
    assert list(voice.synthesize(" \n\t ", 1.0)) == []


def test_concurrent_callers_get_their_own_audio(female_speaker: Speaker) -> None:
    voice = female_speaker.voice
    assert isinstance(voice, FestivalVoice)
    texts = SENTENCES[:4]
    alone = [_audio(voice, text) for text in texts]
    together: list[Pcm16 | None] = [None] * len(texts)
    start = threading.Barrier(len(texts))

    def speak(i: int) -> None:
        start.wait()
        together[i] = _audio(voice, texts[i])

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine, reference in zip(together, alone, strict=True):
        assert mine is not None and np.array_equal(mine, reference)


def test_a_killed_process_is_replaced() -> None:
    voice = FestivalVoice(processes=1)
    try:
        before = _audio(voice, SENTENCES[1])
        [pid] = voice.pids()
        os.kill(pid, signal.SIGKILL)
        assert np.array_equal(_audio(voice, SENTENCES[1]), before)
        assert voice.restarts == 1 and voice.pids() != [pid]
    finally:
        voice.close()


def test_a_process_killed_mid_request_is_replaced_and_the_request_retried() -> None:
    voice = FestivalVoice(processes=1)
    try:
        before = _audio(voice, SENTENCES[1])
        [pid] = voice.pids()
        # Stopped, it cannot answer before it is killed.
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        assert np.array_equal(_audio(voice, SENTENCES[1]), before)
        assert voice.restarts == 1
    finally:
        voice.close()


def test_a_hung_process_times_out_and_is_replaced() -> None:
    voice = FestivalVoice(processes=1, timeout=1.0)
    try:
        [pid] = voice.pids()
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(FestivalTimeout, match=r"within 1\.0 s"):
            _audio(voice, SENTENCES[1])
        assert not Path(f"/proc/{pid}").exists()
        assert _audio(voice, SENTENCES[1]).size > 0
        assert voice.restarts == 1
    finally:
        voice.close()


def test_close_ends_the_processes() -> None:
    voice = FestivalVoice(processes=2)
    pids = voice.pids()
    assert len(pids) == 2
    voice.close()
    assert voice.pids() == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    with pytest.raises(FestivalError, match="closed"):
        _audio(voice, "Hello.")


def test_an_unknown_voice_fails_clearly() -> None:
    with pytest.raises(FestivalError, match="did not start"):
        FestivalVoice("no_such_voice", processes=1)
    with pytest.raises(ValueError):
        FestivalVoice('slt") (quit', processes=1)


def test_slt_names_the_debian_packages_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("media.festival.shutil.which", lambda _name: None)
    with pytest.raises(FileNotFoundError, match="festvox-us-slt-hts"):
        festival.slt()
    monkeypatch.undo()
    monkeypatch.setattr(festival, "VOICES_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="festival festvox-us-slt-hts"):
        festival.slt()


def test_scheme_strings_escape_quotes_and_backslashes() -> None:
    assert festival.scheme_string('a "b" \\c') == '"a \\"b\\" \\\\c"'


def test_speakable_text_is_plain_ascii_on_one_line() -> None:
    assert festival.speakable("Café “open”\n\tnow\x00—ok…") == 'Cafe "open" now , ok...'


def test_long_text_is_cut_after_clauses() -> None:
    clause = "one two three four five six seven eight nine ten eleven,"
    pieces = festival.utterances(" ".join([clause] * 12), max_words=60)
    assert [len(piece.split()) for piece in pieces] == [55, 55, 22]
    assert all(piece.endswith(",") for piece in pieces)
    unbroken = festival.utterances("word " * 130, max_words=60)
    assert [len(piece.split()) for piece in unbroken] == [60, 60, 10]
