"""Home feeds in Redis.

A feed is a sorted set ``feed:{user}`` whose members are post ids zero-padded to 19
digits, all with score 0: lexicographic order is then exactly id order (and ids are time
ordered), which a double score cannot promise for 64-bit ids. Pages are ``ZRANGE ... BYLEX
REV``; a trim after each push keeps the newest ``capacity`` entries.

``feed:{user}:ready`` marks a feed as complete. Fan-out adds to any feed, ready or not;
a reader that finds no marker rebuilds the feed from PostgreSQL and unions it in, so a
fan-out that lands during a rebuild is never lost.

Redis down (``db/redis.py``): a feed has no loader here, so ``page``, ``complete``,
``push``, ``is_ready`` and ``all_entries`` raise ``RedisError``; the
home feed then answers from PostgreSQL (fan-out on read) and the fan-out job fails and
is retried (its post stays ``pending``). ``invalidate`` (a feed went stale) never fails:
the ready marker is deleted when Redis answers again, before any cached read, so the
feed is rebuilt. ``remove`` never fails either: a removal lost to an outage only leaves
entries that the read-time follow check drops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from db.redis import PlannedRead, invalidate_later, note_failure, read_together_or_raise

ID_WIDTH = 19


def encode_member(post_id: int) -> str:
    return f"{post_id:0{ID_WIDTH}d}"


def feed_key(user_id: int) -> str:
    return f"feed:{user_id}"


def ready_key(user_id: int) -> str:
    return f"feed:{user_id}:ready"


@dataclass(frozen=True)
class FeedPage:
    ready: bool
    post_ids: list[int]


# Feeds are plain keys on one server (or a cluster slot each): the script touches keys it
# is given, as Redis requires, and nothing else.
_PUSH = """
local capacity = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
    for i = 2, #ARGV do
        redis.call('ZADD', key, 0, ARGV[i])
    end
    redis.call('ZREMRANGEBYRANK', key, 0, -(capacity + 1))
end
return #KEYS
"""


class FeedStore:
    def __init__(self, redis: Redis, *, capacity: int) -> None:
        self.redis = redis
        self.capacity = capacity
        self._push = redis.register_script(_PUSH)

    async def page(self, user_id: int, *, before_id: int | None, count: int) -> FeedPage:
        page: FeedPage
        (page,) = await read_together_or_raise(
            self.redis, [self.plan_page(user_id, before_id=before_id, count=count)]
        )
        return page

    def plan_page(
        self, user_id: int, *, before_id: int | None, count: int
    ) -> PlannedRead[FeedPage]:
        """``page`` as one part of a shared round trip (``db.redis.read_together``)."""
        upper = f"({encode_member(before_id)}" if before_id is not None else "+"

        def queue(pipe: Pipeline) -> None:
            pipe.exists(ready_key(user_id))
            pipe.zrange(feed_key(user_id), upper, "-", desc=True, bylex=True, offset=0, num=count)

        def parse(replies: list[Any]) -> FeedPage:
            ready, members = replies
            return FeedPage(ready=bool(ready), post_ids=[int(member) for member in members])

        return PlannedRead(queue=queue, replies=2, parse=parse)

    async def push(self, user_ids: Iterable[int], post_ids: Sequence[int]) -> int:
        """Add posts to many feeds in one round trip; returns the entries written.

        One script call per batch: Redis loops over the feeds itself, so the client encodes
        a batch of a thousand followers once instead of two thousand pipelined commands.
        """
        keys = [feed_key(user_id) for user_id in user_ids]
        if not post_ids or not keys:
            return 0
        members = [encode_member(post_id) for post_id in post_ids]
        await self._push(keys=keys, args=[self.capacity, *members])
        return len(keys) * len(members)

    async def remove(self, user_id: int, post_ids: Sequence[int]) -> None:
        if not post_ids:
            return
        try:
            await self.redis.zrem(feed_key(user_id), *(encode_member(p) for p in post_ids))
        except RedisError as error:
            # The readers' follow check drops what stays: nothing to replay.
            note_failure(self.redis, error)

    async def complete(self, user_id: int, post_ids: Sequence[int]) -> None:
        """Union a rebuilt feed into whatever fan-out wrote meanwhile, then mark it ready."""
        key = feed_key(user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            if post_ids:
                pipe.zadd(key, {encode_member(post_id): 0 for post_id in post_ids})
                pipe.zremrangebyrank(key, 0, -(self.capacity + 1))
            pipe.set(ready_key(user_id), "1")
            await pipe.execute()

    async def is_ready(self, user_id: int) -> bool:
        return bool(await self.redis.exists(ready_key(user_id)))

    async def invalidate(self, user_id: int) -> None:
        """The feed may be stale (the user was away, a backfill failed): rebuild it on the
        next read."""
        key = ready_key(user_id)
        try:
            await self.redis.delete(key)
        except RedisError as error:
            invalidate_later(self.redis, error, key)

    async def all_entries(self, user_id: int) -> list[int]:
        members = await self.redis.zrange(feed_key(user_id), "+", "-", desc=True, bylex=True)
        return [int(member) for member in members]  # type: ignore[arg-type]
