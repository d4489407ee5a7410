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
from dataclasses import dataclass
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
    ) -> Transcript:
        """Text of a 16 kHz utterance (float32, −1..1). `cancelled` is polled between tokens so
        a speculative decode that is no longer wanted stops early.

        `draft` is a guess at the tokens, typically an earlier transcript of the same growing
        utterance. The decoder checks the whole draft in one pass and keeps the longest prefix
        it agrees with, then goes on token by token: the result is exactly what plain greedy
        decoding gives, in a fraction of the steps when the draft is right."""
        if samples.size < RATE // 10:
            return Transcript("", 0, 0.0, 0.0)
        started = time.perf_counter()
        hidden = self.encoder.run(None, {"input_values": samples[np.newaxis, :]})[0]
        encoded = time.perf_counter()
        limit = int(samples.size / RATE * TOKENS_PER_SECOND) + TOKEN_SLACK
        cache: dict[str, npt.NDArray[np.float32]] = {
            name: np.zeros((1, 8, 0, 52), np.float32) for name in self._past
        }
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
        return Transcript(
            self.decode_tokens(ids[1:]),
            len(ids) - 1,
            (encoded - started) * 1000,
            (done - encoded) * 1000,
            cancelled=stopped,
            ids=tuple(ids[1:]),
            drafted=agreed,
        )

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
