"""What the phone-call tests share: the agent they call, pcaps of caller audio, and waiting
for the call's conversation to get somewhere."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from tests.sipp import wav_to_pcap

Client = TestClient[Any, Any]

NUMBER = "+15550100"
GREETING = "Hello! How can I help you today?"


async def make_agent(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """An agent answering `NUMBER` with `GREETING`; `fields` add to or replace its settings."""
    body: dict[str, Any] = {
        "name": "Support line",
        "phone_numbers": [NUMBER],
        "custom_responses": {"greeting": GREETING},
        **fields,
    }
    made = await client.post("/v1/agents", json=body, headers=auth)
    assert made.status == 201, await made.text()
    agent: dict[str, Any] = await made.json()
    return agent


def write_pcap(directory: Path, samples: np.ndarray[Any, np.dtype[np.int16]]) -> Path:
    wav_path, pcap = directory / "caller.wav", directory / "caller.pcap"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(samples.astype("<i2").tobytes())
    wav_to_pcap(wav_path, pcap, "PCMU")
    return pcap


async def the_conversation(
    client: Client, auth: dict[str, str], ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The one conversation, once `ready` says so."""
    for _ in range(300):
        listed = await (await client.get("/v1/conversations", headers=auth)).json()
        if listed["data"]:
            cid = listed["data"][0]["conversation_id"]
            detail: dict[str, Any] = await (
                await client.get(f"/v1/conversations/{cid}", headers=auth)
            ).json()
            if ready(detail):
                return detail
        await asyncio.sleep(0.1)
    raise AssertionError("the conversation did not get there in time")


def ended(conversation: dict[str, Any]) -> bool:
    return str(conversation["status"]) != "active"
