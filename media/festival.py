"""Festival HTS voices as persistent processes: the female voice cmu_us_slt_arctic_hts.

Festival has no Python binding, and a fresh `festival`/`text2wave` spends 0.25-0.5 s loading the
lexicon and the voice before it synthesizes anything, longer than a short sentence takes. So a
`FestivalVoice` keeps a pool of `festival --pipe` processes with the voice loaded, one request at
a time per process. A request is one Scheme expression on the process's stdin; the answer comes
back on a pipe of its own (festival's stdout is block-buffered and carries its chatter): a line
`vb <id> <samples> <rate>` and the raw little-endian samples, or `vb <id> error`. SIOD closes
every file left open when an error reaches its top level, so each answer opens the pipe afresh.

Speed: festival ignores Duration_Stretch for HTS voices, but hts_engine's own speech-rate option
(`-r`) scales every state duration and leaves F0 alone, so `length_scale` becomes `-r 1/scale`.
Festival's hts_engine module reads no other option from `hts_engine_params` than the model
(`-m`) and `-r`, so pitch stays with the Speaker's resampling, as for Piper.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import selectors
import shutil
import subprocess
import threading
import time
import unicodedata
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from media.frames import Pcm16

SLT = "cmu_us_slt_arctic_hts"
SLT_PACKAGES = "festival festvox-us-slt-hts"
VOICES_DIR = Path("/usr/share/festival/voices")
# Festival's default heap of 10M cells is 330 MB resident per process; 1M cells is 57 MB and
# still holds a 160-word utterance, well over MAX_WORDS.
HEAP_CELLS = 1_000_000
# Longer text is cut into several utterances: synthesis time grows faster than the text, and a
# few hundred words in one utterance exhaust the heap.
MAX_WORDS = 60
STDERR_KEPT = 2000

_VOICE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CLAUSE_END = re.compile(r"[,;:.!?]$")
_TYPOGRAPHY = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": ", ", "…": "...", "\u00a0": " "}
)

_open_voices: weakref.WeakSet[FestivalVoice] = weakref.WeakSet()


class FestivalError(RuntimeError):
    pass


class FestivalTimeout(FestivalError, TimeoutError):
    pass


class _Broken(Exception):
    """The process ended or lost track of the protocol; a fresh one may still do the request."""


def speakable(text: str) -> str:
    """Plain ASCII on one line: festival's English front end works on single bytes, so UTF-8
    punctuation and accented letters would come out as spelled-out noise."""
    text = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    chars = (
        " " if ord(c) < 32 or ord(c) > 126 else c for c in text if not unicodedata.combining(c)
    )
    return " ".join("".join(chars).split())


def scheme_string(text: str) -> str:
    """`text` as a Scheme string literal; SIOD's reader takes a backslash before any character
    as that character."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def utterances(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Speakable text in pieces of at most `max_words`, cut after a clause where one ends in the
    second half of a piece."""
    words = speakable(text).split()
    out: list[str] = []
    while len(words) > max_words:
        cut = next(
            (i for i in range(max_words, max_words // 2, -1) if _CLAUSE_END.search(words[i - 1])),
            max_words,
        )
        out.append(" ".join(words[:cut]))
        words = words[cut:]
    if words:
        out.append(" ".join(words))
    return out


def _init_script(voice: str, answer_fd: int) -> str:
    answers = f'"/dev/fd/{answer_fd}"'
    return f"""
(define (vb_send id line)
  (let ((o (fopen {answers} "wb"))) (format o "vb %d %s\\n" id line) (fclose o)))
(define (vb_say id rate text)
  (unwind-protect
    (begin
      (set! hts_engine_params (cons (list "-r" rate) vb_hts_params))
      (let ((w (utt.wave (SynthText text))) (o (fopen {answers} "wb")))
        (format o "vb %d %d %d\\n" id
          (cadr (assoc 'num_samples (wave.info w))) (cadr (assoc 'sample_rate (wave.info w))))
        (wave.save.data.fp w o 'riff 'short)
        (fclose o)))
    (vb_send id "error")))
(unwind-protect
  (begin (voice_{voice}) (set! vb_hts_params hts_engine_params) (vb_say 0 1.0 "a"))
  (vb_send 0 "error"))
"""


class _Process:
    """One `festival --pipe` with the voice loaded; used by one thread at a time."""

    def __init__(self, voice: str) -> None:
        self.voice = voice
        answers, answer_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["festival", "--pipe", "--heap", str(HEAP_CELLS)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(answer_fd,),
            )
        except BaseException:
            os.close(answers)
            raise
        finally:
            os.close(answer_fd)
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._stdin = self._proc.stdin
        self._stderr_file = self._proc.stderr
        self._stderr_fd = self._stderr_file.fileno()
        self._answers = answers
        self._selector = selectors.DefaultSelector()
        self._selector.register(answers, selectors.EVENT_READ)
        self._selector.register(self._stderr_fd, selectors.EVENT_READ)
        self._buffer = bytearray()
        self._stderr = b""
        self._last_id = 0
        try:
            self._send(_init_script(voice, answer_fd))
        except _Broken as broken:
            self.kill()
            raise FestivalError(f"festival did not start: {broken}") from None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def ready(self, timeout: float) -> int:
        """Waits for the voice to load and speak a word; returns its sample rate."""
        try:
            _, rate = self._receive(0, time.monotonic() + timeout)
        except FestivalTimeout:
            raise
        except (_Broken, FestivalError) as failure:
            raise FestivalError(f"festival did not start {self.voice}: {failure}") from None
        return rate

    def say(self, literal: str, rate: float, timeout: float) -> tuple[Pcm16, int]:
        self._last_id += 1
        self._stderr = b""
        self._send(f"(vb_say {self._last_id} {rate:.6f} {literal})\n")
        return self._receive(self._last_id, time.monotonic() + timeout)

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self) -> None:
        """Kills the process; its user sees the end of the answer pipe and cleans up."""
        if self._proc.poll() is None:
            self._proc.kill()

    def kill(self) -> None:
        """Kills the process and closes its pipes (only by the thread that uses it)."""
        self.stop()
        self._proc.wait()
        self._selector.close()
        with contextlib.suppress(OSError):
            self._stdin.close()
        self._stderr_file.close()
        os.close(self._answers)

    def _problem(self) -> str:
        return self._stderr.decode(errors="replace").strip() or "no message"

    def _send(self, script: str) -> None:
        try:
            self._stdin.write(script.encode("ascii"))
            self._stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise _Broken(f"festival {self.pid} no longer reads its input") from error

    def _receive(self, request: int, deadline: float) -> tuple[Pcm16, int]:
        line = self._read_line(deadline)
        fields = line.split()
        if fields[:2] != [b"vb", str(request).encode()] or len(fields) not in (3, 4):
            raise _Broken(f"festival {self.pid} answered out of turn: {line!r}")
        if fields[2] == b"error":
            raise FestivalError(f"festival could not synthesize the text: {self._problem()}")
        count, rate = int(fields[2]), int(fields[3])
        data = self._read_exactly(2 * count, deadline)
        return np.frombuffer(data, dtype="<i2").astype(np.int16), rate

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self, deadline: float) -> None:
        """Reads more of the answer, keeping the tail of stderr (its pipe must not fill up)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FestivalTimeout(f"festival {self.pid} gave no answer in time")
            for key, _ in self._selector.select(remaining):
                data = os.read(key.fd, 65536)
                if key.fd == self._answers:
                    if not data:
                        raise _Broken(f"festival {self.pid} exited: {self._problem()}")
                    self._buffer += data
                    return
                if data:
                    self._stderr = (self._stderr + data)[-STDERR_KEPT:]
                else:
                    self._selector.unregister(key.fd)


class FestivalVoice:
    """A festival HTS voice behind a pool of persistent processes; thread-safe.

    `processes` (default: one per core) bounds how many requests run at once; more would only
    share the cores. Every process starts at construction (0.15-0.4 s, in parallel; 57 MB each),
    so no caller waits for one to load. A process that dies is replaced and the request retried
    once on the new one; a request that takes longer than `timeout` seconds kills its process
    and raises FestivalTimeout. Blocking: call it from worker threads.
    """

    def __init__(
        self, voice: str = SLT, processes: int | None = None, timeout: float = 20.0
    ) -> None:
        if not _VOICE_NAME.fullmatch(voice):
            raise ValueError(f"not a festival voice name: {voice!r}")
        self.name = voice
        self.timeout = timeout
        self.restarts = 0
        self._size = processes or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self._size)
        self._lock = threading.Lock()
        self._idle: list[_Process] = []
        self._live: set[_Process] = set()
        self._closed = False
        _open_voices.add(self)
        try:
            started = [self._start() for _ in range(self._size)]
            self._idle.extend(started)
            rates = {process.ready(timeout) for process in started}
        except BaseException:
            self.close()
            raise
        if len(rates) != 1:
            self.close()
            raise FestivalError(f"festival processes disagree on the sample rate: {rates}")
        self.sample_rate: int = rates.pop()

    def synthesize(self, text: str, length_scale: float) -> Iterator[Pcm16]:
        if length_scale <= 0:
            raise ValueError("length_scale must be positive")
        for piece in utterances(text):
            yield self._say(scheme_string(piece), 1.0 / length_scale)

    def pids(self) -> list[int]:
        """Process ids of the running festival processes (for monitoring and tests)."""
        with self._lock:
            return sorted(process.pid for process in self._live if process.running())

    def close(self) -> None:
        """Kills every process; requests in flight fail with FestivalError."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, self._live.difference(self._idle)
            self._idle = []
            self._live.clear()
        for process in idle:
            process.kill()
        for process in busy:
            process.stop()

    def _start(self) -> _Process:
        with self._lock:
            if self._closed:
                raise FestivalError(f"festival voice {self.name} is closed")
            process = _Process(self.name)
            self._live.add(process)
            return process

    def _say(self, literal: str, rate: float) -> Pcm16:
        with self._slots:
            try:
                samples, sample_rate = self._attempt(literal, rate, fresh=False)
            except _Broken:
                try:
                    samples, sample_rate = self._attempt(literal, rate, fresh=True)
                except _Broken as broken:
                    raise FestivalError(f"festival failed twice in a row: {broken}") from None
        if sample_rate != self.sample_rate:
            raise FestivalError(f"festival answered at {sample_rate} Hz, not {self.sample_rate}")
        return samples

    def _attempt(self, literal: str, rate: float, fresh: bool) -> tuple[Pcm16, int]:
        process = self._take(fresh)
        try:
            answer = process.say(literal, rate, self.timeout)
        except FestivalTimeout:
            self._discard(process)
            raise FestivalTimeout(
                f"festival voice {self.name} gave no answer within {self.timeout} s; "
                f"its process {process.pid} was killed"
            ) from None
        except FestivalError:
            # Festival reported the failure itself and waits for the next request.
            self._give_back(process)
            raise
        except BaseException:
            self._discard(process)
            raise
        self._give_back(process)
        return answer

    def _take(self, fresh: bool) -> _Process:
        dead = []
        with self._lock:
            while self._idle and not fresh:
                process = self._idle.pop()
                if process.running():
                    return process
                self._live.discard(process)
                dead.append(process)
            self.restarts += 1
        for process in dead:
            process.kill()
        process = self._start()
        try:
            process.ready(self.timeout)
        except BaseException:
            self._discard(process)
            raise
        return process

    def _give_back(self, process: _Process) -> None:
        with self._lock:
            if process in self._live:
                self._idle.append(process)
                return
        process.kill()

    def _discard(self, process: _Process) -> None:
        with self._lock:
            self._live.discard(process)
        process.kill()


def slt_missing() -> str | None:
    """Why the slt voice cannot run here (festival or the voice not installed), without starting
    anything; None when it can."""
    if shutil.which("festival") is None:
        return f"festival is not installed (apt-get install {SLT_PACKAGES})"
    voice_dir = VOICES_DIR / "us" / SLT
    if not voice_dir.is_dir():
        return f"{voice_dir} is missing (apt-get install {SLT_PACKAGES})"
    return None


def slt(processes: int | None = None) -> FestivalVoice:
    """The female US English voice from Debian's festvox-us-slt-hts."""
    missing = slt_missing()
    if missing is not None:
        raise FileNotFoundError(missing)
    return FestivalVoice(SLT, processes)


@atexit.register
def _close_all() -> None:
    for voice in list(_open_voices):
        voice.close()
