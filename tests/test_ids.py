"""Ids made by each shard's next_id(): unique under concurrency, time-ordered, decodable."""

from __future__ import annotations

import asyncio
import itertools
import time

from sqlalchemy import text

from db.ids import EPOCH_MS, compose_id, decode_id, shard_of
from db.runtime import Runtime
from db.session import ShardSessions
from db.shards import shard_schema


async def _next_ids(sessions: ShardSessions, shard: int, count: int) -> list[int]:
    ids = []
    async with sessions.shard(shard) as session:
        for _ in range(count):
            ids.append(int(await session.scalar(text(f"SELECT {shard_schema(shard)}.next_id()"))))
    return ids


async def test_ids_are_unique_under_concurrency(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)
    batches = await asyncio.gather(*(_next_ids(sessions, 3, 150) for _ in range(12)))
    ids = [i for batch in batches for i in batch]
    assert len(ids) == 12 * 150
    assert len(set(ids)) == len(ids)
    assert {shard_of(i) for i in ids} == {3}


async def test_ids_are_time_ordered_within_a_shard(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)
    before_ms = int(time.time() * 1000) - EPOCH_MS
    ids = await _next_ids(sessions, 5, 300)
    after_ms = int(time.time() * 1000) - EPOCH_MS
    assert len(set(ids)) == len(ids)
    stamps = [decode_id(object_id).milliseconds_since_epoch for object_id in ids]
    assert stamps == sorted(stamps), "time order, to the millisecond"
    # Ids from different milliseconds sort by time. Within one millisecond they follow the
    # 10-bit sequence, which wraps every 1024 ids: the layout's documented limit.
    for earlier, later in itertools.pairwise(ids):
        if decode_id(earlier).milliseconds_since_epoch < decode_id(later).milliseconds_since_epoch:
            assert earlier < later
    for object_id in (ids[0], ids[-1]):
        parts = decode_id(object_id)
        assert before_ms - 5 <= parts.milliseconds_since_epoch <= after_ms + 5


async def test_every_shard_stamps_its_own_number(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)
    for shard in runtime.shard_map.shards:
        (object_id,) = await _next_ids(sessions, shard, 1)
        assert decode_id(object_id).shard == shard
        assert runtime.shard_map.shard_for_id(object_id) == shard


def test_id_layout_round_trips() -> None:
    object_id = compose_id(milliseconds_since_epoch=123_456_789, shard=8191, sequence=1023)
    parts = decode_id(object_id)
    assert (parts.milliseconds_since_epoch, parts.shard, parts.sequence) == (
        123_456_789,
        8191,
        1023,
    )
    # The largest timestamp that keeps the id a positive signed bigint: about 34.8 years.
    last = compose_id(milliseconds_since_epoch=(1 << 40) - 1, shard=8191, sequence=1023)
    assert last < 1 << 63
    assert decode_id(last).created_at.year == 2060
