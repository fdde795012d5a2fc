"""Shard-aware sessions for one request or job.

A session is bound to exactly one logical shard (its engine rewrites unqualified table
names to the shard's schema), so a repository cannot read the wrong shard by accident.
Each ``shard()`` block is one transaction on one pooled connection, opened only when
used: a request touches only the databases its ids route to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import shard_of
from db.instrumentation import WROTE
from db.shards import Databases, ShardMap

T = TypeVar("T")


async def _forget_writes(session: AsyncSession) -> bool:
    """Whether the session's transaction changed rows (``db/instrumentation.py`` marks its
    connection), clearing the mark before the connection goes back to the pool."""
    if not session.in_transaction():
        return False
    connection = await session.connection()
    return bool(connection.info.pop(WROTE, False))


class ShardSessions:
    def __init__(self, databases: Databases) -> None:
        self.databases = databases
        self.shards_touched: set[int] = set()
        # Transactions that changed rows and committed: once there is one, the operation's
        # answer must not turn into an error its client would retry (graphql_api/http.py).
        self.committed_writes = 0

    @property
    def shard_map(self) -> ShardMap:
        return self.databases.shard_map

    @asynccontextmanager
    async def shard(self, shard: int) -> AsyncIterator[AsyncSession]:
        """A transaction on ``shard``: committed when the block exits cleanly."""
        engine = self.databases.engine_for_shard(shard)
        self.shards_touched.add(shard)
        # A fresh session per block, never one shared between concurrent tasks:
        # DataLoader batches for the same shard may run at the same time.
        async with AsyncSession(engine, expire_on_commit=False) as session:
            try:
                yield session
                wrote = await _forget_writes(session)
                await session.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await _forget_writes(session)
                await session.rollback()
                raise
            if wrote:
                self.committed_writes += 1

    @asynccontextmanager
    async def for_id(self, object_id: int) -> AsyncIterator[AsyncSession]:
        async with self.shard(self.shard_map.shard_for_id(object_id)) as session:
            yield session

    async def scatter(
        self,
        shards: Iterable[int],
        query: Callable[[AsyncSession], Awaitable[T]],
    ) -> dict[int, T]:
        """Run ``query`` on each shard concurrently and collect the results by shard."""
        shard_list = list(dict.fromkeys(shards))

        async def run(shard: int) -> T:
            async with self.shard(shard) as session:
                return await query(session)

        results = await asyncio.gather(*(run(shard) for shard in shard_list))
        return dict(zip(shard_list, results, strict=True))

    async def scatter_all(self, query: Callable[[AsyncSession], Awaitable[T]]) -> dict[int, T]:
        return await self.scatter(self.shard_map.shards, query)

    async def scatter_ids(
        self,
        ids: Iterable[int],
        query: Callable[[AsyncSession, list[int]], Awaitable[list[T]]],
    ) -> list[T]:
        """Route ids to their shards by their bits, query each shard once, concurrently."""
        grouped = self.group_by_shard(ids)

        async def run(shard: int, shard_ids: list[int]) -> list[T]:
            async with self.shard(shard) as session:
                return await query(session, shard_ids)

        results = await asyncio.gather(*(run(s, shard_ids) for s, shard_ids in grouped.items()))
        return [row for rows in results for row in rows]

    def group_by_shard(self, ids: Iterable[int]) -> dict[int, list[int]]:
        """Split ids by the shard their bits name; unknown shards are left out."""
        grouped: dict[int, list[int]] = {}
        for object_id in ids:
            shard = shard_of(object_id)
            if self.shard_map.exists(shard):
                grouped.setdefault(shard, []).append(object_id)
        return grouped
