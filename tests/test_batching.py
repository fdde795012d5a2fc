"""No N+1: SQL statements per request do not grow with the page size, and a warm repeat
runs almost none. Redis may be flushed at any point without wrong answers. And the loader
every field reads through (graphql_api/loader.py): a tick's keys in one batch, what it
holds (primed by a page's plan, or loaded before) answered at once, without a future."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from db.runtime import Runtime
from graphql_api.loader import Loader, fill, pending, then
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up

PAGE = """
query($first: Int!) {
  postsByHashtag(tag: "batch", first: $first) {
    edges { node {
      caption
      author { username }
      likeCount
      viewerHasLiked
      comments(first: 2) { edges { node { body author { username } } } }
    } }
  }
}
"""


@pytest.fixture
async def network(gql: GraphQLClient) -> dict[str, object]:
    authors = [await sign_up(gql, f"batch.author{n}") for n in range(10)]
    viewer = await sign_up(gql, "batch.viewer")
    commenters = [await sign_up(gql, f"batch.c{n}") for n in range(4)]
    posts: list[str] = []
    for n in range(50):
        posts.append(await create_post(gql, authors[n % 10], f"post {n} #batch"))
    for n, post_id in enumerate(posts):
        for c in range(3):
            await gql(
                "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) { comment { id } } }",
                {"p": post_id, "b": f"comment {c} on {n}"},
                token=commenters[(n + c) % 4].token,
            )
        if n % 3 == 0:
            await gql(
                "mutation($p: ID!) { likePost(postId: $p) { post { id } } }",
                {"p": post_id},
                token=viewer.token,
            )
    await follow(gql, viewer, authors[0])
    return {"viewer": viewer, "posts": posts}


async def _cold(
    gql: GraphQLClient, runtime: Runtime, viewer: Account, first: int
) -> tuple[int, dict[str, Any]]:
    await runtime.redis.flushdb()
    result = await gql(PAGE, {"first": first}, token=viewer.token)
    return result.work.sql_statements, result.ok()


async def test_statements_do_not_grow_with_page_size(
    gql: GraphQLClient, runtime: Runtime, network: dict[str, object]
) -> None:
    viewer = network["viewer"]
    assert isinstance(viewer, Account)
    small, small_data = await _cold(gql, runtime, viewer, 5)
    large, large_data = await _cold(gql, runtime, viewer, 50)
    assert len(small_data["postsByHashtag"]["edges"]) == 5
    edges = large_data["postsByHashtag"]["edges"]
    assert len(edges) == 50
    assert all(len(edge["node"]["comments"]["edges"]) == 2 for edge in edges)
    assert all(edge["node"]["comments"]["edges"][0]["node"]["author"] for edge in edges)
    assert sum(edge["node"]["viewerHasLiked"] for edge in edges) == 17
    shards = runtime.shard_map.logical_shards
    # Relations on the page: the hashtag index, posts, authors, like counts, viewer likes,
    # comment lists, comments, comment authors; plus the viewer's session, activity,
    # block set and following set. Each is at most one statement per shard touched.
    assert large <= 13 * shards
    assert large == small or large <= small + 6 * shards, (small, large)
    # The real proof: fifty posts did not cost ten times what five did.
    assert large < 2 * small + shards


async def test_warm_repeat_runs_almost_no_sql(
    gql: GraphQLClient, runtime: Runtime, network: dict[str, object]
) -> None:
    viewer = network["viewer"]
    assert isinstance(viewer, Account)
    first = await gql(PAGE, {"first": 50}, token=viewer.token)
    first.ok()
    warm = await gql(PAGE, {"first": 50}, token=viewer.token)
    assert warm.ok() == first.ok()
    # Only the hashtag index page itself is read from PostgreSQL.
    assert warm.work.sql_statements <= 1, warm.work.statements
    assert warm.work.redis_round_trips <= 12


async def test_redis_flush_mid_test_keeps_reads_and_counters_right(
    gql: GraphQLClient, runtime: Runtime
) -> None:
    author = await sign_up(gql, "flush.author")
    fans = [await sign_up(gql, f"flush.fan{n}") for n in range(4)]
    post_id = await create_post(gql, author, "count me")
    like = "mutation($p: ID!) { likePost(postId: $p) { post { likeCount } } }"
    for fan in fans[:3]:
        await gql(like, {"p": post_id}, token=fan.token)
    await gql(
        'mutation($p: ID!) { addComment(postId: $p, body: "hi") { comment { id } } }',
        {"p": post_id},
        token=fans[0].token,
    )
    read = (
        "query($id: ID!) { node(id: $id) { ... on Post { caption likeCount commentCount "
        "viewerHasLiked author { followerCount } } } }"
    )
    before = (await gql(read, {"id": post_id}, token=fans[0].token)).ok()
    assert before["node"]["likeCount"] == 3

    await runtime.redis.flushdb()
    after = (await gql(read, {"id": post_id}, token=fans[0].token)).ok()
    assert after == before, "rebuilt from PostgreSQL, not reset to zero"

    # Writes after the flush land on the rebuilt counter.
    result = await gql(like, {"p": post_id}, token=fans[3].token)
    assert result.ok()["likePost"]["post"]["likeCount"] == 4
    await runtime.redis.flushdb()
    liked = await gql(like, {"p": post_id}, token=fans[3].token)
    assert liked.ok()["likePost"]["post"]["likeCount"] == 4


class _Source:
    """A batch function that records what it was asked for."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail

    async def __call__(self, keys: Sequence[int]) -> list[int]:
        self.calls.append(list(keys))
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("the store is down")
        return [key * 10 for key in keys]


async def test_a_loader_batches_a_tick_and_then_answers_at_once() -> None:
    source = _Source()
    loader: Loader[int, int] = Loader(source)
    first, second, again = loader.get(1), loader.get(2), loader.get(1)
    assert pending(first)
    assert pending(second)
    assert again is first
    assert list(await asyncio.gather(first, second, loader.load(3))) == [10, 20, 30]
    assert source.calls == [[1, 2, 3]]
    # Held now: the values themselves, no future, no further batch.
    assert loader.get(2) == 20
    assert loader.get_many([3, 1]) == [30, 10]
    assert then(loader.get(1), lambda value: value + 1) == 11
    assert source.calls == [[1, 2, 3]]


async def test_primed_values_answer_without_a_load_and_the_first_answer_stays() -> None:
    source = _Source()
    loader: Loader[int, int] = Loader(source)
    loader.prime_many({1: 5, 2: 6})
    loader.prime(1, 99)  # read later in the operation: the first answer is kept
    assert loader.get_many([1, 2]) == [5, 6]
    waiting = loader.get(3)
    assert pending(waiting)
    loader.prime(3, 7)  # primed while it waited for its batch: not loaded
    assert await waiting == 7
    assert await loader.load_many([1, 2, 3]) == [5, 6, 7]
    assert source.calls == []


async def test_a_failed_batch_fails_its_waiters_and_is_read_again_later() -> None:
    source = _Source(fail=True)
    loader: Loader[int, int] = Loader(source)
    results = await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    source.fail = False
    assert await loader.load(1) == 10
    assert source.calls == [[1, 2], [1]]


async def test_fill_loads_what_a_page_lacks_in_one_call_per_loader() -> None:
    counts, flags = _Source(), _Source()
    count_loader: Loader[int, int] = Loader(counts)
    flag_loader: Loader[int, int] = Loader(flags)
    count_loader.prime_many({1: 1, 2: 2})  # what the page's plan found
    await fill((count_loader, [1, 2, 3, 4, 3]), (flag_loader, [1, 2]))
    assert counts.calls == [[3, 4]]
    assert flags.calls == [[1, 2]]
    assert count_loader.get_many([1, 2, 3, 4]) == [1, 2, 30, 40]
    await fill((count_loader, [1, 4]))  # all held: nothing read
    assert counts.calls == [[3, 4]]


async def test_keys_held_by_what_identifies_them() -> None:
    async def lengths(words: Sequence[str]) -> list[int]:
        return [len(word) for word in words]

    loader: Loader[str, int] = Loader(lengths, key_of=str.lower)
    assert await loader.load("Ana") == 3
    assert loader.get("ANA") == 3
    assert loader.known("ana")
