"""A voicebridge WebSocket client: talk to an agent from a WAV file or typed text.

    python examples/ws_client.py --api http://127.0.0.1:8080 --key vbk_… --agent agt_… \\
        --wav question.wav --out reply.wav

creates a conversation through the REST API, streams the WAV in real time (as a caller would),
prints the events as they arrive, saves what the agent said to --out, and ends the
conversation. Without --wav it reads lines from standard input and sends them as text turns.
The `VoiceClient` class is also what the test suite and bench/pipeline.py use. Run it from
the repository root with the project's environment (`.venv/bin/python examples/ws_client.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
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

from media.g711 import ulaw_decode, ulaw_encode

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

    def pcm16(self, after_event: int = 0, before_event: int | None = None) -> Samples:
        """The audio that arrived between two events (by their index in `events`)."""
        data = b"".join(
            chunk
            for seen, chunk in self.chunks
            if seen > after_event and (before_event is None or seen <= before_event)
        )
        return np.frombuffer(data, "<i2").astype(np.int16)


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
    ) -> VoiceClient:
        ws = await http.ws_connect(websocket_url, headers={"Authorization": f"Bearer {token}"})
        await ws.send_json({"type": "start", "encoding": encoding, "sample_rate": sample_rate})
        client = cls(ws, encoding, sample_rate)
        await client.wait_for("ready")
        return client

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.monotonic()
            if message.type is aiohttp.WSMsgType.TEXT:
                body = json.loads(message.data)
                self.events.append(Event(body.pop("type"), body, now))
            elif message.type is aiohttp.WSMsgType.BINARY:
                data = message.data
                if self.encoding == "mulaw":
                    data = ulaw_decode(data).astype("<i2").tobytes()
                self.audio.chunks.append((len(self.events), data))
            self._changed.set()
        self.close_code = self.ws.close_code
        self.closed.set()
        self._changed.set()

    def index(self, event: Event) -> int:
        return self.events.index(event)

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Event], bool] = lambda _e: True,
        *,
        after: int = 0,
        timeout: float = 30.0,
    ) -> Event:
        """The first event of `kind` (from index `after` on) that `where` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.type == kind and where(event):
                    return event
            if self.closed.is_set():
                raise ConnectionError(f"socket closed ({self.close_code}) before {kind}")
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


def read_wav(path: Path) -> tuple[Samples, int]:
    with wave.open(str(path)) as clip:
        if clip.getnchannels() != 1 or clip.getsampwidth() != 2:
            raise SystemExit(f"{path}: need a mono 16-bit WAV")
        data = clip.readframes(clip.getnframes())
        return np.frombuffer(data, "<i2").astype(np.int16), clip.getframerate()


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


async def main(args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {args.key}"}
    async with aiohttp.ClientSession() as http:
        created = await http.post(
            f"{args.api}/v1/conversations",
            json={"agent_id": args.agent, "user_id": args.user},
            headers=headers,
        )
        body = await created.json()
        if created.status != 201:
            raise SystemExit(f"creating the conversation failed: {body}")
        details = body["connection_details"]
        print(f"conversation {body['conversation_id']}")
        client = await VoiceClient.connect(
            http, details["websocket_url"], details["token"], sample_rate=args.rate
        )
        printed = 0

        async def show() -> None:
            nonlocal printed
            while not client.closed.is_set():
                for event in client.events[printed:]:
                    print(f"<- {event.type} {json.dumps(event.data)}")
                printed = len(client.events)
                await asyncio.sleep(0.1)

        shower = asyncio.get_running_loop().create_task(show())
        await client.wait_for("agent.audio.end", timeout=60)
        if args.wav:
            samples, rate = read_wav(Path(args.wav))
            if rate != args.rate:
                raise SystemExit(f"{args.wav} is {rate} Hz; pass --rate {rate}")
            mark = len(client.events)
            await client.speak(samples)
            await client.wait_for("agent.audio.end", after=mark, timeout=60)
        else:
            for line in sys.stdin:
                if line.strip():
                    mark = len(client.events)
                    await client.say(line.strip())
                    await client.wait_for("agent.audio.end", after=mark, timeout=60)
        await client.end()
        await client.wait_for("conversation.ended", timeout=30)
        await client.close()
        shower.cancel()
        if args.out:
            write_wav(Path(args.out), client.audio.pcm16(), args.rate)
            print(f"agent audio saved to {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="an API key (vbk_…)")
    parser.add_argument("--agent", required=True, help="the agent to talk to (agt_…)")
    parser.add_argument("--user", default="example-client")
    parser.add_argument("--wav", help="mono 16-bit WAV to say; omit to type text turns")
    parser.add_argument("--rate", type=int, default=16_000, choices=(8000, 16000))
    parser.add_argument("--out", help="where to save the agent's audio as WAV")
    asyncio.run(main(parser.parse_args()))
