"""Per-user id sets in Redis (whom I follow, whom I blocked or was blocked by).

Privacy checks read these on every request, so they must never keep a stale "yes" after
an unfollow or a block. A version counter closes the race between a reader that loaded
the set from PostgreSQL and a writer that changed it meanwhile: the writer bumps the
version and drops the set after committing, and the reader's fill only lands if the
version it saw before reading PostgreSQL is still current.

Redis down (``db/redis.py``): a failed read loads from PostgreSQL and fills nothing; a
failed ``changed`` does not fail the request, and its version bump and delete run when
Redis answers again, before any cached read (so no stale "follows" or "not blocked" comes
back from before the outage).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import PlannedRead, can_fill, invalidate_later, note_failure, read_epoch

# The set always holds this member once filled, so "cached and empty" differs from "absent".
_SENTINEL = b"-"

_FILL_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('SADD', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def _cached(raw: set[bytes] | set[bytes | str]) -> set[int] | None:
    return {int(member) for member in raw if member != _SENTINEL} if _SENTINEL in raw else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RelationSetCache:
    def __init__(self, redis: Redis, *, name: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_seconds = ttl_seconds
        self._fill = redis.register_script(_FILL_IF_CURRENT)

    def _key(self, user_id: int) -> str:
        return f"{self.name}:{user_id}"

    def _version_key(self, user_id: int) -> str:
        return f"{self.name}:{user_id}:v"

    async def contains(
        self,
        user_id: int,
        members: Sequence[int],
        *,
        load: Callable[[], Awaitable[Iterable[int]]],
    ) -> list[bool]:
        """Membership of each id; one SMISMEMBER when cached, else one load and a fill."""
        try:
            flags = await self.redis.smismember(self._key(user_id), [_SENTINEL, *members])
        except RedisError as error:
            note_failure(self.redis, error)
            loaded = set(await load())
            return [member in loaded for member in members]
        if flags[0]:
            return [bool(flag) for flag in flags[1:]]
        loaded = await self.members(user_id, load=load, cached=False)
        return [member in loaded for member in members]

    async def members(
        self,
        user_id: int,
        *,
        load: Callable[[], Awaitable[Iterable[int]]],
        cached: bool = True,
    ) -> set[int]:
        epoch = read_epoch(self.redis)
        try:
            if cached:
                found = _cached(await self.redis.smembers(self._key(user_id)))
                if found is not None:
                    return found
            version = await self.redis.get(self._version_key(user_id))
        except RedisError as error:
            note_failure(self.redis, error)
            return set(await load())
        loaded = set(await load())
        if not can_fill(self.redis, epoch):
            return loaded
        try:
            await self._fill(
                keys=[self._key(user_id), self._version_key(user_id)],
                args=[
                    _text(version or b"0"),
                    self.ttl_seconds,
                    _SENTINEL,
                    *[str(member) for member in loaded],
                ],
            )
        except RedisError as error:
            note_failure(self.redis, error)
        return loaded

    def plan_members(self, user_id: int) -> PlannedRead[set[int] | None]:
        """The cached set, or None when it is not cached (``members`` then loads it), as
        one part of a shared round trip (``db.redis.read_together``)."""
        key = self._key(user_id)
        return PlannedRead(
            queue=lambda pipe: pipe.smembers(key),
            replies=1,
            parse=lambda replies: _cached(replies[0]),
        )

    def plan_contains(self, user_id: int, members: Sequence[int]) -> PlannedRead[list[bool] | None]:
        """``contains`` for a cached set, None when it is not cached, as one part of a
        shared round trip."""
        key = self._key(user_id)

        def parse(replies: list[Any]) -> list[bool] | None:
            flags = replies[0]
            return [bool(flag) for flag in flags[1:]] if flags[0] else None

        return PlannedRead(
            queue=lambda pipe: pipe.smismember(key, [_SENTINEL, *members]), replies=1, parse=parse
        )

    async def changed(self, *user_ids: int) -> None:
        """Call after committing a change to these users' sets."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for user_id in user_ids:
                    pipe.incr(self._version_key(user_id))
                    pipe.expire(self._version_key(user_id), self.ttl_seconds * 2)
                    pipe.delete(self._key(user_id))
                await pipe.execute()
        except RedisError as error:
            for user_id in user_ids:
                key, version_key = self._key(user_id), self._version_key(user_id)
                invalidate_later(
                    self.redis,
                    error,
                    key,
                    ("INCR", version_key),
                    ("EXPIRE", version_key, self.ttl_seconds * 2),
                    ("DEL", key),
                )
