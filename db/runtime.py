"""Connects a process to its servers (``infra/servers.py``): engines per database, the
Redis client, job queues and the object store, checked to answer at start."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import psycopg
import redis
from botocore.exceptions import BotoCoreError, ClientError
from redis.asyncio import Redis

from db.cluster import cluster_secret
from db.media.storage import ObjectStore
from db.queue import JobQueues
from db.redis import create_redis
from db.shards import Databases, ShardMap, redact_dsn
from infra.servers import Servers, locate_servers
from infra.settings import ConfigurationError, Settings, get_settings

log = logging.getLogger(__name__)


def start_servers(settings: Settings, *, postgres_cleanup: str = "stop") -> Servers:
    """The servers the settings name (embedded ones started as needed), each checked to
    answer: a wrong URL fails at start with the variable to fix."""
    servers = locate_servers(settings, postgres_cleanup=postgres_cleanup)
    check_reachable(servers, settings)
    return servers


def object_store_for(settings: Settings, servers: Servers) -> ObjectStore:
    if servers.s3 is None:
        raise ConfigurationError("APERTURE_S3_ENDPOINT_URL", "no object store is configured")
    return ObjectStore(
        endpoint_url=servers.s3.url,
        public_endpoint_url=settings.s3_public_endpoint_url,
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        access_key_id=servers.s3.access_key_id or None,
        secret_access_key=servers.s3.secret_access_key or None,
        addressing_style=settings.s3_addressing_style,
    )


def check_reachable(servers: Servers, settings: Settings | None = None) -> None:
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
            "APERTURE_REDIS_URL", f"cannot connect to {redact_dsn(servers.redis_url)}: {error}"
        ) from None
    if settings is not None and servers.s3 is not None:
        _check_object_store(servers, settings)


def _check_object_store(servers: Servers, settings: Settings) -> None:
    """The bucket answers (made if missing): a store that cannot be reached, or refuses
    our credentials, fails at start with the variable to fix, not at the first upload."""
    store = object_store_for(settings, servers)
    try:
        store.ensure_bucket_now()
    except (BotoCoreError, ClientError) as error:
        raise ConfigurationError(
            "APERTURE_S3_ENDPOINT_URL",
            f"cannot use bucket {settings.s3_bucket!r} at {store.endpoint_url}: {error}",
        ) from None
    finally:
        store.close()


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
    object_store: ObjectStore
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
            object_store=object_store_for(settings, servers),
            secret_key=settings.secret_key or cluster_secret(shard_map.database_urls[0]),
        )

    async def close(self) -> None:
        await self.queues.close()
        await self.databases.dispose()
        await self.redis.aclose()
        self.object_store.close()
