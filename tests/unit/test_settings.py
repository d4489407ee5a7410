"""Settings: defaults, VOICEBRIDGE_* variables, the TOML file, and one-line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bridge.settings import DEFAULT_RETRY_SCHEDULE, Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VOICEBRIDGE_* variable from the caller's shell, and a working directory without a
    config/voicebridge.toml, so each test sees only what it sets."""
    for name in list(os.environ):
        if name.startswith("VOICEBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    monkeypatch.setenv("VOICEBRIDGE_CONFIG", str(path))
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == 8080
    assert settings.sip_port == 5060
    assert settings.data_dir == Path("data")
    assert settings.redis_url is None
    assert settings.redis_prefix == "vb"
    assert settings.public_url is None
    assert settings.webhook_allow_insecure is False
    assert settings.max_body_bytes == 1_048_576
    assert settings.conversation_token_ttl == 3600
    assert settings.webhook_timeout == 10.0
    assert settings.webhook_retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.webhook_concurrency == 32
    assert settings.log_level == "INFO"
    assert settings.node_id
    assert settings.base_url() == "http://127.0.0.1:8080"


def test_environment_overrides_every_kind_of_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBRIDGE_HTTP_PORT", "9090")
    monkeypatch.setenv("VOICEBRIDGE_SIP_PORT", "5070")
    monkeypatch.setenv("VOICEBRIDGE_DATA_DIR", "/var/lib/voicebridge")
    monkeypatch.setenv("VOICEBRIDGE_REDIS_URL", "redis://10.0.0.5:6379/2")
    monkeypatch.setenv("VOICEBRIDGE_PUBLIC_URL", "https://voice.example.com/")
    monkeypatch.setenv("VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE", "1")
    monkeypatch.setenv("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "[1, 2.5]")
    monkeypatch.setenv("VOICEBRIDGE_NODE_ID", "node-a")
    settings = load_settings()
    assert settings.http_port == 9090
    assert settings.sip_port == 5070
    assert settings.data_dir == Path("/var/lib/voicebridge")
    assert settings.redis_url == "redis://10.0.0.5:6379/2"
    assert settings.webhook_allow_insecure is True
    assert settings.webhook_retry_schedule == (1.0, 2.5)
    assert settings.node_id == "node-a"
    assert settings.base_url() == "https://voice.example.com"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBRIDGE_REDIS_URL", "")
    monkeypatch.setenv("VOICEBRIDGE_HTTP_PORT", "")
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.http_port == 8080


def test_toml_file_named_by_voicebridge_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        tmp_path,
        'http_port = 7000\nredis_prefix = "prod"\nwebhook_retry_schedule = [1, 2, 3]\n',
        monkeypatch,
    )
    settings = load_settings()
    assert settings.http_port == 7000
    assert settings.redis_prefix == "prod"
    assert settings.webhook_retry_schedule == (1.0, 2.0, 3.0)


def test_config_voicebridge_toml_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "voicebridge.toml").write_text("sip_port = 5080\n")
    assert load_settings().sip_port == 5080


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, "http_port = 7000\nsip_port = 5080\n", monkeypatch)
    monkeypatch.setenv("VOICEBRIDGE_HTTP_PORT", "9000")
    settings = load_settings()
    assert settings.http_port == 9000
    assert settings.sip_port == 5080


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VOICEBRIDGE_HTTP_PORT", "notaport"),
        ("VOICEBRIDGE_HTTP_PORT", "70000"),
        ("VOICEBRIDGE_SIP_PORT", "0"),
        ("VOICEBRIDGE_LOG_LEVEL", "chatty"),
        ("VOICEBRIDGE_PUBLIC_URL", "not a url"),
        ("VOICEBRIDGE_REDIS_URL", "localhost:6379"),
        ("VOICEBRIDGE_REDIS_PREFIX", "has space"),
        ("VOICEBRIDGE_WEBHOOK_ALLOW_INSECURE", "perhaps"),
        ("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "[5, -1]"),
        ("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "[5, 300"),
        ("VOICEBRIDGE_WEBHOOK_TIMEOUT", "600"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert variable in message


def test_a_bad_value_in_the_file_names_variable_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, 'http_port = "eighty"\n', monkeypatch)
    with pytest.raises(SettingsError, match="VOICEBRIDGE_HTTP_PORT") as caught:
        load_settings()
    assert str(path) in str(caught.value)


def test_an_unknown_key_in_the_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "http_port = 8080\nhttp_prot = 8081\n", monkeypatch)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown setting 'http_prot'" in message
    assert str(path) in message
    assert "http_port" in message, "the known names are listed to spot the typo"


def test_a_missing_config_file_names_voicebridge_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBRIDGE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsError, match=r"^VOICEBRIDGE_CONFIG: no such file"):
        load_settings()


def test_a_file_that_is_not_toml_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "http_port = [\n", monkeypatch)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_example_config_is_valid_and_matches_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEBRIDGE_CONFIG", str(REPO / "config" / "voicebridge.toml.example"))
    from_example = load_settings().model_dump(exclude={"node_id"})
    monkeypatch.delenv("VOICEBRIDGE_CONFIG")
    assert from_example == load_settings().model_dump(exclude={"node_id"})


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"VOICEBRIDGE_[A-Z_]+", readme))
    for name in Settings.model_fields:
        assert f"VOICEBRIDGE_{name.upper()}" in documented, f"README.md lacks {name}"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VOICEBRIDGE_SIP_ALLOWED_NETWORKS", "10.0.0.0/8", ("10.0.0.0/8",)),
        (
            "VOICEBRIDGE_SIP_ALLOWED_NETWORKS",
            " 10.0.0.0/8, 192.168.1.0/24 ",
            ("10.0.0.0/8", "192.168.1.0/24"),
        ),
        ("VOICEBRIDGE_SIP_TRUSTED_NETWORKS", '["10.1.2.3/32"]', ("10.1.2.3/32",)),
        ("VOICEBRIDGE_SIP_AUTH_ALGORITHMS", "MD5", ("MD5",)),
        ("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "5,300, 1800", (5.0, 300.0, 1800.0)),
        ("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "[1, 2.5]", (1.0, 2.5)),
    ],
)
def test_lists_are_comma_separated_or_json(
    variable: str, value: str, expected: tuple[object, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    field = variable.removeprefix("VOICEBRIDGE_").lower()
    assert getattr(load_settings(), field) == expected


@pytest.mark.parametrize(
    ("variable", "value", "example"),
    [
        ("VOICEBRIDGE_SIP_ALLOWED_NETWORKS", "[10.0.0.0/8", "10.0.0.0/8,192.168.1.0/24"),
        ("VOICEBRIDGE_SIP_ALLOWED_NETWORKS", "10.0.0.0/33", "10.0.0.0/8"),
        ("VOICEBRIDGE_WEBHOOK_RETRY_SCHEDULE", "[5, 300", "5,300,1800"),
    ],
)
def test_a_bad_list_gets_an_example_that_fits_it(
    variable: str, value: str, example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert example in message
    assert "(e.g. [5, 300])" not in message


def test_a_rule_over_two_settings_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBRIDGE_RTP_PORT_MIN", "30000")
    monkeypatch.setenv("VOICEBRIDGE_RTP_PORT_MAX", "20000")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "VOICEBRIDGE_RTP_PORT_MIN (30000)" in message
    assert "VOICEBRIDGE_RTP_PORT_MAX (20000)" in message
    assert "VOICEBRIDGE_SETTINGS" not in message
