"""Per-owner sorted sets in Redis that stand for rows in PostgreSQL (an author's live
stories, the stories a viewer has seen), rebuilt from the rows when missing.

The same guard as ``db/relation_cache.py``: a writer bumps the owner's version and drops
the set after committing, and a reader's fill lands only if the version it read before
loading the rows is still current, so a fill never hides a write that raced it. A sentinel
member tells "cached and empty" from "absent".

Redis down: a read answers None (load from the rows), and a write's drop runs when Redis
answers again, before any cached read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import PlannedRead, can_fill, invalidate_later, note_failure

_SENTINEL = "-"

_FILL_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('ZADD', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_ADD_IF_CACHED = """
redis.call('INCR', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '(0', ARGV[3])
end
return 1
"""


# Only owners with a member above the bound, or with no set at all (their version, to
# fill with), reach the client: a tray over 500 followees answers for the few with live
# stories instead of sending 500 sets back to be parsed.
_ABOVE = """
local found = {}
for i = 1, #KEYS, 2 do
    local members = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. ARGV[1], '+inf', 'WITHSCORES')
    if #members > 0 then
        found[#found + 1] = (i + 1) / 2
        found[#found + 1] = members
    elseif redis.call('EXISTS', KEYS[i]) == 0 then
        found[#found + 1] = (i + 1) / 2
        found[#found + 1] = redis.call('GET', KEYS[i + 1]) or '0'
    end
end
return found
"""
# Owners per script call: each call blocks Valkey while it runs, so a viewer following
# thousands of accounts is read in several short calls of the same pipeline.
_ABOVE_BATCH = 500


def score_ms(moment: datetime) -> float:
    """A moment as these sets score it: milliseconds since the Unix epoch."""
    return moment.timestamp() * 1000


class ScoredSet:
    """``member → score`` per owner; what a member and its score mean is the caller's."""

    def __init__(self, redis: Redis, *, name: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_seconds = ttl_seconds
        self._fill = redis.register_script(_FILL_IF_CURRENT)
        self._add = redis.register_script(_ADD_IF_CACHED)
        self._above = redis.register_script(_ABOVE)

    def key(self, owner_id: int) -> str:
        return f"{self.name}:{owner_id}"

    def _version_key(self, owner_id: int) -> str:
        return f"{self.name}:{owner_id}:v"

    def plan_read(
        self, owner_ids: Sequence[int]
    ) -> PlannedRead[dict[int, tuple[dict[str, float] | None, str]]]:
        """Each owner's members with their scores (None when not cached) and the version
        to fill with, in one part of a shared round trip (``db.redis.read_together``)."""
        owners = list(owner_ids)

        def queue(pipe: Any) -> None:
            for owner in owners:
                pipe.zrange(self.key(owner), 0, -1, withscores=True)
                pipe.get(self._version_key(owner))

        def parse(replies: list[Any]) -> dict[int, tuple[dict[str, float] | None, str]]:
            found: dict[int, tuple[dict[str, float] | None, str]] = {}
            for index, owner in enumerate(owners):
                pairs, version = replies[2 * index], replies[2 * index + 1]
                members = {_text(member): float(score) for member, score in pairs}
                cached = members if members.pop(_SENTINEL, None) is not None else None
                found[owner] = (cached, _text(version) if version is not None else "0")
            return found

        return PlannedRead(queue=queue, replies=2 * len(owners), parse=parse)

    def plan_read_above(
        self, owner_ids: Sequence[int], bound: float
    ) -> PlannedRead[dict[int, tuple[dict[str, float] | None, str]]]:
        """``plan_read``, keeping only members scored above ``bound``, computed in Valkey:
        an owner with none is ``({}, "0")`` without being sent (its version is needed only
        to fill a missing set)."""
        owners = list(owner_ids)
        batches = [
            owners[start : start + _ABOVE_BATCH] for start in range(0, len(owners), _ABOVE_BATCH)
        ]

        def queue(pipe: Any) -> None:
            for batch in batches:
                keys = [
                    key for owner in batch for key in (self.key(owner), self._version_key(owner))
                ]
                # What ``Script.__call__`` does for a pipeline, without awaiting: the
                # pipeline loads the script first if Valkey lacks it.
                pipe.scripts.add(self._above)
                pipe.evalsha(self._above.sha, len(keys), *keys, bound)

        def parse(replies: list[Any]) -> dict[int, tuple[dict[str, float] | None, str]]:
            found: dict[int, tuple[dict[str, float] | None, str]] = {
                owner: ({}, "0") for owner in owners
            }
            for batch, reply in zip(batches, replies, strict=True):
                for position, answer in zip(reply[::2], reply[1::2], strict=True):
                    owner = batch[int(position) - 1]
                    if isinstance(answer, list):
                        found[owner] = (
                            {
                                _text(answer[i]): float(answer[i + 1])
                                for i in range(0, len(answer), 2)
                            },
                            "0",
                        )
                    else:
                        found[owner] = (None, _text(answer))
            return found

        return PlannedRead(queue=queue, replies=len(batches), parse=parse)

    async def fill(
        self, owner_id: int, members: dict[str, float], *, version: str, epoch: int
    ) -> None:
        if not can_fill(self.redis, epoch):
            return
        flat: list[str | float] = [0, _SENTINEL]
        for member, score in members.items():
            flat.extend((score, member))
        try:
            await self._fill(
                keys=[self.key(owner_id), self._version_key(owner_id)],
                args=[version, self.ttl_seconds, *flat],
            )
        except RedisError as error:
            note_failure(self.redis, error)

    async def add(self, owner_id: int, member: str, score: float, *, drop_below: float) -> None:
        """After a committed write: add to a cached set (and drop members scored at or
        below ``drop_below``), bump the version so no older fill lands."""
        try:
            await self._add(
                keys=[self.key(owner_id), self._version_key(owner_id)],
                args=[score, member, drop_below],
            )
        except RedisError as error:
            invalidate_later(self.redis, error, self.key(owner_id))

    async def changed(self, *owner_ids: int) -> None:
        """After a committed write the set cannot follow cheaply: drop it."""
        for owner_id in owner_ids:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.incr(self._version_key(owner_id))
                    pipe.delete(self.key(owner_id))
                    await pipe.execute()
            except RedisError as error:
                invalidate_later(self.redis, error, self.key(owner_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
