"""What `serve` made while starting is kept out of later garbage collections, once the node is
ready: a full collection would otherwise walk every module, schema and model object again on
the event loop, stalling every call's audio."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import pytest

from api.server import preload
from bridge.sip.useragent import UserAgent
from bridge.voice_runtime import VoiceRuntime


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Runtime:
    async def ready(self) -> None:
        return None

    def voices(self) -> dict[str, str]:
        return {"female": "ok"}


async def test_a_ready_node_keeps_what_start_up_made_out_of_collections(unfrozen: None) -> None:
    made_at_start = [[index] for index in range(1000)]
    phone = SimpleNamespace(not_ready="speech models loading")
    await preload(cast(VoiceRuntime, Runtime()), cast(UserAgent, phone), "n1")
    assert phone.not_ready is None
    assert gc.get_freeze_count() >= len(made_at_start)
    collected = {id(tracked) for tracked in gc.get_objects(generation=2)}
    assert not any(id(item) in collected for item in made_at_start)
