"""Accounts in Redis: sessions by token hash and user ids by username.

Each answer is a cache of PostgreSQL and follows ``db/redis.py``'s outage rules: while
Redis is down a read misses and fills nothing, and an overwrite that must win (a revoked
session, a newly claimed username) is replayed before cached reads resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.accounts.models import User
from db.accounts.records import UserRecord
from db.cache import RowCache
from db.rate_limits import FailureBackoff
from db.redis import (
    cached_get,
    fill_if_absent,
    invalidate_later,
    overwrite,
    read_epoch,
)
from db.relation_cache import RelationSetCache
from infra.settings import Settings

_NOTHING = "-"
K = TypeVar("K")
# An unknown username is remembered only briefly: someone may claim it soon.
USERNAME_MISS_TTL_SECONDS = 60


def session_key(token_hash: bytes) -> str:
    return f"session:{token_hash.hex()}"


def username_key(username_lower: str) -> str:
    return f"username:{username_lower}"


class _IdCache(Generic[K]):
    """key → a user id, or "none": a miss reads PostgreSQL, a fill never overwrites."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: int,
        key: Callable[[K], str],
        none_ttl_seconds: int | None = None,
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._none_ttl = ttl_seconds if none_ttl_seconds is None else none_ttl_seconds
        self._key = key

    def epoch(self) -> int:
        return read_epoch(self._redis)

    async def get(self, subject: K) -> int | bool | None:
        """The user id, ``None`` for "none", ``False`` for a miss."""
        cached = await cached_get(self._redis, self._key(subject))
        if cached is None:
            return False
        return None if cached == _NOTHING.encode() else int(cached)

    async def fill(self, subject: K, user_id: int | None, *, epoch: int) -> None:
        value, ttl = (
            (str(user_id), self._ttl) if user_id is not None else (_NOTHING, self._none_ttl)
        )
        await fill_if_absent(self._redis, self._key(subject), value, ex=ttl, epoch=epoch)


class SessionCache(_IdCache[bytes]):
    """token hash → the user id it signs in, or "revoked". Fills are NX: a log-out that
    committed after a reader's read has already stored "revoked" and must win (during an
    outage its SET is replayed before cached reads resume)."""

    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        super().__init__(redis, ttl_seconds=ttl_seconds, key=session_key)

    async def revoke(self, token_hashes: Sequence[bytes]) -> None:
        """Overwrite (not delete): a request racing the log-out may have cached the old
        answer. Redis down: each SET is replayed when it answers again."""
        if not token_hashes:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for token_hash in token_hashes:
                    pipe.set(session_key(token_hash), _NOTHING, ex=self._ttl)
                await pipe.execute()
        except RedisError as error:
            for token_hash in token_hashes:
                key = session_key(token_hash)
                invalidate_later(self._redis, error, key, ("SET", key, _NOTHING, "EX", self._ttl))


class UsernameCache(_IdCache[str]):
    """lower-cased username → user id, or "free" for a short while (someone may claim it
    soon). Usernames never change owner, so it caches safely."""

    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        super().__init__(
            redis,
            ttl_seconds=ttl_seconds,
            key=username_key,
            none_ttl_seconds=USERNAME_MISS_TTL_SECONDS,
        )

    async def claim(self, username_lower: str, user_id: int) -> None:
        """Overwrites a remembered "no such user"; replayed if Redis is down."""
        await overwrite(self._redis, username_key(username_lower), str(user_id), ex=self._ttl)


class AccountCaches:
    """Accounts' Redis structures, and the names of their keys."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        ttl = settings.cache_ttl_seconds
        # Credentials never leave PostgreSQL (UserRecord has none): log-in reads the row.
        self.user_cache = RowCache(redis, User, UserRecord, prefix="user", ttl_seconds=ttl)
        self.session_cache = SessionCache(redis, ttl_seconds=ttl)
        self.usernames = UsernameCache(redis, ttl_seconds=ttl)
        self.following_sets = RelationSetCache(redis, name="following", ttl_seconds=ttl)
        self.block_sets = RelationSetCache(redis, name="blockrel", ttl_seconds=ttl)
        self.login_failures = FailureBackoff(redis, name="login")
