"""A voicebridge WebSocket client: talk to an agent from a WAV file or typed text.

    python examples/ws_client.py --api http://127.0.0.1:8080 --key vbk_… --agent agt_… \\
        --wav question.wav --out reply.wav

checks every input first (the WAV is read and resampled to --rate, --initial-context and
--settings must be JSON objects), then creates a conversation through the REST API, streams the
WAV in real time (as a caller would) after the greeting, prints every event as it arrives, ends
the conversation and prints the events up to the socket's close, and saves what the agent said
to --out on the call's timeline. Without --wav it reads lines from standard input and sends
them as text turns, each after the agent's previous reply. A failure after the conversation was
created (the bridge going away, Ctrl-C) still ends it through the API. Exit status: 0 done,
1 the bridge refused or failed, 2 a bad input, 130 interrupted.
The `VoiceClient` class is also what the test suite and bench/pipeline.py use. Run it from
the repository root with the project's environment (`.venv/bin/python examples/ws_client.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import yarl

from media.g711 import ulaw_decode, ulaw_encode
from media.resample import resample

Samples = npt.NDArray[np.int16]
FRAME_MS = 20


@dataclass
class Event:
    type: str
    data: dict[str, Any]
    at: float
    """time.monotonic() when it arrived."""


@dataclass
class AgentAudio:
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    """(how many events had arrived before it, PCM16 bytes at the client's rate)"""
    arrived: list[float] = field(default_factory=list)
    """time.monotonic() when each chunk arrived"""

    def pcm16(self, after_event: int = 0, before_event: int | None = None) -> Samples:
        """The audio that arrived between two events (by their index in `events`)."""
        data = b"".join(
            chunk
            for seen, chunk in self.chunks
            if seen > after_event and (before_event is None or seen <= before_event)
        )
        return np.frombuffer(data, "<i2").astype(np.int16)

    def heard(self, events: list[Event], since: float, rate: int) -> Samples:
        """The agent's audio as the caller heard it from `since` (time.monotonic()) on: each
        reply (the audio after an agent.audio.start) begins when its first frame arrived, or
        right after the previous one if that was still playing, and silence fills the time
        between replies. Within a reply the frames stay back to back, so network jitter adds
        no clicks."""
        replies = [0]
        for event in events:
            replies.append(replies[-1] + (event.type == "agent.audio.start"))
        parts: list[Samples] = []
        length = 0
        reply: int | None = None
        for (seen, chunk), at in zip(self.chunks, self.arrived, strict=True):
            current = replies[min(seen, len(events))]
            if current != reply:
                reply = current
                due = round((at - since) * rate)
                if due > length:
                    parts.append(np.zeros(due - length, np.int16))
                    length = due
            samples = np.frombuffer(chunk, "<i2").astype(np.int16)
            parts.append(samples)
            length += samples.size
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def parse_event(text: str, at: float) -> Event:
    """A text message as an event; one that is not a JSON object with a type is kept as an
    `invalid` event holding the text, so a reader never stops on it."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return Event("invalid", {"text": text}, at)
    kind = body.pop("type")
    return Event(kind, body, at)


class VoiceClient:
    """One conversation's WebSocket, with every event and agent audio chunk it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, encoding: str, sample_rate: int):
        self.ws = ws
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.events: list[Event] = []
        self.audio = AgentAudio()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._queued: deque[Samples] = deque()
        self._spoken: asyncio.Future[float] | None = None
        self._line: asyncio.Task[None] | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        http: aiohttp.ClientSession,
        websocket_url: str,
        token: str,
        *,
        encoding: str = "pcm16",
        sample_rate: int = 16_000,
        heartbeat: float | None = None,
    ) -> VoiceClient:
        """Opens the socket and waits for `ready`; `heartbeat` (s) pings the server so that one
        which went away unannounced closes the socket instead of leaving it open for ever."""
        ws = await http.ws_connect(
            websocket_url, headers={"Authorization": f"Bearer {token}"}, heartbeat=heartbeat
        )
        await ws.send_json({"type": "start", "encoding": encoding, "sample_rate": sample_rate})
        client = cls(ws, encoding, sample_rate)
        await client.wait_for("ready")
        return client

    async def _read(self) -> None:
        # Whatever ends the reading (a close, a dropped connection, a message that is not an
        # event), `closed` is set, so nothing waits for events that cannot come.
        try:
            async for message in self.ws:
                now = time.monotonic()
                if message.type is aiohttp.WSMsgType.TEXT:
                    self.events.append(parse_event(message.data, now))
                elif message.type is aiohttp.WSMsgType.BINARY:
                    data = message.data
                    if self.encoding == "mulaw":
                        data = ulaw_decode(data).astype("<i2").tobytes()
                    self.audio.chunks.append((len(self.events), data))
                    self.audio.arrived.append(now)
                self._changed.set()
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._changed.set()

    def closed_because(self) -> str:
        """The close code, with the server's reason when it sent an error event just before."""
        code = "no close code" if self.close_code is None else str(self.close_code)
        last = self.events[-1] if self.events else None
        if last is not None and last.type == "error" and "message" in last.data:
            return f"{code}: {last.data['message']}"
        return code

    def index(self, event: Event) -> int:
        return self.events.index(event)

    async def wait_for(
        self,
        kind: str | tuple[str, ...],
        where: Callable[[Event], bool] = lambda _e: True,
        *,
        after: int = 0,
        timeout: float = 30.0,
    ) -> Event:
        """The first event of `kind` (or of one of the kinds) from index `after` on that `where`
        accepts."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.type in kinds and where(event):
                    return event
            if self.closed.is_set():
                raise ConnectionError(
                    f"socket closed ({self.closed_because()}) before {' or '.join(kinds)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.type for e in self.events]
                raise TimeoutError(f"no {kind} event within {timeout} s; saw {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    def encode(self, samples: Samples) -> bytes:
        if self.encoding == "mulaw":
            return ulaw_encode(samples)
        return samples.astype("<i2").tobytes()

    def open_line(self) -> None:
        """Send audio continuously from now on, like a phone line: what `speak` queues, and
        silence in between."""
        if self._line is None:
            self._line = asyncio.get_running_loop().create_task(self._send_line())

    async def _send_line(self) -> None:
        frame = self.sample_rate * FRAME_MS // 1000
        silence = np.zeros(frame, np.int16)
        due = time.monotonic()
        while not self.ws.closed:
            chunk = self._queued.popleft() if self._queued else silence
            try:
                await self.ws.send_bytes(self.encode(chunk))
            except ConnectionError:
                return
            if not self._queued and self._spoken is not None and not self._spoken.done():
                self._spoken.set_result(time.monotonic())
            due += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def queue(self, samples: Samples) -> asyncio.Future[float]:
        """Put `samples` (at this client's rate) on the line after what is queued already; the
        future is time.monotonic() when the last frame has left."""
        self.open_line()
        frame = self.sample_rate * FRAME_MS // 1000
        for offset in range(0, len(samples), frame):
            chunk = samples[offset : offset + frame]
            if chunk.size < frame:
                chunk = np.concatenate((chunk, np.zeros(frame - chunk.size, np.int16)))
            self._queued.append(chunk)
        if self._spoken is None or self._spoken.done():
            self._spoken = asyncio.get_running_loop().create_future()
        return self._spoken

    async def speak(self, samples: Samples) -> float:
        """Say `samples` on the line in real time; returns when the last frame has left."""
        return await self.queue(samples)

    async def say(self, text: str) -> None:
        await self.ws.send_json({"type": "user.text", "text": text})

    async def dtmf(self, digit: str) -> None:
        await self.ws.send_json({"type": "dtmf", "digit": digit})

    async def end(self) -> None:
        await self.ws.send_json({"type": "end"})

    async def close(self) -> None:
        await self.ws.close()
        if self._line is not None:
            self._line.cancel()
        await asyncio.gather(self._reader, *filter(None, [self._line]), return_exceptions=True)


# The command line ---------------------------------------------------------------------------

SETTINGS_FIELDS = {"voice_speed": (int, float), "voice_pitch": (str,), "recording_enabled": (bool,)}
REPLY_TIMEOUT_S = 120.0
"""How long the agent may take to answer; generous, as a first run may load the speech models."""
END_TIMEOUT_S = 30.0


class Refused(Exception):
    """A problem the user can fix, said in one line."""


@dataclass
class Inputs:
    """Everything the command line asks for, checked before any request is made."""

    api: str
    key: str
    agent: str
    user: str
    rate: int
    speech: Samples | None
    out: Path | None
    initial_context: dict[str, Any]
    settings: dict[str, Any]


def api_base(text: str) -> str:
    try:
        url = yarl.URL(text)
        valid = url.scheme in ("http", "https") and bool(url.host) and url.port is not None
    except ValueError:
        valid = False
    if not valid or url.query_string or url.fragment:
        raise Refused(
            f"--api {text!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8080"
        )
    return text.rstrip("/")


def json_object(flag: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"{flag} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise Refused(f'{flag} must be a JSON object, e.g. \'{{"key": "value"}}\'')
    return value


def conversation_settings(text: str) -> dict[str, Any]:
    settings = json_object("--settings", text)
    for name, value in settings.items():
        kinds = SETTINGS_FIELDS.get(name)
        if kinds is None:
            expected = ", ".join(SETTINGS_FIELDS)
            raise Refused(f"--settings: unknown field {name!r}; the fields are {expected}")
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            wanted = {str: "a string", bool: "true or false"}.get(kinds[0], "a number")
            raise Refused(f"--settings: {name} must be {wanted}")
    return settings


def read_wav(path: Path, rate: int) -> Samples:
    """Any 8- or 16-bit PCM WAV (mono or more channels, mixed down; any sample rate) as mono
    PCM16 at `rate`. Read by hand rather than with `wave`, which refuses the
    WAVE_FORMAT_EXTENSIBLE header many editors write."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Refused(f"--wav {path}: no such file") from None
    except OSError as exc:
        raise Refused(f"--wav {path}: {exc.strerror or exc}") from None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise Refused(f"--wav {path}: not a WAV file")
    chunks: dict[bytes, bytes] = {}
    offset = 12
    while offset + 8 <= len(data):
        name = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        chunks.setdefault(name, data[offset + 8 : offset + 8 + size])
        offset += 8 + size + (size & 1)
    fmt, pcm = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or len(fmt) < 16 or pcm is None:
        raise Refused(f"--wav {path}: a broken WAV file (no fmt or data chunk)")
    tag, channels, in_rate = struct.unpack("<HHI", fmt[:8])
    (bits,) = struct.unpack("<H", fmt[14:16])
    if tag == 0xFFFE and len(fmt) >= 26:
        (tag,) = struct.unpack("<H", fmt[24:26])
    if tag != 1 or bits not in (8, 16):
        kind = f"{bits}-bit PCM" if tag == 1 else f"format {tag:#x}, not PCM"
        raise Refused(f"--wav {path}: {kind}; need 8- or 16-bit PCM (sox in.wav -b 16 out.wav)")
    if channels < 1 or in_rate < 1:
        raise Refused(f"--wav {path}: a broken WAV file ({channels} channels at {in_rate} Hz)")
    width = bits // 8
    frames = len(pcm) // (width * channels)
    if frames == 0:
        raise Refused(f"--wav {path}: holds no audio")
    pcm = pcm[: frames * width * channels]
    if width == 1:
        wide = (np.frombuffer(pcm, np.uint8).astype(np.int32) - 128) * 256
    else:
        wide = np.frombuffer(pcm, "<i2").astype(np.int32)
    mono = wide.reshape(frames, channels).mean(axis=1).round().astype(np.int16)
    return resample(mono, in_rate, rate)


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


def output_path(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise Refused(f"--out {path}: is a directory; name a .wav file")
    if not path.parent.is_dir():
        raise Refused(f"--out {path}: the directory {path.parent} does not exist")
    return path


def check(args: argparse.Namespace) -> Inputs:
    if not args.key.strip():
        raise Refused("--key is empty; pass an API key (vbk_…)")
    if not args.agent.strip():
        raise Refused("--agent is empty; pass an agent id (agt_…)")
    return Inputs(
        api=api_base(args.api),
        key=args.key.strip(),
        agent=args.agent.strip(),
        user=args.user,
        rate=args.rate,
        speech=None if args.wav is None else read_wav(Path(args.wav), args.rate),
        out=None if args.out is None else output_path(args.out),
        initial_context=json_object("--initial-context", args.initial_context),
        settings=conversation_settings(args.settings),
    )


class Api:
    """The REST calls the client makes, each failure said in one line."""

    def __init__(self, http: aiohttp.ClientSession, inputs: Inputs) -> None:
        self.http = http
        self.inputs = inputs

    async def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        base = self.inputs.api
        try:
            async with self.http.request(
                method,
                f"{base}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.inputs.key}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                status, text = response.status, await response.text()
        except aiohttp.ClientConnectorError:
            raise Refused(f"no bridge at {base}; is `./scripts/serve` running?") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
            raise Refused(
                f"the bridge at {base} did not answer {method} {path}: {problem}"
            ) from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Refused(f"{base} does not answer like a voicebridge API ({status} to {path})")
        if status < 300:
            return answer
        found = answer.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        message = error.get("message", text[:200])
        if status == 401:
            raise Refused(f"the API key was refused (401): {message}")
        if error.get("code") == "agent_not_found":
            raise Refused(f"no agent {self.inputs.agent} on this bridge (404): {message}")
        raise Refused(f"{method} {path} failed ({status} {error.get('code', '')}): {message}")

    async def create(self) -> dict[str, Any]:
        return await self.call(
            "POST",
            "/v1/conversations",
            {
                "agent_id": self.inputs.agent,
                "user_id": self.inputs.user,
                "initial_context": self.inputs.initial_context,
                "settings": self.inputs.settings,
            },
        )

    async def end(self, conversation_id: str, reason: str) -> None:
        await self.call("POST", f"/v1/conversations/{conversation_id}/end", {"reason": reason})


class Printer:
    """Prints every event as it arrives, and those left when the socket has closed."""

    def __init__(self, client: VoiceClient) -> None:
        self.client = client
        self.printed = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    def flush(self) -> None:
        for event in self.client.events[self.printed :]:
            print(f"<- {event.type} {json.dumps(event.data)}", flush=True)
        self.printed = len(self.client.events)

    async def _run(self) -> None:
        while not self.client.closed.is_set():
            self.flush()
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.flush()


def typed_lines() -> asyncio.Queue[str | None]:
    """Standard input's lines, read on a daemon thread so the loop keeps receiving (and
    printing) while the user types, and exiting never waits for a line; None at its end."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


async def reply(client: VoiceClient, mark: int) -> bool:
    """Waits for the agent's reply to finish; False when the conversation ended instead."""
    try:
        done = await client.wait_for(
            ("agent.audio.end", "conversation.ended"), after=mark, timeout=REPLY_TIMEOUT_S
        )
    except TimeoutError:
        raise Refused(f"the agent did not answer within {REPLY_TIMEOUT_S:.0f} s") from None
    return done.type == "agent.audio.end"


async def next_line(client: VoiceClient, lines: asyncio.Queue[str | None]) -> str | None:
    """The next typed line; raises ConnectionError when the socket closes first, so a bridge
    that goes away is noticed while the user has nothing to say."""
    typed = asyncio.ensure_future(lines.get())
    closed = asyncio.ensure_future(client.closed.wait())
    await asyncio.wait((typed, closed), return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    if typed.done():
        return typed.result()
    typed.cancel()
    raise ConnectionError("socket closed")


async def converse(client: VoiceClient, inputs: Inputs) -> None:
    if not await reply(client, 0):
        return
    if inputs.speech is not None:
        mark = len(client.events)
        await client.speak(inputs.speech)
        if not await reply(client, mark):
            return
    else:
        if sys.stdin.isatty():
            print("type what to say, one turn a line; Ctrl-D ends the conversation", flush=True)
        lines = typed_lines()
        while (line := await next_line(client, lines)) is not None:
            if not line.strip():
                continue
            mark = len(client.events)
            await client.say(line.strip())
            if not await reply(client, mark):
                return
    mark = len(client.events)
    await client.end()
    await client.wait_for("conversation.ended", after=mark, timeout=END_TIMEOUT_S)


async def talk(inputs: Inputs) -> int:
    async with aiohttp.ClientSession() as http:
        api = Api(http, inputs)
        created = await api.create()
        conversation_id = created["conversation_id"]
        print(f"conversation {conversation_id}", flush=True)
        client: VoiceClient | None = None
        printer: Printer | None = None
        ended = False
        try:
            details = created["connection_details"]
            try:
                client = await VoiceClient.connect(
                    http,
                    details["websocket_url"],
                    details["token"],
                    sample_rate=inputs.rate,
                    heartbeat=20.0,
                )
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                raise Refused(
                    f"could not open the conversation at {details['websocket_url']}: "
                    f"{str(exc) or type(exc).__name__}"
                ) from None
            printer = Printer(client)
            try:
                await converse(client, inputs)
            except ConnectionError:
                raise Refused(
                    f"the bridge closed the connection ({client.closed_because()}) before the "
                    "conversation ended"
                ) from None
            ended = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.closed.wait(), END_TIMEOUT_S)
        except asyncio.CancelledError:
            await cleanup(api, conversation_id, client, printer, ended, "user_ended")
            raise
        except BaseException:
            await cleanup(api, conversation_id, client, printer, ended, "client_error")
            raise
        await cleanup(api, conversation_id, client, printer, ended, "client_error")
        if inputs.out is not None:
            ready = next(e for e in client.events if e.type == "ready")
            heard = client.audio.heard(client.events, ready.at, inputs.rate)
            try:
                write_wav(inputs.out, heard, inputs.rate)
            except OSError as exc:
                raise Refused(f"--out {inputs.out}: {exc.strerror or exc}") from None
            print(f"agent audio saved to {inputs.out} ({heard.size / inputs.rate:.1f} s)")
        return 0


async def cleanup(
    api: Api,
    conversation_id: str,
    client: VoiceClient | None,
    printer: Printer | None,
    ended: bool,
    reason: str,
) -> None:
    """Closes the socket, prints the events left, and ends the conversation through the API
    unless it ended already, so that no failure leaves it dangling."""
    if client is not None:
        ended = ended or any(e.type == "conversation.ended" for e in client.events)
        await client.close()
    if printer is not None:
        await printer.stop()
    if ended:
        return
    try:
        await api.end(conversation_id, reason)
    except Refused as exc:
        print(f"could not end conversation {conversation_id}: {exc}", file=sys.stderr)
    else:
        print(f"conversation {conversation_id} ended", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--api", "--url", default="http://127.0.0.1:8080", help="the bridge's REST API"
    )
    parser.add_argument("--key", required=True, help="an API key (vbk_…)")
    parser.add_argument("--agent", required=True, help="the agent to talk to (agt_…)")
    parser.add_argument("--user", default="example-client", help="the conversation's user_id")
    parser.add_argument(
        "--wav", help="a PCM WAV to say (8/16-bit, any rate, mono or stereo); omit to type text"
    )
    parser.add_argument(
        "--rate", type=int, default=16_000, choices=(8000, 16000), help="the socket's rate"
    )
    parser.add_argument(
        "--out",
        help="save the agent's audio as WAV, on the call's timeline: the replies apart, with "
        "the silence between them as the caller heard it",
    )
    parser.add_argument(
        "--initial-context",
        default="{}",
        help='a JSON object for the agent, e.g. \'{"customer_name": "Ann"}\'',
    )
    parser.add_argument(
        "--settings",
        default="{}",
        help="a JSON object of voice_speed, voice_pitch, recording_enabled, e.g. "
        "'{\"voice_speed\": 1.2}'",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    name = Path(sys.argv[0]).name
    try:
        inputs = check(args)
    except Refused as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(talk(inputs))
    except Refused as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
