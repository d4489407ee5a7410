"""Identifiers and secrets.

Ids are a prefix plus 26 Crockford base32 characters: 48 bits of milliseconds then 80 random
bits, so ids sort by creation time and never collide in practice. Within one millisecond a
process counts up from its last random part (monotonic ULIDs), so lists ordered by id keep the
order things were made in, however fast they were made.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BODY = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")

AGENT = "agt"
CONVERSATION = "conv"
MESSAGE = "msg"
WEBHOOK = "wh"
EVENT = "evt"
DELIVERY = "dlv"
API_KEY = "key"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


_RANDOM_BITS = 80
_last = (0, 0)
_lock = threading.Lock()


def new_id(prefix: str, now_ms: int | None = None) -> str:
    global _last
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        last_ms, last_random = _last
        if ms == last_ms and last_random + 1 < 1 << _RANDOM_BITS:
            random = last_random + 1
        else:
            random = secrets.randbits(_RANDOM_BITS)
        _last = (ms, random)
    body = _encode(ms & ((1 << 48) - 1), 10) + _encode(random, 16)
    return f"{prefix}_{body}"


def is_id(value: str, prefix: str) -> bool:
    head, sep, body = value.partition("_")
    return sep == "_" and head == prefix and bool(_BODY.match(body))


def new_conversation_token() -> str:
    return "cvt_" + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    # base64 of 32 bytes after the prefix, so Standard-Webhooks libraries can use it as is.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> tuple[str, str]:
    """Return (prefix, full key). The prefix is the lookup handle stored in clear."""
    prefix = secrets.token_hex(6)
    return prefix, f"vbk_{prefix}_{secrets.token_urlsafe(32)}"


def parse_api_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "vbk" or not re.fullmatch(r"[0-9a-f]{12}", parts[1]):
        return None
    return parts[1]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
