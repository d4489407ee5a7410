"""Which webhook URLs are accepted: https anywhere, plain http only to this machine's loopback
and only when the operator allowed it (for development and tests)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class UrlRejected(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, *, allow_insecure: bool) -> str:
    """Return `url` when acceptable, else raise UrlRejected saying why."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UrlRejected("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise UrlRejected(f"url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRejected("url must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise UrlRejected("url must not contain credentials (user:password@); use the secret")
    host = parts.hostname
    if not host:
        raise UrlRejected("url must include a host")
    if not port_ok:
        raise UrlRejected("url has an invalid port")
    if scheme == "http":
        if not is_loopback(host):
            raise UrlRejected(
                "url must use https; http:// is accepted only for loopback hosts "
                "(127.0.0.0/8, ::1, localhost) when webhook_allow_insecure is set"
            )
        if not allow_insecure:
            raise UrlRejected(
                "url must use https; http:// to a loopback host needs webhook_allow_insecure"
            )
    return url
