"""Read-through Redis cache of rows, invalidated on write.

Rows are stored as JSON of their column values under ``{prefix}:{id}``. A page of
objects costs one MGET; only the misses go to PostgreSQL, grouped by shard. Writers store
ORM rows; readers get plain records (``db/<feature>/records.py``), decoded by msgspec in
one call per row, and misses loaded from PostgreSQL are turned into records too.

Redis down (``db/redis.py``): a failed MGET is a full miss, loaded from PostgreSQL and not
filled back; a failed write-through or invalidation does not fail the request, the key is
deleted when Redis answers again (before any cached read is served from it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base
from db.redis import (
    PlannedRead,
    can_fill,
    invalidate_later,
    note_failure,
    nothing_to_read,
    read_epoch,
)
from db.session import ShardSessions

ModelT = TypeVar("ModelT", bound=Base)
RecordT = TypeVar("RecordT", bound=msgspec.Struct)
_MISSING = b"-"


def to_record(record: type[RecordT], row: Base) -> RecordT:
    """A row loaded from PostgreSQL or just written, as readers get it."""
    return record(**{column: getattr(row, column) for column in record.__struct_fields__})


class RowCache(Generic[ModelT, RecordT]):
    def __init__(
        self,
        redis: Redis,
        model: type[ModelT],
        record: type[RecordT],
        *,
        prefix: str,
        ttl_seconds: int,
    ) -> None:
        self.redis = redis
        self.model = model
        self.record = record
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        # The record's fields are the columns cached: anything else (credentials) never
        # reaches Redis.
        columns = {attr.key for attr in sa_inspect(model).column_attrs}
        if not set(record.__struct_fields__) <= columns:
            raise TypeError(f"{record.__name__} has fields {model.__name__} lacks")
        self._decoder = msgspec.json.Decoder(record)

    def key(self, object_id: int) -> str:
        return f"{self.prefix}:{object_id}"

    def encode(self, row: ModelT) -> bytes:
        """What the cache holds for a written row: its record's JSON, as readers fill it."""
        return msgspec.json.encode(self.record_of(row))

    def decode(self, raw: bytes | str) -> RecordT:
        return self._decoder.decode(raw)

    def record_of(self, row: ModelT) -> RecordT:
        """A row loaded from PostgreSQL or just written, as readers get it."""
        return to_record(self.record, row)

    async def get_many(self, ids: Sequence[int]) -> dict[int, RecordT | None]:
        """Cached ids only: a row, or None where the cache knows the id is gone. Empty
        (all misses) when Redis cannot answer."""
        found = await self._cached(ids)
        return {} if found is None else found

    async def _cached(self, ids: Sequence[int]) -> dict[int, RecordT | None] | None:
        """Like ``get_many``, but None when Redis could not answer."""
        if not ids:
            return {}
        try:
            raws = await self.redis.mget([self.key(object_id) for object_id in ids])
        except RedisError as error:
            note_failure(self.redis, error)
            return None
        return self._found(ids, raws)

    def _found(
        self, ids: Sequence[int], raws: Sequence[bytes | str | None]
    ) -> dict[int, RecordT | None]:
        found: dict[int, RecordT | None] = {}
        for object_id, raw in zip(ids, raws, strict=True):
            if raw == _MISSING:
                found[object_id] = None
            elif raw is not None:
                found[object_id] = self.decode(raw)
        return found

    def plan_get(self, ids: Sequence[int]) -> PlannedRead[dict[int, RecordT | None]]:
        """``get_many`` as one part of a round trip shared with other reads
        (``db.redis.read_together``)."""
        keys = [self.key(object_id) for object_id in ids]
        if not keys:
            return nothing_to_read({})
        return PlannedRead(
            queue=lambda pipe: pipe.mget(keys),
            replies=1,
            parse=lambda replies: self._found(ids, replies[0]),
        )

    async def fill(self, rows: dict[int, RecordT | None], *, epoch: int | None = None) -> None:
        """Cache what a reader loaded, without overwriting a concurrent writer's value.

        SET NX: a reader that read PostgreSQL before a write committed must not replace
        the value (or tombstone) that the writer stored after committing. Skipped while
        Redis is down, or if an outage began after ``epoch`` (``db.redis.read_epoch``,
        taken before reading): the writer's invalidation may then be pending.
        """
        if not rows or not can_fill(self.redis, epoch):
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for object_id, row in rows.items():
                    value = _MISSING if row is None else msgspec.json.encode(row)
                    pipe.set(self.key(object_id), value, ex=self.ttl_seconds, nx=True)
                await pipe.execute()
        except RedisError as error:
            note_failure(self.redis, error)

    async def store(self, object_id: int, row: ModelT | None) -> None:
        """Write-through after a committed change; None marks the object deleted."""
        value = _MISSING if row is None else self.encode(row)
        key = self.key(object_id)
        try:
            await self.redis.set(key, value, ex=self.ttl_seconds)
        except RedisError as error:
            invalidate_later(self.redis, error, key)

    async def load(
        self,
        ids: Sequence[int],
        *,
        sessions: ShardSessions,
        fetch: Callable[[AsyncSession, list[int]], Awaitable[list[ModelT]]],
    ) -> list[RecordT | None]:
        """Rows for ``ids`` in order: one MGET, then one query per shard for the misses."""
        epoch = read_epoch(self.redis)
        cached = await self._cached(ids)
        found = {} if cached is None else cached
        misses = [object_id for object_id in dict.fromkeys(ids) if object_id not in found]
        if misses:
            rows = await sessions.scatter_ids(misses, fetch)
            loaded: dict[int, RecordT | None] = dict.fromkeys(misses)
            for row in rows:
                loaded[self.identity(row)] = self.record_of(row)
            if cached is not None:
                await self.fill(loaded, epoch=epoch)
            found.update(loaded)
        return [found.get(object_id) for object_id in ids]

    def identity(self, row: ModelT) -> int:
        value: int = getattr(row, "id")  # noqa: B009
        return value

    async def invalidate(self, *ids: int) -> None:
        if not ids:
            return
        keys = [self.key(object_id) for object_id in ids]
        try:
            await self.redis.delete(*keys)
        except RedisError as error:
            for key in keys:
                invalidate_later(self.redis, error, key)
