"""Speech recognition: Moonshine base-en (from the moonshine-cpp wheel) on onnxruntime.

Moonshine is a whole-utterance model: an encoder over the audio, then a greedy decoder one
token at a time with a key/value cache. Streaming (partials, speculative finals) is built on
top of this by the caller. One `MoonshineModel` serves a whole process; `transcribe` blocks and
is meant for a worker thread (onnxruntime releases the GIL while it computes).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from media.ort_format import ort_to_onnx

Float32 = npt.NDArray[np.float32]

RATE = 16_000
START, END = 1, 2
_SPACE = "\u2581".encode()
# Moonshine's own bound on output length: about 6 tokens per second of speech, plus slack.
TOKENS_PER_SECOND = 6
TOKEN_SLACK = 10
# The encoder's front end steps over the audio 384 samples at a time, so where the speech falls
# on that grid changes the transcript a little: at some offsets near-ties flip ("my order" became
# "mortar"). A short final is decoded again half a step later and, when the two disagree, the
# transcript both alignments like better wins.
REALIGN_SAMPLES = 192
REALIGN_MAX_SECONDS = 3.0
"""Only finals up to this long are checked. The check costs an encoder run over the audio: for a
short utterance it fits in the end-of-turn hangover that the speculative final waits out anyway
(measured: +90 ms for 2.9 s, +200 ms for 5.2 s, where the hangover leaves ~240 ms after the
pause), and short answers ("my order", "yes") have the least context to settle a near-tie.
Checking whenever the latest partial disagrees was tried: partials' last two words often differ
from the final's, so it checked most long finals and added ~200 ms to their wait."""


def moonshine_dir() -> Path:
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the moonshine-cpp package is not installed")
    folder = Path(spec.origin).parent / "models" / "base-en"
    for name in ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{name} is missing from {folder}")
    return folder


def load_tokens(path: Path) -> list[bytes]:
    """tokenizer.bin: per token a length (one byte, or two when the first is ≥ 128), then that
    many bytes of UTF-8 text."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    i = 0
    while i < len(data):
        length = data[i]
        i += 1
        if length >= 128:
            length = (length & 0x7F) | (data[i] << 7)
            i += 1
        tokens.append(data[i : i + length])
        i += length
    return tokens


@dataclass(frozen=True)
class Transcript:
    text: str
    tokens: int
    encode_ms: float
    decode_ms: float
    cancelled: bool = False
    ids: tuple[int, ...] = ()
    """The token ids of `text`, a draft for decoding the same utterance again."""
    drafted: int = 0
    """How many tokens of the draft the decoder accepted."""


class MoonshineModel:
    def __init__(self, folder: Path | None = None, threads: int = 1) -> None:
        folder = folder or moonshine_dir()
        self.tokens = load_tokens(folder / "tokenizer.bin")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(
            ort_to_onnx(folder / "encoder_model.ort").SerializeToString(),
            options,
            providers=providers,
        )
        self.decoder = ort.InferenceSession(
            ort_to_onnx(folder / "decoder_model_merged.ort").SerializeToString(),
            options,
            providers=providers,
        )
        self._past = [i.name for i in self.decoder.get_inputs() if i.name.startswith("past_")]
        self._present = [o.name for o in self.decoder.get_outputs()][1:]

    def decode_tokens(self, ids: list[int]) -> str:
        raw = b"".join(self.tokens[i] for i in ids if i > END and i < len(self.tokens))
        return raw.replace(_SPACE, b" ").decode("utf-8", errors="replace").strip()

    def transcribe(
        self,
        samples: Float32,
        cancelled: Callable[[], bool] = lambda: False,
        draft: Sequence[int] = (),
        *,
        final: bool = False,
    ) -> Transcript:
        """Text of a 16 kHz utterance (float32, −1..1). `cancelled` is polled between tokens so
        a speculative decode that is no longer wanted stops early.

        `draft` is a guess at the tokens, typically an earlier transcript of the same growing
        utterance. The decoder checks the whole draft in one pass and keeps the longest prefix
        it agrees with, then goes on token by token: the result is exactly what plain greedy
        decoding gives, in a fraction of the steps when the draft is right.

        A short `final` transcript is checked against a second alignment of the audio (see
        REALIGN_SAMPLES and REALIGN_MAX_SECONDS); when they agree, the check costs one encoder
        run and one decoder pass."""
        if samples.size < RATE // 10:
            return Transcript("", 0, 0.0, 0.0)
        first, first_hidden = self._greedy(samples, cancelled, draft)
        if not final or first.cancelled or not first.ids:
            return first
        if samples.size > REALIGN_MAX_SECONDS * RATE:
            return first
        if cancelled():
            return replace(first, cancelled=True)
        shifted = np.concatenate((np.zeros(REALIGN_SAMPLES, np.float32), samples))
        second, second_hidden = self._greedy(shifted, cancelled, first.ids)
        encode_ms = first.encode_ms + second.encode_ms
        decode_ms = first.decode_ms + second.decode_ms
        if second.cancelled:
            return replace(first, cancelled=True, encode_ms=encode_ms, decode_ms=decode_ms)
        best = first
        if second.ids != first.ids:
            started = time.perf_counter()
            hidden = (first_hidden, second_hidden)
            if self._score(second.ids, hidden) > self._score(first.ids, hidden):
                best = second
            decode_ms += (time.perf_counter() - started) * 1000
        return replace(best, encode_ms=encode_ms, decode_ms=decode_ms, drafted=first.drafted)

    def _greedy(
        self, samples: Float32, cancelled: Callable[[], bool], draft: Sequence[int]
    ) -> tuple[Transcript, Float32]:
        started = time.perf_counter()
        hidden: Float32 = self.encoder.run(None, {"input_values": samples[np.newaxis, :]})[0]
        encoded = time.perf_counter()
        limit = int(samples.size / RATE * TOKENS_PER_SECOND) + TOKEN_SLACK
        cache = self._empty_cache()
        first = [START, *draft[: limit - 1]]
        outputs = self._run(first, hidden, cache, with_cache=False)
        predicted = np.argmax(outputs[0][0], axis=-1)
        agreed = 0
        while agreed < len(first) - 1 and int(predicted[agreed]) == first[agreed + 1]:
            agreed += 1
        ids = first[: agreed + 1]
        token = int(predicted[agreed])
        self._keep(cache, outputs, first_pass=True, length=len(ids))
        stopped = False
        while token != END and len(ids) <= limit:
            if cancelled():
                stopped = True
                break
            ids.append(token)
            outputs = self._run([token], hidden, cache, with_cache=True)
            token = int(np.argmax(outputs[0][0, -1]))
            self._keep(cache, outputs, first_pass=False, length=len(ids))
        done = time.perf_counter()
        transcript = Transcript(
            self.decode_tokens(ids[1:]),
            len(ids) - 1,
            (encoded - started) * 1000,
            (done - encoded) * 1000,
            cancelled=stopped,
            ids=tuple(ids[1:]),
            drafted=agreed,
        )
        return transcript, hidden

    def _score(self, ids: Sequence[int], hidden: Sequence[Float32]) -> float:
        """Log-probability of `ids` followed by the end token, summed over encoder outputs: one
        decoder pass per output, all positions at once."""
        sequence = [START, *ids]
        targets = np.array([*ids, END])
        total = 0.0
        for states in hidden:
            logits = self._run(sequence, states, self._empty_cache(), with_cache=False)[0][0]
            peak = logits.max(axis=-1, keepdims=True)
            log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=-1))
            total += float(np.sum(logits[np.arange(targets.size), targets] - log_norm))
        return total

    def _empty_cache(self) -> dict[str, Float32]:
        return {name: np.zeros((1, 8, 0, 52), np.float32) for name in self._past}

    def _run(
        self,
        tokens: list[int],
        hidden: npt.NDArray[np.float32],
        cache: dict[str, npt.NDArray[np.float32]],
        *,
        with_cache: bool,
    ) -> list[npt.NDArray[np.float32]]:
        outputs: list[npt.NDArray[np.float32]] = self.decoder.run(
            None,
            {
                "input_ids": np.array([tokens], np.int64),
                "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([with_cache]),
                **cache,
            },
        )
        return outputs

    def _keep(
        self,
        cache: dict[str, npt.NDArray[np.float32]],
        outputs: list[npt.NDArray[np.float32]],
        *,
        first_pass: bool,
        length: int,
    ) -> None:
        """Carry the key/value cache forward. The cross-attention part is computed by the first
        pass and never changes; the self-attention part keeps only the positions of the tokens
        accepted so far (a draft's rejected tail must not stay in it)."""
        for name, value in zip(self._present, outputs[1:], strict=True):
            past = name.replace("present", "past_key_values", 1)
            if ".decoder." in past:
                cache[past] = value[:, :, :length]
            elif first_pass:
                cache[past] = value
