"""Accounts in Redis: sessions by token hash and user ids by username.

Each answer is a cache of PostgreSQL and follows ``db/redis.py``'s outage rules: while
Redis is down a read misses and fills nothing, and an overwrite that must win (a revoked
session, a newly claimed username) is replayed before cached reads resume.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import (
    cached_get,
    fill_if_absent,
    invalidate_later,
    overwrite,
    read_epoch,
)

_NOTHING = "-"
# An unknown username is remembered only briefly: someone may claim it soon.
USERNAME_MISS_TTL_SECONDS = 60


def session_key(token_hash: bytes) -> str:
    return f"session:{token_hash.hex()}"


def username_key(username_lower: str) -> str:
    return f"username:{username_lower}"


class SessionCache:
    """token hash → the user id it signs in, or "revoked"."""

    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    def epoch(self) -> int:
        return read_epoch(self._redis)

    async def get(self, token_hash: bytes) -> int | bool | None:
        """The user id, ``None`` for a revoked or unknown token, ``False`` for a miss."""
        cached = await cached_get(self._redis, session_key(token_hash))
        if cached is None:
            return False
        return None if cached == _NOTHING.encode() else int(cached)

    async def fill(self, token_hash: bytes, user_id: int | None, *, epoch: int) -> None:
        # NX: a log-out that committed after our read has already stored "revoked" and
        # must win (during an outage its SET is replayed before cached reads resume).
        value = str(user_id) if user_id is not None else _NOTHING
        await fill_if_absent(self._redis, session_key(token_hash), value, ex=self._ttl, epoch=epoch)

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


class UsernameCache:
    """lower-cased username → user id. Usernames never change owner, so it caches safely."""

    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    def epoch(self) -> int:
        return read_epoch(self._redis)

    async def get(self, username_lower: str) -> int | bool | None:
        """The user id, ``None`` for a name known to be free, ``False`` for a miss."""
        cached = await cached_get(self._redis, username_key(username_lower))
        if cached is None:
            return False
        return None if cached == _NOTHING.encode() else int(cached)

    async def fill(self, username_lower: str, user_id: int | None, *, epoch: int) -> None:
        await fill_if_absent(
            self._redis,
            username_key(username_lower),
            str(user_id) if user_id is not None else _NOTHING,
            ex=self._ttl if user_id is not None else USERNAME_MISS_TTL_SECONDS,
            epoch=epoch,
        )

    async def claim(self, username_lower: str, user_id: int) -> None:
        """Overwrites a remembered "no such user"; replayed if Redis is down."""
        await overwrite(self._redis, username_key(username_lower), str(user_id), ex=self._ttl)
