from __future__ import annotations

import pytest

from api.delivery.url_policy import UrlRejected, check_webhook_url


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "https://example.com:8443/hooks?x=1",
        "HTTPS://Example.COM/",
        "https://[2001:db8::1]/hook",
        "https://10.0.0.5/internal",
    ],
)
def test_https_is_accepted(url: str) -> None:
    assert check_webhook_url(url, allow_insecure=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.5.6.7/hook",
        "http://localhost:9000/",
        "http://LOCALHOST/",
        "http://[::1]:9000/hook",
    ],
)
def test_http_to_loopback_only_when_allowed(url: str) -> None:
    assert check_webhook_url(url, allow_insecure=True) == url
    with pytest.raises(UrlRejected, match="webhook_allow_insecure"):
        check_webhook_url(url, allow_insecure=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "http://10.0.0.1/hook",
        "http://128.0.0.1/hook",
        "http://localhost.example.com/hook",
        "http://[::2]/hook",
    ],
)
def test_http_elsewhere_is_refused_even_when_insecure_is_allowed(url: str) -> None:
    with pytest.raises(UrlRejected, match="must use https"):
        check_webhook_url(url, allow_insecure=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "https://"),
        ("javascript:alert(1)", "https://"),
        ("example.com/hook", "https://"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("https:///path-only", "host"),
        ("https://", "host"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com:0/", "port"),
        ("https://[::1/", "not a valid URL"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/\r\nX-Injected: 1", "control"),
    ],
)
def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UrlRejected, match=why):
        check_webhook_url(url, allow_insecure=True)
