"""The demo seeder: edge lists and generated heavy-tailed graphs load into every shard,
and seeding the same network again adds nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aperture.seed import DEMO_PASSWORD, generate_graph, load_graph, read_edge_list, seed_graph
from db.accounts.models import Follower, Following, User
from db.base import Base
from db.posts.models import HashtagPost, Post, PostHashtag
from db.runtime import Runtime
from db.session import ShardSessions
from infra.servers import Servers, servers_environment
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


async def _rows(sessions: ShardSessions, model: type[Base]) -> int:
    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return sum((await sessions.scatter_all(count)).values())


async def test_seeding_twice_adds_nothing(runtime: Runtime, sessions: ShardSessions) -> None:
    graph = generate_graph(40, seed=5, mean_following=6)
    first = await seed_graph(sessions, graph, prefix="twice", posts_per_user=2)
    assert (first.new_users, first.new_follows, first.new_posts) == (40, len(graph.edges), 80)
    counted = {
        model: await _rows(sessions, model)
        for model in (User, Following, Follower, Post, PostHashtag, HashtagPost)
    }
    assert counted[Post] == 80
    assert counted[Following] == counted[Follower] == len(graph.edges)

    again = await seed_graph(sessions, graph, prefix="twice", posts_per_user=2)
    assert again.added_nothing
    assert again.recounted_users == 0
    assert again.user_ids == first.user_ids
    # load_graph, what the benchmarks and tests call, is the same idempotent load.
    assert await load_graph(sessions, graph, prefix="twice") == first.user_ids
    for model, rows in counted.items():
        assert await _rows(sessions, model) == rows, model.__name__

    # More posts per user tops each user up; nothing else is written again.
    more = await seed_graph(sessions, graph, prefix="twice", posts_per_user=3)
    assert (more.new_users, more.new_follows, more.new_posts) == (0, 0, 40)
    assert await _rows(sessions, Post) == 120


async def test_seed_command_says_when_the_network_is_already_there(
    runtime: Runtime, servers: Servers, project_env: dict[str, str]
) -> None:
    env = {
        **project_env,
        # Without the run's object store it would start an embedded one under the default
        # data dir.
        **servers_environment(servers),
    }
    command = [sys.executable, "-m", "aperture.cli", "seed", "--users", "12", "--prefix", "cli"]

    def seed() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    first = await asyncio.to_thread(seed)
    assert first.returncode == 0, first.stderr
    assert "seeded 12 users" in first.stdout
    second = await asyncio.to_thread(seed)
    assert second.returncode == 0, second.stderr
    assert "already loaded" in second.stdout
    assert "nothing added" in second.stdout
    assert await _rows(ShardSessions(runtime.databases), Post) == 24
