"""What the network engines share about HTTP answers."""

from __future__ import annotations

import aiohttp

from bridge.dialog.base import EngineError

MAX_ERROR_BODY = 300
"""Characters of an error answer quoted in the error report."""


async def check_status(response: aiohttp.ClientResponse) -> None:
    """Raise dialog_http_error, quoting the start of the body, unless the status is 2xx."""
    if 200 <= response.status < 300:
        return
    body = await response.content.read(MAX_ERROR_BODY)
    text = body.decode("utf-8", errors="replace").strip()
    detail = f": {text}" if text else ""
    raise EngineError("dialog_http_error", f"HTTP {response.status} from {response.url}{detail}")
