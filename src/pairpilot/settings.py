"""Configuration, parsed once from the environment; bad values fail at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pairpilot.errors import ConfigurationError

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Every knob of the server. Environment names are ``PAIRPILOT_<FIELD>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="PAIRPILOT_", frozen=True, extra="ignore")

    data_dir: Path = Path("pairpilot-data")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    flush_ms: PositiveInt = 200
    idle_unload_ms: PositiveInt = 30_000
    max_message_bytes: PositiveInt = 16 * 1024 * 1024
    max_awareness_bytes: PositiveInt = 64 * 1024
    messages_per_second: PositiveInt = 100
    message_burst: PositiveInt = 300
    send_queue_messages: PositiveInt = 1024
    compact_min_bytes: PositiveInt = 64 * 1024
    compact_max_updates: PositiveInt = 10_000
    flush_retry_max_ms: PositiveInt = 5_000
    version_min_s: PositiveInt = 300
    upload_max_files: PositiveInt = 200
    upload_max_file_bytes: PositiveInt = 1024 * 1024
    upload_max_bytes: PositiveInt = 8 * 1024 * 1024
    # Guardrails (pairpilot.guardrails; README "Quotas and abuse limits").
    room_max_bytes: PositiveInt = 32 * 1024 * 1024
    room_max_files: PositiveInt = 1000
    room_max_connections: PositiveInt = 64
    user_max_connections: PositiveInt = 32
    # Updates of one room waiting for storage, and frames waiting for Redis (per process):
    # past these, edits are refused (close 1013) until storage or Redis catches up.
    room_max_pending_bytes: PositiveInt = 64 * 1024 * 1024
    bus_max_outbox_bytes: PositiveInt = 128 * 1024 * 1024
    # The Redis publisher appends at most once every this many ms (frames of every room
    # batched into one entry): fewer Redis commands per keystroke, for that much latency.
    bus_batch_ms: PositiveInt = 16
    # `serve --workers N`: every socket of a room is passed to the room's home worker
    # (README "Several processes"); off, the kernel's spread stands and the bus shares rooms.
    worker_affinity: bool = True
    rooms_per_user: PositiveInt = 200
    rooms_per_anonymous_user: PositiveInt = 20
    signin_rate: str = "30/hour"
    refresh_rate: str = "1800/hour"
    room_create_rate: str = "60/hour"
    write_rate: str = "120/minute"
    forwarded_allow_ips: str | None = None
    log_level: str = "INFO"
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    run_limit: PositiveInt = 3
    run_window_s: PositiveInt = 60
    redis_timeout_ms: PositiveInt = 200
    sentry_dsn: str | None = Field(default=None, validation_alias="SENTRY_DSN")
    environment: str = "production"
    browser_sentry_dsn: str | None = None
    tunnel_max_bytes: PositiveInt = 1024 * 1024
    client_dir: Path = Path(__file__).resolve().parents[2] / "client" / "dist"
    jwt_secret: str | None = None
    token_ttl_s: PositiveInt = 3600
    refresh_ttl_s: PositiveInt = 30 * 24 * 3600
    # Tokens of another issuer (README "Tokens from Supabase or another issuer"): its public
    # signing keys (a JWKS) and its ``iss``; SUPABASE_URL names both.
    supabase_url: str | None = Field(default=None, validation_alias="SUPABASE_URL")
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    # The Supabase project's anon key, for the page (README "Signing in with Supabase"):
    # public by design (it is in every page of a Supabase app; Row Level Security, not
    # the key, guards the project's data), so GET /api/config hands it out.
    supabase_anon_key: str | None = Field(default=None, validation_alias="SUPABASE_ANON_KEY")
    # Supabase's own edge caches its key set for 10 minutes: never longer here.
    jwks_cache_s: Annotated[int, Field(gt=0, le=600)] = 600
    # An unknown ``kid`` fetches the key set again, at most this often (forged kids cost nothing).
    jwks_refetch_s: Annotated[float, Field(gt=0)] = 5.0
    # OpenTelemetry traces (README "Traces"): the exporter reads the other OTEL_* itself.
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_service_name: str = Field(default="pairpilot", validation_alias="OTEL_SERVICE_NAME")
    # Webhooks (pairpilot.webhooks; README "Webhooks").
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_timeout_s: PositiveFloat = 10.0
    webhook_retry_first_s: PositiveFloat = 5.0
    webhook_retry_max_s: PositiveFloat = 3600.0
    webhook_retry_for_s: PositiveFloat = 24 * 3600.0
    webhook_debounce_s: PositiveFloat = 2.0
    webhook_debounce_max_s: PositiveFloat = 10.0
    webhook_allow_private: bool = False
    webhooks_per_room: PositiveInt = 10

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("DATABASE_URL must start with sqlite:// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("REDIS_URL must start with redis:// or rediss://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_address(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// address")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        from standardwebhooks.webhooks import Webhook  # noqa: PLC0415 - only when configured

        try:
            Webhook(value)
        except Exception as exc:  # binascii.Error, its own EmptyWebhookSecretError
            raise ValueError("must be a Standard Webhooks secret: whsec_ and base64") from exc
        return value

    @field_validator("supabase_url", "jwks_url", "jwt_issuer")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if bool(self.webhook_url) != bool(self.webhook_secret):
            raise ValueError("PAIRPILOT_WEBHOOK_URL and PAIRPILOT_WEBHOOK_SECRET go together")
        if self.webhook_debounce_max_s < self.webhook_debounce_s:
            raise ValueError(
                "PAIRPILOT_WEBHOOK_DEBOUNCE_MAX_S is less than PAIRPILOT_WEBHOOK_DEBOUNCE_S"
            )
        return self

    @model_validator(mode="after")
    def _issuer_known(self) -> Settings:
        if self.jwks_url and not self.resolved_jwt_issuer:
            raise ValueError(
                "PAIRPILOT_JWKS_URL needs PAIRPILOT_JWT_ISSUER (or SUPABASE_URL): "
                "tokens are checked against their issuer"
            )
        return self

    @field_validator("supabase_anon_key")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return None if value is None or value.strip() == "" else value.strip()

    @field_validator("signin_rate", "refresh_rate", "room_create_rate", "write_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse  # noqa: PLC0415 - limits is imported by the limiter anyway

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate such as 30/hour or 120/minute") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("PAIRPILOT_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def resolved_jwks_url(self) -> str | None:
        """Where the issuer's public signing keys are: the setting, or Supabase's JWKS."""
        if self.jwks_url:
            return self.jwks_url
        if self.supabase_url:
            return f"{self.supabase_url}/auth/v1/.well-known/jwks.json"
        return None

    @property
    def resolved_jwt_issuer(self) -> str | None:
        """The ``iss`` asymmetric tokens must carry: the setting, or Supabase's Auth URL."""
        if self.jwt_issuer:
            return self.jwt_issuer
        if self.supabase_url:
            return f"{self.supabase_url}/auth/v1"
        return None

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL: the embedded SQLite file unless DATABASE_URL says otherwise."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'pairpilot.sqlite3'}"
        if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
            return url.replace("sqlite://", "sqlite+aiosqlite://", 1)
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return url.replace(prefix, "postgresql+asyncpg://", 1)
        return url


def load_settings() -> Settings:
    """Read the environment once; raise ConfigurationError with one clear line on bad values."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if not where:  # a rule between settings: its message names them
            raise ConfigurationError(f"invalid configuration: {first['msg']}") from exc
        name = where if where.isupper() else f"PAIRPILOT_{where.upper()}"
        raise ConfigurationError(f"invalid configuration: {name}: {first['msg']}") from exc
