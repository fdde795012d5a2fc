"""The shard map: logical shards (PostgreSQL schemas) placed on physical databases.

A logical shard ``n`` is the schema ``shard_{n:04d}`` on physical database ``n % D``.
Shards never split; growing from D to D' databases moves whole schemas and changes
only this map, which is why there are many more logical shards than databases.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.ids import shard_of


def shard_schema(shard: int) -> str:
    return f"shard_{shard:04d}"


def to_sqlalchemy_url(dsn: str, *, driver: str = "psycopg") -> str:
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((f"{scheme}+{driver}", parts.netloc, parts.path, parts.query, ""))


def redact_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in credentials else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class UnknownShardError(LookupError):
    def __init__(self, shard: int) -> None:
        super().__init__(f"logical shard {shard} does not exist")
        self.shard = shard


@dataclass(frozen=True)
class ShardMap:
    logical_shards: int
    database_urls: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.database_urls:
            raise ValueError("a shard map needs at least one physical database")
        if self.logical_shards < len(self.database_urls):
            raise ValueError("fewer logical shards than physical databases leaves one empty")

    @property
    def shards(self) -> range:
        return range(self.logical_shards)

    def exists(self, shard: int) -> bool:
        return 0 <= shard < self.logical_shards

    def database_of(self, shard: int) -> int:
        if not self.exists(shard):
            raise UnknownShardError(shard)
        return shard % len(self.database_urls)

    def shards_on(self, database: int) -> list[int]:
        return [s for s in self.shards if s % len(self.database_urls) == database]

    def shard_for_id(self, object_id: int) -> int:
        shard = shard_of(object_id)
        if not self.exists(shard):
            raise UnknownShardError(shard)
        return shard

    # Globally unique keys live in the shard their hash names. The kind prefixes keep a
    # username and an email (or a hashtag) that spell the same apart; they are part of the
    # stored layout, so they are built here and nowhere else.

    def shard_for_username(self, username: str) -> int:
        """A user's home shard: its username's, so the name is unique by one index there."""
        return self._shard_for_key(f"username:{username.lower()}")

    def shard_for_email(self, email: str) -> int:
        return self._shard_for_key(f"email:{email.lower()}")

    def shard_for_hashtag(self, tag: str) -> int:
        """The shard of a (normalised) hashtag's index of posts."""
        return self._shard_for_key(f"tag:{tag}")

    def shard_for_direct_thread(self, user_low: int, user_high: int) -> int:
        """The shard of two users' one-to-one thread, found from the pair alone."""
        return self._shard_for_key(f"dm:{user_low}:{user_high}")

    def _shard_for_key(self, key: str) -> int:
        # A stable hash, not Python's salted ``hash()``: every process must agree.
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.logical_shards


class Databases:
    """One async engine (and so one connection pool) per physical database."""

    def __init__(
        self,
        shard_map: ShardMap,
        *,
        pool_size: int = 10,
        echo: bool = False,
        connect_timeout_seconds: float = 3.0,
        statement_timeout_ms: int | None = None,
        pool_timeout_seconds: float = 5.0,
    ) -> None:
        self.shard_map = shard_map
        # A database that is down must fail its fields fast, not hold requests: a short
        # connect timeout (libpq counts whole seconds, at least 2) and pool wait. The
        # statement timeout backs up the operation budget: a statement cannot outlive it
        # even if its client vanished without a cancel.
        connect_args: dict[str, object] = {
            "connect_timeout": max(2, math.ceil(connect_timeout_seconds))
        }
        if statement_timeout_ms is not None:
            connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
        self.engines: list[AsyncEngine] = [
            create_async_engine(
                to_sqlalchemy_url(dsn),
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=False,
                pool_timeout=pool_timeout_seconds,
                connect_args=connect_args,
                echo=echo,
            )
            for dsn in shard_map.database_urls
        ]
        # Each logical shard shares its database's pool; schema_translate_map points
        # unqualified table names at the shard's schema on every statement.
        self._shard_engines: dict[int, AsyncEngine] = {
            shard: self.engines[shard_map.database_of(shard)].execution_options(
                schema_translate_map={None: shard_schema(shard)}
            )
            for shard in shard_map.shards
        }

    def engine_for_shard(self, shard: int) -> AsyncEngine:
        engine = self._shard_engines.get(shard)
        if engine is None:
            raise UnknownShardError(shard)
        return engine

    async def ping(self, database: int) -> None:
        """One round trip to a physical database: raises if it does not answer."""
        async with self.engines[database].connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()
