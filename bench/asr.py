"""Moonshine base-en: the .ort files as shipped versus our rebuilt ONNX sessions.

Prints, per session kind, the decoder's milliseconds per token, the whole-utterance real-time
factor and the word error rate on the LibriVox recordings of Debian's pocketsphinx-testdata,
at 16 kHz and through 8 kHz µ-law; the last line decodes each clip as a final (checked against
a second alignment, see media/asr.py). Run: .venv/bin/python bench/asr.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import g711
from media.asr import MoonshineModel, moonshine_dir
from media.resample import resample
from media.wer import edit_distance, words
from tests.unit.media.recordings import librivox, load_wav


def shipped_model(threads: int) -> MoonshineModel:
    """A MoonshineModel whose sessions load the .ort files directly, as shipped."""
    model = MoonshineModel.__new__(MoonshineModel)
    rebuilt = MoonshineModel(threads=threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    folder = moonshine_dir()
    cpu = ["CPUExecutionProvider"]
    model.__dict__.update(rebuilt.__dict__)
    model.encoder = ort.InferenceSession(str(folder / "encoder_model.ort"), options, providers=cpu)
    model.decoder = ort.InferenceSession(
        str(folder / "decoder_model_merged.ort"), options, providers=cpu
    )
    return model


def measure(model: MoonshineModel, label: str, *, final: bool = False) -> None:
    clips = []
    for _name, path, reference in librivox():
        samples, rate = load_wav(path)
        wide = resample(samples, rate, 16000)
        line = g711.ulaw_decode(g711.ulaw_encode(resample(samples, rate, 8000)))
        clips.append((reference, wide, resample(line, 8000, 16000)))
    model.transcribe(clips[0][1].astype(np.float32) / 32768)  # warm-up
    tokens = decode_ms = wall = audio_s = 0.0
    errors = {"16k": 0, "8k": 0}
    total_words = 0
    for reference, wide, narrow in clips:
        ref = words(reference)
        total_words += len(ref)
        for key, audio in (("16k", wide), ("8k", narrow)):
            started = time.perf_counter()
            result = model.transcribe(audio.astype(np.float32) / 32768, final=final)
            wall += time.perf_counter() - started
            audio_s += audio.size / 16000
            tokens += result.tokens
            decode_ms += result.decode_ms
            errors[key] += edit_distance(ref, words(result.text))
    print(
        f"{label:28s} {decode_ms / tokens:8.1f} ms/token  RTF {wall / audio_s:5.3f}  "
        f"WER 16k {100 * errors['16k'] / total_words:4.1f}%  "
        f"8k µ-law {100 * errors['8k'] / total_words:4.1f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"onnxruntime {ort.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    measure(shipped_model(args.threads), f".ort as shipped, {args.threads} thr")
    rebuilt = MoonshineModel(threads=args.threads)
    measure(rebuilt, f"rebuilt ONNX, {args.threads} thr")
    measure(rebuilt, f"rebuilt, finals, {args.threads} thr", final=True)


if __name__ == "__main__":
    main()
