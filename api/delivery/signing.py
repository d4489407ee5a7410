"""Signatures a receiver checks: our hex `X-Signature` over the raw body, and the
Standard-Webhooks `webhook-signature` over `{id}.{timestamp}.{body}`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from bridge.signing import hex_signature

STANDARD_SECRET_PREFIX = "whsec_"


def standard_key(secret: str) -> bytes:
    """Standard-Webhooks keys are the base64 bytes after `whsec_`; any other secret (one a
    customer chose) is used as its UTF-8 bytes, as for `X-Signature`."""
    if secret.startswith(STANDARD_SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(STANDARD_SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            key = b""
        if key:
            return key
    return secret.encode("utf-8")


def standard_signature(message_id: str, timestamp: int, body: bytes, secret: str) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    *, event_id: str, event_type: str, body: bytes, secret: str, timestamp: int
) -> dict[str, str]:
    """Headers of one attempt. The id is the event's, so a receiver can drop retries it has
    already processed; the timestamp is the attempt's."""
    return {
        "Content-Type": "application/json",
        "X-Signature": hex_signature(body, secret),
        "X-Webhook-Id": event_id,
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Event": event_type,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(event_id, timestamp, body, secret),
    }
