"""What the app's handlers share, kept on the aiohttp Application under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from api.metrics import ApiMetrics
from api.voice import VoiceService
from bridge.settings import Settings
from bridge.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    metrics: ApiMetrics
    voice: VoiceService
    draining: bool = False
    """Set from SIGTERM on: readiness answers 503 so balancers send calls elsewhere."""

    @staticmethod
    def of(app: web.Application) -> AppState:
        return app[STATE]


STATE = web.AppKey("state", AppState)
