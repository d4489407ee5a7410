"""Digest challenges and the check of their answers, on a manual clock."""

from __future__ import annotations

import hashlib
import re

import pytest

from bridge.sip.digest import DigestAuthenticator, Outcome, parse_digest_params
from bridge.sip.grammar import SipParseError
from bridge.sip.timers import ManualClock

SOURCE = "198.51.100.7"
URI = "sip:bot@192.0.2.1"


def authenticator(**options: object) -> tuple[DigestAuthenticator, ManualClock]:
    clock = ManualClock(1000.0)
    auth = DigestAuthenticator("voicebridge", "trunk", "s3cret", clock, **options)  # type: ignore[arg-type]
    return auth, clock


def challenge_params(value: str) -> dict[str, str]:
    scheme, rest = value.split(" ", 1)
    assert scheme == "Digest"
    return parse_digest_params(rest)


def answer(
    challenge: str,
    *,
    username: str = "trunk",
    password: str = "s3cret",
    realm: str | None = None,
    method: str = "INVITE",
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    algorithm: str | None = None,
) -> str:
    """What a UAC sends back for `challenge`."""
    params = challenge_params(challenge)
    realm = realm or params["realm"]
    algorithm = algorithm or params["algorithm"]
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{URI}")
    response = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{params["nonce"]}", '
        f'uri="{URI}", response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, '
        f'cnonce="{cnonce}"'
    )


def test_challenges_in_order_of_preference() -> None:
    auth, _ = authenticator()
    sha, md5 = auth.challenge(SOURCE)
    assert challenge_params(sha)["algorithm"] == "SHA-256"
    assert challenge_params(md5)["algorithm"] == "MD5"
    for value in (sha, md5):
        params = challenge_params(value)
        assert params["realm"] == "voicebridge"
        assert params["qop"] == "auth"
        assert "stale" not in params
    assert challenge_params(sha)["nonce"] == challenge_params(md5)["nonce"]
    assert challenge_params(auth.challenge(SOURCE, stale=True)[0])["stale"] == "true"
    # Each challenge has a nonce of its own.
    assert challenge_params(auth.challenge(SOURCE)[0])["nonce"] != challenge_params(sha)["nonce"]
    (only,) = authenticator(algorithms=("MD5",))[0].challenge(SOURCE)
    assert challenge_params(only)["algorithm"] == "MD5"


def test_unknown_algorithms_are_refused() -> None:
    with pytest.raises(ValueError, match="algorithms"):
        authenticator(algorithms=("SHA-512",))
    with pytest.raises(ValueError, match="algorithms"):
        authenticator(algorithms=())


@pytest.mark.parametrize("index", [0, 1])
def test_right_credentials(index: int) -> None:
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[index]
    assert auth.verify("INVITE", [answer(challenge)], SOURCE) is Outcome.OK


def test_no_credentials_or_other_realms_are_missing() -> None:
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[0]
    assert auth.verify("INVITE", [], SOURCE) is Outcome.MISSING
    other = answer(challenge, realm="elsewhere")
    assert auth.verify("INVITE", [other], SOURCE) is Outcome.MISSING
    assert auth.verify("INVITE", ["Basic dHJ1bms6czNjcmV0"], SOURCE) is Outcome.MISSING
    # Credentials for several realms (§22.4): ours is the one checked.
    assert auth.verify("INVITE", [other, answer(challenge)], SOURCE) is Outcome.OK


@pytest.mark.parametrize(
    "change",
    [
        {"password": "wrong"},
        {"username": "admin"},
        {"method": "BYE"},
        {"algorithm": "SHA-256", "password": "wrong"},
    ],
)
def test_wrong_credentials_fail(change: dict[str, str]) -> None:
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[0]
    assert auth.verify("INVITE", [answer(challenge, **change)], SOURCE) is Outcome.FAILED


@pytest.mark.parametrize(
    "mangle",
    [
        lambda value: value.replace("qop=auth", "qop=auth-int"),
        lambda value: value.replace(", qop=auth", ""),
        lambda value: value.replace("algorithm=SHA-256", "algorithm=SHA-512"),
        lambda value: re.sub(r", cnonce=\"[^\"]*\"", "", value),
        lambda value: re.sub(r", nc=\w+", "", value),
        lambda value: value + ', realm="voicebridge"',
        lambda value: value.replace('uri="', 'uri=<"'),
    ],
)
def test_malformed_credentials_fail(mangle: object) -> None:
    assert callable(mangle)
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[0]
    assert auth.verify("INVITE", [mangle(answer(challenge))], SOURCE) is Outcome.FAILED


def test_algorithm_defaults_to_md5_and_must_be_offered() -> None:
    auth, _ = authenticator()
    md5 = answer(auth.challenge(SOURCE)[1])
    assert auth.verify("INVITE", [md5.replace(", algorithm=MD5", "")], SOURCE) is Outcome.OK
    sha_only, _ = authenticator(algorithms=("SHA-256",))
    offered = sha_only.challenge(SOURCE)[0]
    assert sha_only.verify("INVITE", [answer(offered, algorithm="MD5")], SOURCE) is Outcome.FAILED


def test_expired_nonce_is_stale_only_with_the_right_digest() -> None:
    auth, clock = authenticator(nonce_ttl=30.0)
    challenge = auth.challenge(SOURCE)[0]
    clock.advance(30.5)
    assert auth.verify("INVITE", [answer(challenge)], SOURCE) is Outcome.STALE
    assert auth.verify("INVITE", [answer(challenge, password="x")], SOURCE) is Outcome.FAILED


def test_nonce_is_bound_to_source_and_credentials_not_to_the_process() -> None:
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[0]
    assert auth.verify("INVITE", [answer(challenge)], "203.0.113.9") is Outcome.STALE
    # Another node with the same settings (behind Kamailio, the answer may reach it) takes it.
    other_node, _ = authenticator()
    assert other_node.verify("INVITE", [answer(challenge)], SOURCE) is Outcome.OK
    clock = ManualClock(1000.0)
    other_secret = DigestAuthenticator("voicebridge", "trunk", "0ther", clock)
    assert (
        other_secret.verify("INVITE", [answer(challenge, password="0ther")], SOURCE)
        is Outcome.STALE
    )


def test_tampered_nonce_is_stale_at_best() -> None:
    auth, _ = authenticator()
    challenge = auth.challenge(SOURCE)[0]
    nonce = challenge_params(challenge)["nonce"]
    forged = challenge.replace(nonce, ("A" if nonce[0] != "A" else "B") + nonce[1:])
    assert auth.verify("INVITE", [answer(forged)], SOURCE) is Outcome.STALE
    garbage = challenge.replace(nonce, "not*base64")
    assert auth.verify("INVITE", [answer(garbage)], SOURCE) is Outcome.STALE


def test_each_answer_counts_once() -> None:
    auth, clock = authenticator(nonce_ttl=30.0)
    challenge = auth.challenge(SOURCE)[0]
    first = answer(challenge)
    assert auth.verify("INVITE", [first], SOURCE) is Outcome.OK
    assert auth.verify("INVITE", [first], SOURCE) is Outcome.STALE
    # The same nonce with the next nonce count is a new answer (RFC 7616 §3.4.5).
    assert auth.verify("INVITE", [answer(challenge, nc="00000002")], SOURCE) is Outcome.OK
    clock.advance(31)
    assert auth.verify("INVITE", [answer(challenge, nc="00000003")], SOURCE) is Outcome.STALE


def test_the_replay_memory_is_bounded() -> None:
    auth, _ = authenticator(replay_capacity=2)
    challenge = auth.challenge(SOURCE)[0]
    answers = [answer(challenge, cnonce=f"c{n}") for n in range(3)]
    assert [auth.verify("INVITE", [a], SOURCE) for a in answers] == [Outcome.OK] * 3
    assert auth.verify("INVITE", [answers[2]], SOURCE) is Outcome.STALE


# RFC 2617 §3.5 and RFC 7616 §3.9.1: a right digest for a nonce that is not ours is stale, so
# these tell whether the digest is computed right.
@pytest.mark.parametrize(
    ("realm", "password", "nonce", "cnonce", "algorithm", "response"),
    [
        (
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "0a4f113b",
            "MD5",
            "6629fae49393a05397450978507c4ef1",
        ),
        (
            "http-auth@example.org",
            "Circle of Life",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "MD5",
            "8ca523f5e9506fed4657c9700eebdbec",
        ),
        (
            "http-auth@example.org",
            "Circle of Life",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ],
)
def test_rfc_vectors(
    realm: str, password: str, nonce: str, cnonce: str, algorithm: str, response: str
) -> None:
    auth = DigestAuthenticator(realm, "Mufasa", password, ManualClock())
    value = (
        f'Digest username="Mufasa", realm="{realm}", nonce="{nonce}", uri="/dir/index.html", '
        f'qop=auth, nc=00000001, cnonce="{cnonce}", response="{response}", '
        f'algorithm={algorithm}, opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert auth.verify("GET", [value], SOURCE) is Outcome.STALE
    wrong = value.replace(response, response[:-1] + ("0" if response[-1] != "0" else "1"))
    assert auth.verify("GET", [wrong], SOURCE) is Outcome.FAILED


def test_parse_digest_params() -> None:
    assert parse_digest_params(
        'username="a\\"b", realm="r", nc=00000001,qop=auth , uri="sip:x@y;a=b"'
    ) == {"username": 'a"b', "realm": "r", "nc": "00000001", "qop": "auth", "uri": "sip:x@y;a=b"}
    assert parse_digest_params("") == {}
    for bad in ('realm="r" nonce="n"', 'realm="r', "realm=", 'realm="a", REALM="b"', "=x"):
        with pytest.raises(SipParseError):
            parse_digest_params(bad)
