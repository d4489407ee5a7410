"""Settings from `VOICEBRIDGE_*` environment variables and an optional TOML file.

Precedence: environment, then the TOML file (``VOICEBRIDGE_CONFIG`` or ``config/voicebridge.toml``
when present), then the defaults written here. A bad value stops start-up with one line naming it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("config/voicebridge.toml")
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
ENV_PREFIX = "VOICEBRIDGE_"

# A list-valued variable is a JSON list or, as an operator would type it, comma-separated:
# NoDecode stops pydantic-settings' own JSON parsing so that `_lists` can take both.
Networks = Annotated[tuple[str, ...], NoDecode]
Names = Annotated[tuple[str, ...], NoDecode]
Delays = Annotated[tuple[float, ...], NoDecode]
LIST_EXAMPLES = {
    "sip_trusted_networks": ("10.0.0.0/8,192.168.1.0/24", '["10.0.0.0/8", "192.168.1.0/24"]'),
    "sip_allowed_networks": ("10.0.0.0/8,192.168.1.0/24", '["10.0.0.0/8", "192.168.1.0/24"]'),
    "sip_auth_algorithms": ("SHA-256,MD5", '["SHA-256", "MD5"]'),
    "webhook_retry_schedule": ("5,300,1800", "[5, 300, 1800]"),
}


def _config_file() -> Path | None:
    explicit = os.environ.get("VOICEBRIDGE_CONFIG")
    if explicit:
        return Path(explicit)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class Settings(BaseSettings):
    # An empty variable counts as unset: `VOICEBRIDGE_REDIS_URL=` must not mean "connect to ''".
    model_config = SettingsConfigDict(
        env_prefix="VOICEBRIDGE_", extra="forbid", env_ignore_empty=True
    )

    http_host: str = Field("0.0.0.0", description="Address the REST API listens on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port of the REST API.")
    http_reuse_port: bool = Field(
        False,
        description="Listen on http_port with SO_REUSEPORT, so several nodes on one box share "
        "it (`serve --nodes N` sets it).",
    )
    http_node_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="A second port of the REST API that is this node's alone (its /metrics and "
        "/readyz behind a shared http_port).",
    )
    sip_host: str = Field("0.0.0.0", description="Address the SIP user agent and RTP bind.")
    sip_port: int = Field(5060, ge=1, le=65535, description="SIP port (UDP and TCP).")
    sip_advertised_host: str | None = Field(
        None,
        description="Address put in Via, Contact and SDP; unset: sip_host, or 127.0.0.1 when "
        "that is a wildcard.",
    )
    rtp_host: str | None = Field(
        None,
        description="Address RTP binds; unset: sip_host. Cluster nodes take SIP on loopback "
        "behind the balancer and RTP on the box's address.",
    )
    rtp_advertised_host: str | None = Field(
        None, description="Address put in SDP; unset: sip_advertised_host, then as for it."
    )
    rtp_port_min: int = Field(20000, ge=1024, le=65534, description="Lowest RTP port of calls.")
    rtp_port_max: int = Field(29999, ge=1025, le=65535, description="Highest RTP port of calls.")
    sip_max_calls: int = Field(
        200, ge=1, description="Concurrent calls; more INVITEs are answered 503."
    )
    default_agent_id: str | None = Field(
        None, description="Agent that takes calls to a number no agent claims; unset: 404."
    )
    sip_trusted_networks: Networks = Field(
        ("127.0.0.0/8", "::1/128"),
        description="Sources whose P-Asserted-Identity names the caller; their SIP requests are "
        "taken and they are never banned.",
    )
    sip_allowed_networks: Networks = Field(
        ("127.0.0.0/8", "::1/128"),
        description="Sources whose SIP requests are taken, besides sip_trusted_networks; "
        "others get no answer at all, and their TCP connections are closed unread.",
    )
    sip_rate_limit: float = Field(
        200.0,
        ge=0,
        description="New SIP requests a second per source before the excess is dropped; "
        "0: no limit.",
    )
    sip_rate_burst: int = Field(
        400, ge=1, description="New SIP requests a source may send at once after a quiet spell."
    )
    sip_auth_realm: str = Field(
        "voicebridge",
        pattern=r"^[!#-\[\]-~ ]{1,128}$",
        description="Digest realm of the 401 challenges to INVITEs.",
    )
    sip_auth_username: str | None = Field(
        None, min_length=1, max_length=128, description="Digest username callers must give."
    )
    sip_auth_password: SecretStr | None = Field(
        None,
        description="Digest password; set (with sip_auth_username), INVITEs need credentials.",
    )
    sip_auth_algorithms: Names = Field(
        ("SHA-256", "MD5"),
        min_length=1,
        description="Digest algorithms offered, most preferred first.",
    )
    rtp_inactivity_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds without caller RTP before the call is hung up."
    )
    sip_drain_timeout: float = Field(
        20.0,
        ge=0,
        le=3600,
        description="After SIGTERM, seconds live calls may go on before they are hung up.",
    )
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
    conversation_connect_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds a conversation may wait for its WebSocket (or its call's session) "
        "before it ends failed with reason not_connected; never more than the token's TTL.",
    )
    webhook_timeout: float = Field(10.0, gt=0, le=60, description="Seconds per delivery attempt.")
    webhook_retry_schedule: Delays = Field(
        DEFAULT_RETRY_SCHEDULE,
        min_length=1,
        description="Delay before each retry, seconds; its length is the number of retries.",
    )
    webhook_concurrency: int = Field(32, ge=1, le=1024, description="Deliveries in flight.")
    recording_retention_days: int = Field(
        30, ge=0, description="Days a finished recording is kept; 0 keeps recordings forever."
    )
    record_phone_calls: bool = Field(
        False,
        description="Record the phone calls of agents whose record_phone_calls is null.",
    )
    node_id: str = Field(
        default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}",
        description="Name of this bridge process in a cluster.",
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: Literal["text", "json"] = Field(
        "text", description="text: one line per record for people; json: one JSON object per line."
    )
    ws_reconnect_grace: float = Field(
        20.0,
        ge=0,
        le=600,
        description="Seconds a conversation whose WebSocket dropped waits for the client to "
        "reconnect before it ends with reason disconnected.",
    )
    preload_models: bool = Field(
        True, description="Load the speech models at start rather than on the first call."
    )
    inference_workers: int | None = Field(
        None,
        ge=1,
        description="Threads that run speech models; unset: the CPU count. `serve --nodes N` "
        "gives each node its share.",
    )
    cluster_port_base: int = Field(
        5100,
        ge=1024,
        le=65000,
        description="`serve --nodes N`: node i takes SIP on 127.0.0.1 port base + i behind "
        "Kamailio on sip_port.",
    )
    cluster_probe_interval: int = Field(
        2,
        ge=1,
        le=60,
        description="`serve --nodes N`: seconds between Kamailio's OPTIONS probes of each node.",
    )
    cluster_failover_timeout: float = Field(
        1.0,
        gt=0,
        le=30,
        description="`serve --nodes N`: seconds Kamailio waits for a node's first answer to an "
        "INVITE before it tries the next node.",
    )

    @field_validator(*LIST_EXAMPLES, mode="before")
    @classmethod
    def _lists(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                commas, as_json = LIST_EXAMPLES[str(info.field_name)]
                raise ValueError(
                    f"not a JSON list; write it comma-separated ({commas}) or as JSON ({as_json})"
                ) from None
        return [item.strip() for item in text.split(",") if item.strip()]

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(REDIS_SCHEMES)}")
        return value

    @field_validator("sip_trusted_networks", "sip_allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (e.g. 10.0.0.0/8)") from None
        return value

    @field_validator("sip_auth_algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = ("SHA-256", "MD5")
        if any(name not in known for name in value) or len(set(value)) != len(value):
            raise ValueError(f"must list some of {', '.join(known)}, each once")
        return value

    @field_validator("sip_auth_password")
    @classmethod
    def _auth_user(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and info.data.get("sip_auth_username") is None:
            raise ValueError("needs VOICEBRIDGE_SIP_AUTH_USERNAME too")
        return value

    @model_validator(mode="after")
    def _rtp_range(self) -> Settings:
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise ValueError(
                f"VOICEBRIDGE_RTP_PORT_MAX ({self.rtp_port_max}) must be at least "
                f"VOICEBRIDGE_RTP_PORT_MIN ({self.rtp_port_min}) + 3, room for one RTP/RTCP "
                "port pair"
            )
        return self

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
        raise SettingsError(_explain(exc.errors()[0], path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"bad configuration file {path}: {exc}") from None
    except ValueError as exc:
        raise SettingsError(_one_line(f"bad configuration: {exc}")) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _explain(error: ErrorDetails, path: Path | None) -> str:
    """One line naming the variable (and the file when the value came from there)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        # A rule over several settings: its message names each of them.
        where = "" if path is None else f" (environment or {path})"
        return _one_line(f"bad settings{where}: {message}")
    name = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        # Only the TOML file can carry a name that is not a field: the environment source
        # reads known names only.
        known = ", ".join(Settings.model_fields)
        return _one_line(f"unknown setting {name!r} in {path}; known settings: {known}")
    env = ENV_PREFIX + name.upper()
    where = "" if os.environ.get(env) or path is None else f" ({name} in {path})"
    return _one_line(f"bad setting {env}{where}: {message}")
