"""Text to speech: time to first audio and real-time factor of the male (Piper joe) and female
(festival slt) voices, with one and two conversations speaking at once.

Each request is one agent reply spoken through our Speaker (20 ms frames at 16 kHz); time to
first audio runs from the call to the first frame, the real-time factor is the wall time of the
whole reply over its duration (per conversation, so 2 concurrent on 2 cores ideally stays flat).
The slt voice is also timed as a fresh `text2wave` process per reply, the process model that
media/festival.py avoids. Run: .venv/bin/python bench/tts.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.festival import SLT, slt
from media.tts import Speaker, joe

REPLIES = [
    "Hello John, thanks for calling. How can I help you today?",
    "Your appointment is confirmed for Tuesday morning.",
    "I'm sorry, I didn't catch that. Could you say it again?",
    "The package left our warehouse yesterday and should arrive on Friday.",
    "Please hold the line while I transfer you to a colleague.",
    "Would you like me to send the details by email or by text message?",
]


def speak(speaker: Speaker, text: str) -> tuple[float, float, float]:
    """Seconds to the first frame, seconds in all, seconds of audio."""
    started = time.perf_counter()
    first = None
    frames = 0
    for _frame in speaker.frames(text):
        if first is None:
            first = time.perf_counter() - started
        frames += 1
    assert first is not None
    return first, time.perf_counter() - started, frames * 0.02


def run(speaker: Speaker, conversations: int, rounds: int) -> tuple[list[float], float]:
    """First-audio times of every reply, and the real-time factor per conversation."""
    results: list[tuple[float, float, float]] = []
    lock = threading.Lock()

    def conversation(offset: int) -> None:
        for i in range(rounds * len(REPLIES)):
            timing = speak(speaker, REPLIES[(i + offset) % len(REPLIES)])
            with lock:
                results.append(timing)

    threads = [threading.Thread(target=conversation, args=(n * 3,)) for n in range(conversations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [first for first, _, _ in results], sum(r[1] for r in results) / sum(
        r[2] for r in results
    )


def text2wave(rounds: int) -> tuple[list[float], float]:
    """The slt voice as a fresh text2wave per reply (no streaming: first audio = whole reply)."""
    took, audio = [], 0.0
    for _ in range(rounds):
        for text in REPLIES:
            started = time.perf_counter()
            wav = subprocess.run(
                ["text2wave", "-eval", f"(voice_{SLT})", "-otype", "raw"],
                input=text.encode(),
                capture_output=True,
                check=True,
            ).stdout
            took.append(time.perf_counter() - started)
            audio += len(wav) / 2 / 32000
    return took, sum(took) / audio


def report(label: str, firsts: list[float], rtf: float) -> None:
    print(
        f"{label:36s} first audio median {statistics.median(firsts):.3f} s  "
        f"p90 {statistics.quantiles(firsts, n=10)[-1]:.3f} s  RTF {rtf:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="times through the replies")
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    started = time.perf_counter()
    female = slt()
    print(
        f"slt: {female.sample_rate} Hz, {len(female.pids())} festival processes started in "
        f"{time.perf_counter() - started:.2f} s"
    )
    speakers = {"joe (Piper)": Speaker(joe()), "slt (festival pipe)": Speaker(female)}
    for speaker in speakers.values():
        speak(speaker, REPLIES[0])  # warm-up
    for conversations in (1, 2):
        for name, speaker in speakers.items():
            firsts, rtf = run(speaker, conversations, args.rounds)
            report(f"{name}, {conversations} concurrent", firsts, rtf)
    report("slt (fresh text2wave), 1 concurrent", *text2wave(args.rounds))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    female.close()


if __name__ == "__main__":
    main()
