"""Moonshine on our onnxruntime sessions, on real human recordings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from media import g711
from media.asr import MoonshineModel, load_tokens, moonshine_dir
from media.ort_format import ort_to_onnx
from media.resample import resample
from media.wer import edit_distance, word_error_rate, words
from tests.unit.media.recordings import espeak, librivox, load_wav


@pytest.fixture
def model(asr_model: MoonshineModel) -> MoonshineModel:
    return asr_model


def _float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def test_wer_counts_word_edits() -> None:
    assert words("Mr. Smith's ill-disposed, OK?") == [
        "mister",
        "smith's",
        "ill",
        "disposed",
        "okay",
    ]
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_error_rate("he was here", "he was not here") == pytest.approx(1 / 3)


def test_tokenizer_has_the_special_and_word_tokens() -> None:
    tokens = load_tokens(moonshine_dir() / "tokenizer.bin")
    assert len(tokens) == 32000
    assert tokens[1:3] == [b"<s>", b"</s>"]
    assert any(t == "\u2581the".encode() for t in tokens)


def test_rebuilt_encoder_computes_what_the_ort_file_does() -> None:
    folder = moonshine_dir()
    original = ort.InferenceSession(
        str(folder / "encoder_model.ort"), providers=["CPUExecutionProvider"]
    )
    rebuilt = ort.InferenceSession(
        ort_to_onnx(folder / "encoder_model.ort").SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    audio = np.random.default_rng(3).normal(0, 0.1, (1, 16000)).astype(np.float32)
    expected = original.run(None, {"input_values": audio})[0]
    got = rebuilt.run(None, {"input_values": audio})[0]
    assert got.shape == expected.shape
    assert np.allclose(got, expected, atol=1e-3)


def test_word_error_on_human_speech_at_16k_and_through_8k_ulaw(model: MoonshineModel) -> None:
    errors = {"16k": 0, "8k": 0}
    total = 0
    for _name, path, reference in librivox():
        samples, rate = load_wav(path)
        wide = resample(samples, rate, 16000)
        telephone = g711.ulaw_decode(g711.ulaw_encode(resample(samples, rate, 8000)))
        narrow = resample(telephone, 8000, 16000)
        ref = words(reference)
        total += len(ref)
        for label, audio in (("16k", wide), ("8k", narrow)):
            errors[label] += edit_distance(ref, words(model.transcribe(_float(audio)).text))
    assert errors["16k"] / total <= 0.05, errors
    assert errors["8k"] / total <= 0.05, errors


def test_cancelled_decode_stops_early(model: MoonshineModel) -> None:
    _name, path, _reference = librivox()[0]
    samples, _rate = load_wav(path)
    calls = 0

    def cancel_after_three() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    result = model.transcribe(_float(samples), cancelled=cancel_after_three)
    assert result.cancelled and result.tokens == 3


def test_too_short_audio_is_empty(model: MoonshineModel) -> None:
    assert model.transcribe(np.zeros(800, np.float32)).text == ""


def test_a_draft_changes_the_work_not_the_words(model: MoonshineModel) -> None:
    for _name, path, _reference in librivox()[:3]:
        samples, rate = load_wav(path)
        audio = _float(resample(samples, rate, 16_000))
        plain = model.transcribe(audio)
        # An earlier transcript of the utterance's first two thirds, as the recognizer has it.
        early = model.transcribe(audio[: audio.size * 2 // 3])
        drafted = model.transcribe(audio, draft=early.ids)
        assert drafted.text == plain.text and drafted.ids == plain.ids
        assert drafted.drafted >= len(early.ids) // 2
        # A wrong draft is rejected at its first token and costs nothing in accuracy.
        wrong = model.transcribe(audio, draft=(17, 23, 42, 99))
        assert wrong.text == plain.text and wrong.drafted == 0
        # A draft longer than the utterance allows is cut, not trusted.
        assert model.transcribe(audio, draft=plain.ids * 10).text == plain.text


ORDER = "Hello, I need help with my order"


def _trimmed(samples: np.ndarray, floor: int = 300) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > floor)
    return samples[loud[0] : loud[-1] + 1]


def test_a_final_does_not_depend_on_where_the_speech_falls_on_the_encoder_grid(
    model: MoonshineModel,
) -> None:
    speech = _trimmed(espeak(ORDER))
    plain, careful = [], []
    for lead in range(0, 3200, 160):
        audio = _float(np.concatenate((np.zeros(lead, np.int16), speech, np.zeros(3200, np.int16))))
        plain.append(model.transcribe(audio).text)
        careful.append(model.transcribe(audio, final=True).text)
    # The hard case is still in the audio: some alignment fools a single decode.
    assert [t for t in plain if "mortar" in t], plain
    assert all(" ".join(words(t)) == " ".join(words(ORDER)) for t in careful), careful


def test_a_decode_cancelled_before_its_final_check_is_cancelled(model: MoonshineModel) -> None:
    speech = _float(_trimmed(espeak(ORDER)))
    polls = 0

    def count() -> bool:
        nonlocal polls
        polls += 1
        return False

    assert not model.transcribe(speech, count).cancelled
    plain_polls, polls = polls, 0

    def after_the_first_decode() -> bool:
        nonlocal polls
        polls += 1
        return polls > plain_polls

    assert model.transcribe(speech, after_the_first_decode, final=True).cancelled
