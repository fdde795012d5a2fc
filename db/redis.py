"""The shared Redis client, with round trips counted for the N+1 tests."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Connection, Redis
from redis.asyncio.connection import BlockingConnectionPool, UnixDomainSocketConnection

from db.instrumentation import record_redis_round_trip


class CountingConnection(Connection):
    # A pipeline is packed into one send, so this counts round trips, not commands.
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        record_redis_round_trip()
        await super().send_packed_command(command, check_health)


class CountingUnixConnection(UnixDomainSocketConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        record_redis_round_trip()
        await super().send_packed_command(command, check_health)


def create_redis(url: str, *, max_connections: int = 64, wait_seconds: float = 5.0) -> Redis:
    connection_class: type[Connection | UnixDomainSocketConnection] = (
        CountingUnixConnection if url.startswith("unix:") else CountingConnection
    )
    # Blocking: under a burst, a request waits for a free connection instead of failing
    # at once with "Too many connections".
    pool = BlockingConnectionPool.from_url(
        url,
        connection_class=connection_class,
        max_connections=max_connections,
        timeout=wait_seconds,
    )
    return Redis(connection_pool=pool, decode_responses=False)
