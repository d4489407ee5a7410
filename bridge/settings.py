"""Settings from `VOICEBRIDGE_*` environment variables and an optional TOML file.

Precedence: environment, then the TOML file (``VOICEBRIDGE_CONFIG`` or ``config/voicebridge.toml``
when present), then the defaults written here. A bad value stops start-up with one line naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("config/voicebridge.toml")
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def _config_file() -> Path | None:
    explicit = os.environ.get("VOICEBRIDGE_CONFIG")
    if explicit:
        return Path(explicit)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOICEBRIDGE_", extra="forbid")

    http_host: str = Field("0.0.0.0", description="Address the REST API listens on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port of the REST API.")
    sip_port: int = Field(5060, ge=1, le=65535, description="SIP port (UDP and TCP).")
    data_dir: Path = Field(
        Path("data"), description="Embedded Redis data, recordings and other state."
    )
    redis_url: str | None = Field(
        None, description="Redis to use; unset starts an embedded redis-server in data_dir."
    )
    redis_prefix: str = Field(
        "vb", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Prefix of every Redis key."
    )
    public_url: AnyHttpUrl | None = Field(
        None, description="Public base URL of the API; websocket_url is built from it."
    )
    webhook_allow_insecure: bool = Field(
        False, description="Allow http:// webhook URLs that point at loopback addresses."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    conversation_token_ttl: int = Field(
        3600, ge=10, description="Seconds a conversation's cvt_ token stays valid."
    )
    webhook_timeout: float = Field(10.0, gt=0, le=60, description="Seconds per delivery attempt.")
    webhook_retry_schedule: tuple[float, ...] = Field(
        DEFAULT_RETRY_SCHEDULE,
        min_length=1,
        description="Delay before each retry, seconds; its length is the number of retries.",
    )
    webhook_concurrency: int = Field(32, ge=1, le=1024, description="Deliveries in flight.")
    node_id: str = Field(
        default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}",
        description="Name of this bridge process in a cluster.",
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _positive_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every retry delay must be positive")
        return value

    def base_url(self) -> str:
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{host}:{self.http_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class SettingsError(Exception):
    """A setting is wrong; the message is one line naming it."""


def load_settings(**overrides: Any) -> Settings:
    path = _config_file()
    if path is not None and not path.is_file():
        raise SettingsError(f"VOICEBRIDGE_CONFIG: no such file: {path}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        env = f"VOICEBRIDGE_{name.split('.')[0].upper()}"
        raise SettingsError(f"bad setting {env}: {first['msg']}") from None
    except ValueError as exc:
        raise SettingsError(f"bad configuration: {exc}") from None
