"""The home feed: fan-out on write, hybrid merge for large accounts, inactive users,
rebuilds, graph changes, and a warm page with no SQL."""

from __future__ import annotations

import time
from typing import Any

from db.feed.activity import ACTIVE_USERS_KEY
from db.feed.caches import FeedCaches
from db.posts.caches import PostCaches
from db.runtime import Runtime
from db.session import ShardSessions
from domain.feed.fanout import fan_out
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from workers.runner import drain_jobs

FEED = """
query($first: Int, $after: String) {
  homeFeed(first: $first, after: $after) {
    edges { node { id caption author { username } likeCount viewerHasLiked } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def feed_ids(gql: GraphQLClient, viewer: Account, *, first: int = 20) -> list[str]:
    result = await gql(FEED, {"first": first}, token=viewer.token)
    return [edge["node"]["id"] for edge in result.ok()["homeFeed"]["edges"]]


def raw_id(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def test_new_post_reaches_followers_through_the_worker(
    gql: GraphQLClient, state: AppState
) -> None:
    author, fan, stranger = (
        await sign_up(gql, "fo.author"),
        await sign_up(gql, "fo.fan"),
        await sign_up(gql, "fo.stranger"),
    )
    await follow(gql, fan, author)
    assert await feed_ids(gql, fan) == []  # builds the (empty) feed
    post_id = await create_post(gql, author, "fresh")
    # Before the worker runs, the precomputed feed does not have it yet.
    assert raw_id(post_id) not in await state.of(FeedCaches).feeds.all_entries(raw_id(fan.id))
    await drain_jobs(state)
    assert raw_id(post_id) in await state.of(FeedCaches).feeds.all_entries(raw_id(fan.id))
    assert await feed_ids(gql, fan) == [post_id]
    assert await feed_ids(gql, author) == [post_id], "authors see their own posts"
    assert await feed_ids(gql, stranger) == []


async def test_fan_out_job_is_idempotent(gql: GraphQLClient, state: AppState) -> None:
    author, fan = await sign_up(gql, "idem.author"), await sign_up(gql, "idem.fan")
    await follow(gql, fan, author)
    await feed_ids(gql, fan)
    post_id = raw_id(await create_post(gql, author, "once"))
    sessions = ShardSessions(state.runtime.databases)
    first = await fan_out(state, sessions, post_id)
    assert first.feeds_written == 2
    entries = await state.of(FeedCaches).feeds.all_entries(raw_id(fan.id))
    # A delivery may run twice (at least once, after all), from the start again.
    from sqlalchemy import update

    from db.posts.models import Post

    async with sessions.for_id(post_id) as session:
        await session.execute(update(Post).where(Post.id == post_id).values(fanout_cursor=0))
    await fan_out(state, sessions, post_id)
    assert await state.of(FeedCaches).feeds.all_entries(raw_id(fan.id)) == entries == [post_id]


async def test_inactive_followers_get_no_fan_out_but_a_rebuild(
    gql: GraphQLClient, state: AppState
) -> None:
    author, sleeper = await sign_up(gql, "ia.author"), await sign_up(gql, "ia.sleeper")
    await follow(gql, sleeper, author)
    await feed_ids(gql, sleeper)
    redis = state.runtime.redis
    away = time.time() - 90 * 86400
    await redis.zadd(ACTIVE_USERS_KEY, {str(raw_id(sleeper.id)): away})
    await redis.delete(f"active-touch:{raw_id(sleeper.id)}")
    post_id = await create_post(gql, author, "while you were away")
    await drain_jobs(state)
    assert raw_id(post_id) not in await state.of(FeedCaches).feeds.all_entries(raw_id(sleeper.id))
    # Coming back marks the feed stale; the first read rebuilds it and is already right.
    assert await feed_ids(gql, sleeper) == [post_id]


async def test_missing_feed_is_rebuilt_on_first_read(
    gql: GraphQLClient, state: AppState, runtime: Runtime
) -> None:
    viewer = await sign_up(gql, "rb.viewer")
    authors = [await sign_up(gql, f"rb.author{n}") for n in range(4)]
    for author in authors:
        await follow(gql, viewer, author)
    posts = [await create_post(gql, authors[n % 4], f"post {n}") for n in range(10)]
    await drain_jobs(state)
    before = await feed_ids(gql, viewer)
    assert before == list(reversed(posts))
    await runtime.redis.flushdb()
    rebuilt = await gql(FEED, {"first": 20}, token=viewer.token)
    assert [edge["node"]["id"] for edge in rebuilt.ok()["homeFeed"]["edges"]] == before
    assert rebuilt.work.sql_statements > 0, "the rebuild really went to PostgreSQL"
    assert await state.of(FeedCaches).feeds.is_ready(raw_id(viewer.id))
    assert await state.of(FeedCaches).feeds.all_entries(raw_id(viewer.id)) == [
        raw_id(p) for p in before
    ]


async def test_feed_pages_with_cursors(gql: GraphQLClient, state: AppState) -> None:
    viewer, author = await sign_up(gql, "pg.viewer"), await sign_up(gql, "pg.author")
    await follow(gql, viewer, author)
    await feed_ids(gql, viewer)
    posts = [await create_post(gql, author, f"p{n}") for n in range(7)]
    await drain_jobs(state)
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(FEED, {"first": 3, "after": after}, token=viewer.token)).ok()["homeFeed"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(posts))


async def test_feed_is_capped_and_trimmed(tuned_gql: Any) -> None:
    gql, state = await tuned_gql(feed_capacity=10)
    viewer, author = await sign_up(gql, "cap.viewer"), await sign_up(gql, "cap.author")
    await follow(gql, viewer, author)
    await feed_ids(gql, viewer)
    posts = [raw_id(await create_post(gql, author, f"p{n}")) for n in range(14)]
    await drain_jobs(state)
    assert (
        await state.of(FeedCaches).feeds.all_entries(raw_id(viewer.id))
        == list(reversed(posts))[:10]
    )


async def test_follow_backfills_and_unfollow_removes(gql: GraphQLClient, state: AppState) -> None:
    viewer, author = await sign_up(gql, "bf.viewer"), await sign_up(gql, "bf.author")
    old = [await create_post(gql, author, f"old {n}") for n in range(3)]
    await drain_jobs(state)
    assert await feed_ids(gql, viewer) == []
    await follow(gql, viewer, author)
    assert await feed_ids(gql, viewer) == list(reversed(old))
    await gql(
        "mutation($id: ID!) { unfollow(userId: $id) { status } }",
        {"id": author.id},
        token=viewer.token,
    )
    assert await feed_ids(gql, viewer) == []
    assert await state.of(FeedCaches).feeds.all_entries(raw_id(viewer.id)) == []


async def test_deleted_and_blocked_posts_never_show(gql: GraphQLClient, state: AppState) -> None:
    viewer = await sign_up(gql, "hide.viewer")
    keeper, deleter, blocker = (
        await sign_up(gql, "hide.keeper"),
        await sign_up(gql, "hide.deleter"),
        await sign_up(gql, "hide.blocker"),
    )
    for author in (keeper, deleter, blocker):
        await follow(gql, viewer, author)
    await feed_ids(gql, viewer)
    kept = await create_post(gql, keeper, "kept")
    doomed = await create_post(gql, deleter, "doomed")
    await create_post(gql, blocker, "blocked soon")
    await drain_jobs(state)
    assert len(await feed_ids(gql, viewer)) == 3
    await gql(
        "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
        {"id": doomed},
        token=deleter.token,
    )
    await gql(
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": viewer.id},
        token=blocker.token,
    )
    assert await feed_ids(gql, viewer) == [kept]


async def test_large_account_merge_matches_full_fan_out(tuned_gql: Any) -> None:
    """The same network read with everyone fanned out and with a celebrity merged at read
    time gives the same page, in the same order."""
    results = []
    for threshold, prefix in ((1_000_000, "full"), (2, "hyb")):
        gql, state = await tuned_gql(fanout_follower_threshold=threshold)
        viewer = await sign_up(gql, f"{prefix}.viewer")
        star = await sign_up(gql, f"{prefix}.star")
        friend = await sign_up(gql, f"{prefix}.friend")
        for fan in [viewer] + [await sign_up(gql, f"{prefix}.fan{n}") for n in range(3)]:
            await follow(gql, fan, star)
        await follow(gql, viewer, friend)
        await feed_ids(gql, viewer)
        captions = []
        for n in range(12):
            author = star if n % 3 else friend
            await create_post(gql, author, f"{author.username} {n}")
            captions.append(f"{author.username} {n}")
        await drain_jobs(state)
        star_id = raw_id(star.id)
        in_feed = await state.of(FeedCaches).feeds.all_entries(raw_id(viewer.id))
        star_posts = (await state.of(PostCaches).author_posts.get_many([star_id]))[star_id]
        if threshold == 2:
            assert not set(star_posts) & set(in_feed), "the celebrity was not fanned out"
        else:
            assert set(star_posts) <= set(in_feed)
        page = (await gql(FEED, {"first": 8}, token=viewer.token)).ok()["homeFeed"]["edges"]
        results.append([e["node"]["caption"].split(" ", 1)[1] for e in page])
        results.append([e["node"]["author"]["username"].split(".", 1)[1] for e in page])
    assert results[0] == results[2] == [str(n) for n in reversed(range(4, 12))]
    assert results[1] == results[3]


async def test_warm_feed_page_runs_no_sql(gql: GraphQLClient, state: AppState) -> None:
    viewer = await sign_up(gql, "warm.viewer")
    authors = [await sign_up(gql, f"warm.author{n}") for n in range(5)]
    for author in authors:
        await follow(gql, viewer, author)
    await feed_ids(gql, viewer)
    for n in range(25):
        await create_post(gql, authors[n % 5], f"w{n}")
    await drain_jobs(state)
    first = await gql(FEED, {"first": 20}, token=viewer.token)
    first.ok()
    warm = await gql(FEED, {"first": 20}, token=viewer.token)
    assert warm.ok() == first.ok()
    assert len(warm.ok()["homeFeed"]["edges"]) == 20
    assert warm.work.sql_statements == 0, warm.work.statements


async def test_fan_out_on_read_baseline_gives_the_same_page(tuned_gql: Any) -> None:
    gql, state = await tuned_gql()
    viewer = await sign_up(gql, "base.viewer")
    authors = [await sign_up(gql, f"base.author{n}") for n in range(3)]
    for author in authors:
        await follow(gql, viewer, author)
    for n in range(9):
        await create_post(gql, authors[n % 3], f"b{n}")
    await drain_jobs(state)
    precomputed = await feed_ids(gql, viewer, first=5)
    baseline_gql, _ = await tuned_gql(feed_read_strategy="fanout_on_read")
    assert await feed_ids(baseline_gql, viewer, first=5) == precomputed
