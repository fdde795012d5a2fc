"""Wires configuration to live servers: embedded or external PostgreSQL and Redis."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import psycopg
import redis
from redis.asyncio import Redis

from aperture.embedded import EmbeddedServers
from aperture.settings import ConfigurationError, Settings, get_settings
from db.cluster import cluster_secret
from db.queue import JobQueues
from db.redis import create_redis
from db.shards import Databases, ShardMap, redact_dsn

log = logging.getLogger(__name__)


@dataclass
class Servers:
    """Where the data lives for this process; ``embedded`` is set when we started them."""

    database_urls: list[str]
    redis_url: str
    embedded: EmbeddedServers | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def start_servers(settings: Settings, *, postgres_cleanup: str = "stop") -> Servers:
    embedded: EmbeddedServers | None = None
    database_urls = list(settings.database_urls)
    redis_url = settings.redis_url
    if not database_urls or redis_url is None:
        embedded = EmbeddedServers(
            settings.data_dir,
            settings.embedded_databases,
            postgres_cleanup=postgres_cleanup,
        )
        started_urls, started_redis = embedded.start(
            want_postgres=not database_urls, want_redis=redis_url is None
        )
        database_urls = database_urls or started_urls
        redis_url = redis_url or started_redis
    assert redis_url is not None
    servers = Servers(database_urls=database_urls, redis_url=redis_url, embedded=embedded)
    check_reachable(servers)
    return servers


def check_reachable(servers: Servers) -> None:
    for dsn in servers.database_urls:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise ConfigurationError(
                "APERTURE_DATABASE_URLS", f"cannot connect to {redact_dsn(dsn)}: {reason}"
            ) from None
    try:
        client = redis.Redis.from_url(servers.redis_url, socket_connect_timeout=5)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as error:
        raise ConfigurationError(
            "APERTURE_REDIS_URL", f"cannot connect to {servers.redis_url}: {error}"
        ) from None


def shard_map_for(settings: Settings, servers: Servers) -> ShardMap:
    try:
        return ShardMap(
            logical_shards=settings.logical_shards, database_urls=tuple(servers.database_urls)
        )
    except ValueError as error:
        raise ConfigurationError("APERTURE_LOGICAL_SHARDS", str(error)) from None


def resolve_shard_map() -> ShardMap:
    """For a bare ``alembic`` invocation: the same servers ``aperture`` would use."""
    settings = get_settings()
    return shard_map_for(settings, start_servers(settings))


@dataclass
class Runtime:
    """Process-wide connections, shared by every request."""

    settings: Settings
    shard_map: ShardMap
    databases: Databases
    redis: Redis
    redis_url: str
    queues: JobQueues
    # Seals cursors; the same in every process of the cluster (db/cluster.py).
    secret_key: str

    @classmethod
    def connect(cls, settings: Settings, servers: Servers) -> Runtime:
        shard_map = shard_map_for(settings, servers)
        redis = create_redis(servers.redis_url)
        return cls(
            settings=settings,
            shard_map=shard_map,
            databases=Databases(
                shard_map,
                pool_size=settings.db_pool_size,
                connect_timeout_seconds=settings.db_connect_timeout_seconds,
                statement_timeout_ms=math.ceil(settings.operation_timeout_seconds * 1000),
            ),
            redis=redis,
            redis_url=servers.redis_url,
            queues=JobQueues(servers.redis_url, redis),
            secret_key=settings.secret_key or cluster_secret(shard_map.database_urls[0]),
        )

    async def close(self) -> None:
        await self.queues.close()
        await self.databases.dispose()
        await self.redis.aclose()
