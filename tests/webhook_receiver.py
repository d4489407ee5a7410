"""A real webhook receiver on 127.0.0.1 for tests: it records every request, checks both
signatures the way a customer would, and answers as each test scripts it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


# The verifier the API documentation publishes, verbatim.
def verify_webhook_signature(payload, signature, secret):  # type: ignore[no-untyped-def]
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def verify_standard_signature(secret: str, headers: Any, body: bytes) -> bool:
    """Standard Webhooks verification, written from its specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (p.partition(",") for p in headers["webhook-signature"].split())
    )


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float
    signed_ok: bool
    standard_ok: bool

    @property
    def event_id(self) -> str:
        return self.headers["X-Webhook-Id"]

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def conversation_id(self) -> str:
        return str(self.payload["data"].get("conversation_id"))


Behaviour = Callable[[Received, int], Awaitable[web.Response]]


async def ok(_received: Received, _nth: int) -> web.Response:
    return web.Response(status=200, text="ok")


@dataclass
class Endpoint:
    secret: str
    behaviour: Behaviour = ok
    received: list[Received] = field(default_factory=list)


class Receiver:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str, behaviour: Behaviour = ok) -> Endpoint:
        self.endpoints[path] = Endpoint(secret, behaviour)
        return self.endpoints[path]

    def at(self, path: str) -> list[Received]:
        return self.endpoints[path].received

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = self.endpoints.get(request.path)
        if endpoint is None:
            return web.Response(status=404)
        body = await request.read()
        headers = CIMultiDict(request.headers)
        received = Received(
            path=request.path,
            headers=headers,
            body=body,
            at=asyncio.get_running_loop().time(),
            signed_ok=verify_webhook_signature(body, headers["X-Signature"], endpoint.secret),
            standard_ok=verify_standard_signature(endpoint.secret, headers, body),
        )
        endpoint.received.append(received)
        async with self._changed:
            self._changed.notify_all()
        return await endpoint.behaviour(received, len(endpoint.received))


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, every: float = 0.02
) -> None:
    """Wait until `check` holds; fail the test if it does not within `timeout`."""
    async with asyncio.timeout(timeout):
        # Polling: the state checked lives in Redis, which has nothing to wait on.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(every)
