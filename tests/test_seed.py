"""The demo seeder: edge lists and generated heavy-tailed graphs load into every shard."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from aperture.runtime import Runtime
from aperture.seed import DEMO_PASSWORD, generate_graph, load_graph, read_edge_list
from db.session import ShardSessions
from tests.helpers import GraphQLClient

REED = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "social-graphs" / "socfb-Reed98.edges"
)


def test_generated_graph_is_heavy_tailed_and_seeded() -> None:
    graph = generate_graph(3000, seed=1)
    assert graph == generate_graph(3000, seed=1)
    followers = Counter(followee for _, followee in graph.edges)
    counts = sorted(followers.values(), reverse=True)
    top_one_percent = sum(counts[: len(counts) // 100])
    # A few accounts hold a large share of all follows, unlike a uniform graph.
    assert top_one_percent > 0.2 * len(graph.edges)
    assert all(a != b for a, b in graph.edges)


async def test_seeded_network_is_queryable(runtime: Runtime, gql: GraphQLClient) -> None:
    graph = generate_graph(60, seed=3, mean_following=8)
    await load_graph(ShardSessions(runtime.databases), graph, posts_per_user=2)
    logged_in = await gql(
        'mutation($p: String!) { logIn(username: "user0@example.com", password: $p) { token } }',
        {"p": DEMO_PASSWORD},
    )
    token = logged_in.ok()["logIn"]["token"]
    expected_following = sum(1 for a, _ in graph.edges if a == 0)
    viewer = await gql(
        "{ viewer { followingCount postCount posts { edges { node { hashtags } } } } }",
        token=token,
    )
    data = viewer.ok()["viewer"]
    assert data["followingCount"] == expected_following
    assert data["postCount"] == 2
    tag = data["posts"]["edges"][0]["node"]["hashtags"][0]
    tagged = await gql(
        "query($t: String!) { postsByHashtag(tag: $t) { edges { node { id } } } }", {"t": tag}
    )
    assert tagged.ok()["postsByHashtag"]["edges"]


@pytest.mark.skipif(not REED.exists(), reason="shared social graph data is absent")
def test_reed_edge_list_becomes_follows_both_ways() -> None:
    graph = read_edge_list(REED)
    assert graph.users == 962
    assert len(graph.edges) == 2 * 18812
