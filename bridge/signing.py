"""The X-Signature we put on what we POST to customers (event webhooks, the webhook dialog
engine): hex HMAC-SHA256 of the exact body bytes, keyed with the secret as UTF-8 text."""

from __future__ import annotations

import hashlib
import hmac


def hex_signature(body: bytes, secret: str) -> str:
    """What the published verifier recomputes: HMAC-SHA256 of the exact body bytes."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
