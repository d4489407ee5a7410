from __future__ import annotations

import base64
import hashlib
import hmac
import json

from api.delivery.signing import signed_headers, standard_key, standard_signature

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = json.dumps({"id": "evt_1", "event": "message.received", "data": {"text": "héllo"}}).encode()


# The verifier the API documentation publishes, verbatim.
def verify_webhook_signature(payload, signature, secret):  # type: ignore[no-untyped-def]
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def headers(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return signed_headers(
        event_id="evt_1", event_type="message.received", body=body, secret=secret, timestamp=1700
    )


def standard_verify(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Standard Webhooks verification, written from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (part.partition(",") for part in header.split())
    )


def test_published_verifier_accepts_x_signature() -> None:
    assert verify_webhook_signature(BODY, headers()["X-Signature"], SECRET)


def test_published_verifier_rejects_a_tampered_body_or_other_secret() -> None:
    signature = headers()["X-Signature"]
    assert not verify_webhook_signature(BODY.replace(b"llo", b"lp!"), signature, SECRET)
    assert not verify_webhook_signature(BODY, signature, SECRET + "x")


def test_signature_covers_the_exact_bytes_not_the_json_value() -> None:
    reserialized = json.dumps(json.loads(BODY), ensure_ascii=False).encode()
    assert reserialized != BODY
    assert not verify_webhook_signature(reserialized, headers()["X-Signature"], SECRET)


def test_customer_secret_without_prefix_signs_with_its_utf8_bytes() -> None:
    secret = "my-own-secret-ünïcode"
    assert verify_webhook_signature(BODY, headers(secret=secret)["X-Signature"], secret)
    assert standard_key(secret) == secret.encode("utf-8")


def test_standard_webhooks_signature_verifies() -> None:
    h = headers()
    assert h["webhook-id"] == h["X-Webhook-Id"] == "evt_1"
    assert h["webhook-timestamp"] == h["X-Webhook-Timestamp"] == "1700"
    assert h["X-Webhook-Event"] == "message.received"
    assert h["Content-Type"] == "application/json"
    assert standard_verify(SECRET, "evt_1", "1700", BODY, h["webhook-signature"])
    assert not standard_verify(SECRET, "evt_1", "1701", BODY, h["webhook-signature"])
    assert not standard_verify(SECRET, "evt_1", "1700", BODY + b" ", h["webhook-signature"])


def test_standard_webhooks_reference_vector() -> None:
    # The test vector of the Standard Webhooks specification.
    signature = standard_signature(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_whsec_secret_that_is_not_base64_falls_back_to_its_utf8_bytes() -> None:
    assert standard_key("whsec_not base64!") == b"whsec_not base64!"
    assert standard_key("whsec_") == b"whsec_"
