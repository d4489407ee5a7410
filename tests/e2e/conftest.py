"""End-to-end fixtures: the real app with the real voice models, over real WebSockets, on the
system Redis (the API tests already cover the embedded one; these are slow enough once)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.metrics import ApiMetrics
from api.state import AppState
from bridge.phone import user_agent
from bridge.settings import Settings
from bridge.sip.useragent import UserAgent
from bridge.store import Store
from bridge.voice_runtime import Models, VoiceRuntime
from examples.ws_client import VoiceClient
from media.asr import MoonshineModel
from tests.ports import free_port

Client = TestClient[Any, Any]


@pytest.fixture(scope="session")
async def redis_url(system_redis_url: str) -> str:
    return system_redis_url


@pytest.fixture(scope="session")
async def runtime() -> AsyncIterator[VoiceRuntime]:
    shared = VoiceRuntime()
    await shared.ready()
    yield shared
    shared.close()


@pytest.fixture(scope="session")
async def models(runtime: VoiceRuntime) -> Models:
    return await runtime.ready()


@pytest.fixture(scope="session")
def asr(models: Models) -> MoonshineModel:
    return models.asr


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ws_reconnect_grace": 1.0})


@pytest.fixture
async def voice_client(
    settings: Settings, store: Store, runtime: VoiceRuntime
) -> AsyncIterator[Client]:
    app = create_app(settings, store, ApiMetrics(), runtime=runtime)
    async with TestClient(TestServer(app)) as client:
        yield client


Connect = Callable[..., Awaitable[tuple[VoiceClient, dict[str, Any]]]]


@pytest.fixture
async def converse(voice_client: Client, auth: dict[str, str]) -> AsyncIterator[Connect]:
    """Creates an agent and a conversation through the API and connects a VoiceClient."""
    opened: list[VoiceClient] = []

    async def connect(
        agent: dict[str, Any] | None = None,
        conversation: dict[str, Any] | None = None,
        *,
        encoding: str = "pcm16",
        sample_rate: int = 16_000,
    ) -> tuple[VoiceClient, dict[str, Any]]:
        made = await voice_client.post(
            "/v1/agents", json={"name": "Support", **(agent or {})}, headers=auth
        )
        assert made.status == 201, await made.text()
        agent_id = (await made.json())["agent_id"]
        created = await voice_client.post(
            "/v1/conversations",
            json={"agent_id": agent_id, "user_id": "caller_1", **(conversation or {})},
            headers=auth,
        )
        assert created.status == 201, await created.text()
        body: dict[str, Any] = await created.json()
        url = str(voice_client.make_url(f"/v1/ws/{body['conversation_id']}"))
        client = await VoiceClient.connect(
            voice_client.session,
            url,
            body["connection_details"]["token"],
            encoding=encoding,
            sample_rate=sample_rate,
        )
        opened.append(client)
        return client, body

    yield connect
    for client in opened:
        await client.close()


StartUserAgent = Callable[..., Awaitable[UserAgent]]


@pytest.fixture
async def start_user_agent(
    settings: Settings, voice_client: Client
) -> AsyncIterator[StartUserAgent]:
    """Starts SIP user agents for `voice_client`'s app on free loopback ports; keyword arguments
    change their settings (e.g. a default agent, which must exist before calls come)."""
    started: list[UserAgent] = []
    state = AppState.of(voice_client.app)

    async def start(**overrides: Any) -> UserAgent:
        changes = {"sip_host": "127.0.0.1", "sip_port": free_port(), **overrides}
        sip = settings.model_copy(update=changes)
        ua = user_agent(sip, state.store, state.voice.sessions, state.voice.clock)
        await ua.start()
        started.append(ua)
        return ua

    yield start
    for ua in started:
        await ua.drain_and_stop(5.0)
        await ua.close()


@pytest.fixture
async def phone(voice_client: Client, start_user_agent: StartUserAgent) -> tuple[Client, UserAgent]:
    """The app and its SIP user agent: a bridge that answers calls."""
    return voice_client, await start_user_agent()
