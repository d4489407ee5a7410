"""One signed POST of an event body to a webhook URL, reduced to what the schedule and the log
need. Redirects are not followed: a receiver that moved must be updated by its owner."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from api.delivery import schedule, signing

USER_AGENT = "voicebridge-webhooks/1"


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    """None when no response came."""
    retry_after: str | None
    duration_ms: float
    failure: Failure | None
    """Why it did not succeed; None on a 2xx."""


def status_failure(status: int) -> Failure | None:
    if schedule.succeeded(status):
        return None
    if status == schedule.GONE:
        return Failure("endpoint_gone", "receiver answered HTTP 410 Gone")
    if 300 <= status < 400:
        return Failure(
            "redirect_not_followed", f"receiver answered HTTP {status}; redirects are not followed"
        )
    return Failure("http_error", f"receiver answered HTTP {status}")


async def send(
    session: aiohttp.ClientSession,
    *,
    url: str,
    secret: str,
    event_id: str,
    event_type: str,
    body: str,
    timeout: float,
) -> AttemptResult:
    payload = body.encode("utf-8")
    headers = signing.signed_headers(
        event_id=event_id,
        event_type=event_type,
        body=payload,
        secret=secret,
        timestamp=int(time.time()),
    )
    headers["User-Agent"] = USER_AGENT
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with session.post(
            url,
            data=payload,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except TimeoutError:
        return AttemptResult(
            None, None, elapsed(), Failure("timeout", f"no response within {timeout:g} s")
        )
    except aiohttp.ClientError as exc:
        reason = str(exc) or type(exc).__name__
        return AttemptResult(
            None, None, elapsed(), Failure("connection_failed", f"could not deliver: {reason}")
        )
    return AttemptResult(status, retry_after, elapsed(), status_failure(status))
