"""Models are loaded once per test session: they take seconds and hundreds of MB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from media.asr import MoonshineModel
from media.festival import slt
from media.tts import Speaker, joe


@pytest.fixture(scope="session")
def asr_model() -> MoonshineModel:
    return MoonshineModel()


@pytest.fixture(scope="session")
def male_speaker() -> Speaker:
    return Speaker(joe())


@pytest.fixture(scope="session")
def female_speaker() -> Iterator[Speaker]:
    voice = slt()
    yield Speaker(voice)
    voice.close()
