"""Server-side HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): the
WWW-Authenticate challenges of a 401 and the check of the Authorization that answers them.

Only our one realm, username and password exist; credentials for any other realm are as good
as none. `qop=auth` is required (RFC 7616 drops the RFC 2069 form without it); MD5 and SHA-256
are offered, in the configured order of preference (RFC 8760 §2.4: a UAC takes the first it
supports, though some, SIPp 3.6 among them, only ever read the first).

Nonces are stateless: a timestamp, a salt and an HMAC over both, the realm and the source the
challenge went to, under a key made at start. A nonce is good for `nonce_ttl` seconds from
that source, and each (nonce, nc, cnonce) once: a replayed Authorization is refused even
within the nonce's life. A nonce past its life, from another source, from before a restart or
already used is answered with a fresh challenge marked stale=true, but only when the digest
itself is right (RFC 7616 §3.3), so only a client that knows the password learns it need not
ask its user again. The digest-uri is not compared with the Request-URI: SIPp puts
`sip:host:port` there, and the single-use rule already stops a captured answer from being
reused on another request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Sequence
from enum import Enum

from bridge.sip.grammar import SipParseError, expect, quote, read_quoted, read_token, skip_ws
from bridge.sip.timers import Clock

# RFC 7616's algorithm names and hashlib's.
HASHES = {"MD5": "md5", "SHA-256": "sha256"}
DEFAULT_ALGORITHMS = ("SHA-256", "MD5")
_SALT = 8
_MAC = 16
_NONCE = struct.Struct(">Q")


class Outcome(Enum):
    OK = "ok"
    MISSING = "no credentials for our realm"
    STALE = "right digest, nonce expired, foreign or used"
    FAILED = "wrong credentials"


class DigestAuthenticator:
    def __init__(
        self,
        realm: str,
        username: str,
        password: str,
        clock: Clock,
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        nonce_ttl: float = 30.0,
        replay_capacity: int = 16_384,
    ) -> None:
        unknown = [name for name in algorithms if name not in HASHES]
        if unknown or not algorithms:
            raise ValueError(f"digest algorithms must be among {', '.join(HASHES)}")
        self.realm = realm
        self._username = username.encode()
        self._password = password
        self._clock = clock
        self.algorithms = tuple(algorithms)
        self._ttl = nonce_ttl
        # Derived from the credentials, not random: behind a balancer the answer to one node's
        # challenge may reach another, which must take its nonce. Replays are still refused
        # per node (each keeps its own memory of used nonces).
        self._key = hashlib.sha256(
            b"voicebridge digest nonce\0" + realm.encode() + b"\0" + password.encode()
        ).digest()
        self._replay_capacity = replay_capacity
        self._used: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def challenge(self, source: str, *, stale: bool = False) -> list[str]:
        """The WWW-Authenticate values of a 401 to a request from `source`, one per
        algorithm, all with the same nonce."""
        nonce = self._nonce(source)
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm={quote(self.realm)}, nonce="{nonce}", algorithm={name}, qop="auth"{tail}'
            for name in self.algorithms
        ]

    def verify(self, method: str, authorizations: Sequence[str], source: str) -> Outcome:
        """Check the Authorization values of a `method` request from `source`."""
        for value in authorizations:
            parts = value.split(None, 1)
            if not parts or parts[0].lower() != "digest":
                continue
            try:
                params = parse_digest_params(parts[1] if len(parts) > 1 else "")
            except SipParseError:
                return Outcome.FAILED
            if params.get("realm") == self.realm:
                return self._check(method, params, source)
        return Outcome.MISSING

    def _check(self, method: str, params: dict[str, str], source: str) -> Outcome:
        algorithm = params.get("algorithm", "MD5")
        canonical = next((a for a in self.algorithms if a.lower() == algorithm.lower()), None)
        username, nonce, uri = params.get("username"), params.get("nonce"), params.get("uri")
        response, nc, cnonce = params.get("response"), params.get("nc"), params.get("cnonce")
        if (
            canonical is None
            or params.get("qop", "").lower() != "auth"
            or username is None
            or nonce is None
            or uri is None
            or response is None
            or nc is None
            or cnonce is None
        ):
            return Outcome.FAILED
        hash_name = HASHES[canonical]

        def h(text: str) -> str:
            return hashlib.new(hash_name, text.encode()).hexdigest()

        ha1 = h(f"{username}:{self.realm}:{self._password}")
        ha2 = h(f"{method}:{uri}")
        expected = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        # Both compared whatever the first gives, so timing tells neither apart.
        right_user = hmac.compare_digest(username.encode(), self._username)
        right_digest = hmac.compare_digest(expected.encode(), response.lower().encode())
        if not (right_user and right_digest):
            return Outcome.FAILED
        issued = self._issued(nonce, source)
        if issued is None or self._clock.now() - issued > self._ttl:
            return Outcome.STALE
        if not self._first_use((nonce, nc.lower(), cnonce), issued + self._ttl):
            return Outcome.STALE
        return Outcome.OK

    def _nonce(self, source: str) -> str:
        stamp = _NONCE.pack(max(0, int(self._clock.now() * 1000)))
        body = stamp + secrets.token_bytes(_SALT)
        raw = body + self._mac(body, source)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _issued(self, nonce: str, source: str) -> float | None:
        """When a nonce of ours for `source` was made; None when it is not one."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        size = _NONCE.size + _SALT
        if len(raw) != size + _MAC:
            return None
        body, mac = raw[:size], raw[size:]
        if not hmac.compare_digest(mac, self._mac(body, source)):
            return None
        (millis,) = _NONCE.unpack(body[: _NONCE.size])
        return float(millis / 1000)

    def _mac(self, body: bytes, source: str) -> bytes:
        bound = body + b"\0" + self.realm.encode() + b"\0" + source.encode()
        return hmac.new(self._key, bound, hashlib.sha256).digest()[:_MAC]

    def _first_use(self, key: tuple[str, str, str], expires: float) -> bool:
        now = self._clock.now()
        used = self._used
        # Entries go in at about the order they expire (one TTL), so the dead are in front.
        while used and next(iter(used.values())) < now:
            used.popitem(last=False)
        if key in used:
            return False
        if len(used) >= self._replay_capacity:
            used.popitem(last=False)
        used[key] = expires
        return True


def parse_digest_params(value: str) -> dict[str, str]:
    """The `digest-response` parameters of RFC 3261 §25.1 (what follows "Digest "), names
    lower-cased, quoted values unquoted. A parameter given twice is an error."""
    params: dict[str, str] = {}
    pos = skip_ws(value, 0)
    while pos < len(value):
        name, pos = read_token(value, pos)
        pos = expect(value, pos, "=")
        if pos < len(value) and value[pos] == '"':
            text, pos = read_quoted(value, pos)
        else:
            text, pos = read_token(value, pos)
        key = name.lower()
        if key in params:
            raise SipParseError(f"{name} given twice")
        params[key] = text
        pos = skip_ws(value, pos)
        if pos < len(value):
            pos = expect(value, pos, ",")
    return params
