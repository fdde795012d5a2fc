"""Routing: rows land in the shard their ids name, on both physical databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from db.ids import shard_of
from db.instrumentation import count_work
from db.runtime import Runtime
from db.session import ShardSessions
from db.shards import UnknownShardError, shard_schema, to_sqlalchemy_url
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, sign_up


async def test_users_land_on_every_physical_database(runtime: Runtime, gql: GraphQLClient) -> None:
    shard_map = runtime.shard_map
    assert len(shard_map.database_urls) >= 2
    accounts = [await sign_up(gql, f"router{n}") for n in range(24)]
    ids = [from_global_id(account.id)[1] for account in accounts]

    rows_per_database = []
    for index, dsn in enumerate(shard_map.database_urls):
        engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
        with engine.connect() as connection:
            found = {}
            for shard in shard_map.shards_on(index):
                for (user_id,) in connection.execute(
                    text(f"SELECT id FROM {shard_schema(shard)}.users")
                ):
                    found[user_id] = shard
        engine.dispose()
        rows_per_database.append(found)

    assert all(rows for rows in rows_per_database), "every database holds some users"
    for found in rows_per_database:
        for user_id, shard in found.items():
            # The row sits in exactly the schema its id's bits name.
            assert shard_of(user_id) == shard
    assert sorted(k for found in rows_per_database for k in found) == sorted(ids)


async def test_scatter_gather_runs_shards_concurrently(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)

    async def probe(session: object) -> tuple[float, float]:
        row = (
            await session.execute(  # type: ignore[attr-defined]
                text(
                    "SELECT extract(epoch FROM clock_timestamp()), pg_sleep(0.3), "
                    "extract(epoch FROM clock_timestamp())"
                )
            )
        ).one()
        return float(row[0]), float(row[2])

    spans = await sessions.scatter_all(probe)
    assert set(spans) == set(runtime.shard_map.shards)
    latest_start = max(start for start, _ in spans.values())
    earliest_end = min(end for _, end in spans.values())
    # Every shard's query was running at one same instant: they overlapped.
    assert latest_start < earliest_end


async def test_sessions_open_only_the_shards_a_request_touches(
    runtime: Runtime, gql: GraphQLClient
) -> None:
    account = await sign_up(gql, "toucher")
    user_id = from_global_id(account.id)[1]
    await runtime.redis.flushdb()
    result = await gql("{ viewer { username } }", token=account.token)
    assert result.ok() == {"viewer": {"username": "toucher"}}
    home = runtime.shard_map.database_of(shard_of(user_id))
    home_name = make_url(to_sqlalchemy_url(runtime.shard_map.database_urls[home])).database
    assert set(result.work.statements_by_database) == {home_name}


async def test_unknown_shard_is_refused(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)
    with pytest.raises(UnknownShardError):
        async with sessions.shard(runtime.shard_map.logical_shards):
            pass


async def test_statement_counter_counts_sql_and_redis(runtime: Runtime) -> None:
    sessions = ShardSessions(runtime.databases)
    with count_work() as work:
        await sessions.scatter_all(lambda session: session.execute(text("SELECT 1")))
        await runtime.redis.set("probe", "1")
        async with runtime.redis.pipeline() as pipe:
            pipe.get("probe")
            pipe.get("probe")
            await pipe.execute()
    assert work.sql_statements == runtime.shard_map.logical_shards
    assert work.redis_round_trips == 2
    # Outside the block nothing is counted.
    await asyncio.gather(sessions.scatter_all(lambda s: s.execute(text("SELECT 1"))))
    assert work.sql_statements == runtime.shard_map.logical_shards
