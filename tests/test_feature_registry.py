"""A feature is added by the documented checklist and nothing else.

A throwaway feature ("polls") is written into temporary packages that join ``db``,
``domain`` and ``graphql_api``, as a new feature's folders would: its Redis keys in
``db/polls/``, its rules and declaration in ``domain/polls/``, its roots and bounds in
``graphql_api/polls/``. No shared file is edited, yet the schema serves its fields, the
cost model charges its list by its bound, ``AppState`` makes its service on real Valkey,
and the test suite's cleanup knows its table. (Its table's migration is a file in
``migrations/shards/versions/``, which the migration tests cover.)
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import graphql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

import db
import domain
import graphql_api
from db.session import ShardSessions
from db.shards import ShardMap, shard_schema, to_sqlalchemy_url
from domain.features import domain_features, shard_tables
from domain.state import AppState
from graphql_api.context import Context
from graphql_api.cost import Limits, TooComplex, analyse
from graphql_api.features import api_features
from graphql_api.schema import build_schema
from tests.conftest import empty_every_table

FILES = {
    "db/polls/__init__.py": "",
    "db/polls/caches.py": """
        from redis.asyncio import Redis

        from infra.settings import Settings


        class PollCaches:
            # Votes per poll, under keys named here.

            def __init__(self, redis: Redis, settings: Settings) -> None:
                self._redis = redis

            async def add_vote(self, poll_id: int) -> int:
                return int(await self._redis.incr(f"poll-votes:{poll_id}"))

            async def votes(self, poll_ids: list[int]) -> list[int]:
                values = await self._redis.mget([f"poll-votes:{p}" for p in poll_ids])
                return [int(value or 0) for value in values]
        """,
    "domain/polls/__init__.py": "",
    "domain/polls/votes.py": """
        from db.polls.caches import PollCaches
        from domain.errors import BadUserInput
        from domain.state import AppState

        MAX_OPTIONS = 4


        async def vote(state: AppState, poll_id: int) -> int:
            if poll_id <= 0:
                raise BadUserInput("No such poll", field="pollId")
            return await state.of(PollCaches).add_vote(poll_id)


        BATCHES: list[list[int]] = []


        async def votes(state: AppState, poll_ids: list[int]) -> list[int]:
            BATCHES.append(list(poll_ids))
            return await state.of(PollCaches).votes(poll_ids)
        """,
    "domain/polls/feature.py": """
        from db.polls.caches import PollCaches
        from domain.features import DomainFeature, caches

        FEATURE = DomainFeature(
            name="polls", tables=("poll_votes",), services={PollCaches: caches(PollCaches)}
        )
        """,
    "graphql_api/polls/__init__.py": "",
    "graphql_api/polls/loaders.py": """
        from domain.polls import votes
        from graphql_api.context import Loaders
        from graphql_api.loader import Loader


        class PollLoaders:
            def __init__(self, loaders: Loaders) -> None:
                state = loaders.state
                self.votes: Loader[int, int] = Loader(
                    lambda ids: votes.votes(state, list(ids))
                )
        """,
    "graphql_api/polls/schema.py": """
        import strawberry

        from domain.polls import votes
        from graphql_api.context import Info
        from graphql_api.loader import Loaded
        from graphql_api.polls.loaders import PollLoaders


        @strawberry.type
        class PollOption:
            label: str


        @strawberry.type
        class Poll:
            id: int

            @strawberry.field
            def options(self) -> list[PollOption]:
                return [PollOption(label=str(n)) for n in range(votes.MAX_OPTIONS)]


        @strawberry.type
        class PollQueries:
            @strawberry.field(graphql_type=int)
            def poll_votes(self, info: Info, poll_id: int) -> Loaded[int]:
                return info.context.loaders.of(PollLoaders).votes.get(poll_id)

            @strawberry.field
            def polls(self, ids: list[int]) -> list[Poll]:
                return [Poll(id=poll_id) for poll_id in ids]


        @strawberry.type
        class PollMutations:
            @strawberry.mutation
            async def vote(self, info: Info, poll_id: int) -> int:
                return await votes.vote(info.context.state, poll_id)
        """,
    "graphql_api/polls/feature.py": """
        from domain.polls.votes import MAX_OPTIONS
        from graphql_api.features import ApiFeature
        from graphql_api.polls.loaders import PollLoaders
        from graphql_api.polls.schema import PollMutations, PollQueries

        FEATURE = ApiFeature(
            name="polls",
            query=PollQueries,
            mutation=PollMutations,
            loaders={PollLoaders: PollLoaders},
            list_bounds={("Poll", "options"): MAX_OPTIONS, ("Query", "polls"): 3},
        )
        """,
}


def _in_every_shard(shard_map: ShardMap, statement: str) -> None:
    for index, dsn in enumerate(shard_map.database_urls):
        engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for shard in shard_map.shards_on(index):
                    connection.exec_driver_sql(statement.format(schema=shard_schema(shard)))
        finally:
            engine.dispose()


@pytest.fixture
def polls_feature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shard_map: ShardMap
) -> Iterator[None]:
    # What its migration would do: its table in every shard.
    _in_every_shard(shard_map, "CREATE TABLE {schema}.poll_votes (poll_id bigint, voter_id bigint)")
    for relative, source in FILES.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from __future__ import annotations\n" + textwrap.dedent(source))
    for package in (db, domain, graphql_api):
        # A fresh list: the packages' own paths are left as they were afterwards.
        monkeypatch.setattr(
            package, "__path__", [*package.__path__, str(tmp_path / package.__name__)]
        )
    yield
    _in_every_shard(shard_map, "DROP TABLE {schema}.poll_votes")
    for name in [n for n in sys.modules if n.split(".")[:2][-1:] == ["polls"]]:
        del sys.modules[name]


@pytest.mark.usefixtures("polls_feature")
async def test_a_feature_in_its_own_folders_joins_every_shared_part(
    app_state: AppState, sessions: ShardSessions, shard_map: ShardMap
) -> None:
    assert "polls" in [feature.name for feature in domain_features()]
    assert "polls" in [feature.name for feature in api_features()]
    # Cleanup and the migrations check loop over the registry's tables: the rows left
    # here are gone before the next test.
    assert "poll_votes" in shard_tables()
    async with sessions.shard(0) as session:
        await session.execute(text(f"INSERT INTO {shard_schema(0)}.poll_votes VALUES (7, 1)"))
    empty_every_table(shard_map)
    async with sessions.shard(0) as session:
        assert (
            await session.execute(text(f"SELECT count(*) FROM {shard_schema(0)}.poll_votes"))
        ).scalar() == 0

    schema = build_schema()
    sdl = schema.as_str()
    assert "pollVotes(pollId: Int!): Int!" in sdl
    assert "vote(pollId: Int!): Int!" in sdl
    # Every other feature's roots are still there.
    assert "homeFeed(" in sdl
    assert "sendMessage(" in sdl

    context = Context(state=app_state)
    for expected in (1, 2):
        voted = await schema.execute("mutation { vote(pollId: 7) }", context_value=context)
        assert voted.errors is None
        assert voted.data == {"vote": expected}
    # Read through its loaders, made per operation: three fields, one batch.
    from domain.polls.votes import BATCHES  # type: ignore[import-untyped]

    read = await schema.execute(
        "{ a: pollVotes(pollId: 7) b: pollVotes(pollId: 8) c: pollVotes(pollId: 7) }",
        context_value=Context(state=app_state),
    )
    assert read.errors is None
    assert read.data == {"a": 2, "b": 0, "c": 2}
    assert BATCHES == [[7, 8]]
    refused = await schema.execute(
        "mutation { vote(pollId: 0) }", context_value=Context(state=app_state)
    )
    assert refused.errors is not None
    assert refused.errors[0].extensions == {"code": "BAD_USER_INPUT", "field": "pollId"}

    # Its service is made by AppState from its declaration, once.
    from db.polls.caches import PollCaches  # type: ignore[import-untyped]

    assert app_state.of(PollCaches) is app_state.of(PollCaches)

    # The cost model charges its lists by the feature's bounds: 3 polls x (1 + 4 options).
    public = graphql.build_schema(sdl)
    limits = Limits(max_cost=15, max_depth=10, max_aliases=10)
    document = graphql.parse("{ polls(ids: [1, 2, 3]) { options { label } } }")
    assert analyse(public, document, operation_name=None, variables={}, limits=limits) == 15
    with pytest.raises(TooComplex):
        analyse(
            public,
            document,
            operation_name=None,
            variables={},
            limits=Limits(max_cost=14, max_depth=10, max_aliases=10),
        )


def test_without_the_new_feature_nothing_of_it_remains() -> None:
    """The registry reads the packages' paths: the throwaway feature is gone with them."""
    assert "polls" not in [feature.name for feature in domain_features()]
    assert "poll_votes" not in shard_tables()
    assert "pollVotes" not in build_schema().as_str()
