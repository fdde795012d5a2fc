"""The profile grid's first page: full to its size, it knows more posts follow."""

from __future__ import annotations

from aperture.seed import Graph, load_graph
from db.runtime import Runtime
from db.session import ShardSessions
from tests.helpers import GraphQLClient


async def test_a_full_first_profile_page_knows_there_is_more(
    runtime: Runtime, gql: GraphQLClient
) -> None:
    await load_graph(
        ShardSessions(runtime.databases),
        Graph(users=1, edges=[]),
        prefix="prolific",
        posts_per_user=101,
    )
    page = await gql(
        '{ user(username: "prolific0") { posts(first: 100) { edges { cursor } pageInfo { hasNextPage } } } }'
    )
    posts = page.ok()["user"]["posts"]
    assert len(posts["edges"]) == 100
    assert posts["pageInfo"]["hasNextPage"] is True
