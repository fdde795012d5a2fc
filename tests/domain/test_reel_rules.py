"""Reel rules, called on the domain directly (domain/reels/): a post of one video is a reel;
views count people, not replays, and only of reels the viewer may see; the reels feed
ranks visible recent reels but the viewer's own, by engagement over age, followed
accounts first among equals.

The global reels index holds every other test's reels too: rankings are checked among
this test's reels only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.accounts.records import UserRecord as User
from db.posts.records import PostRecord as Post
from db.session import ShardSessions
from domain.accounts import blocks
from domain.errors import BadUserInput, NotFound
from domain.posts import likes, posts
from domain.reels import reels
from domain.state import AppState
from domain.visibility import direct
from tests.domain.support import FrozenClock, follow_approved, new_post, new_user, ready_media


async def new_reel(state: AppState, sessions: ShardSessions, author: User, *, seed: int) -> Post:
    clip = await ready_media(state, sessions, author, seed=seed, kind="video")
    return await posts.create_post(state, sessions, author.id, caption="reel", media_ids=[clip.id])


async def ranked(
    state: AppState, sessions: ShardSessions, viewer: User, among: list[Post]
) -> list[int]:
    """The viewer's reels feed, as far as it holds ``among``."""
    wanted = {reel.id for reel in among}
    everything = await reels.ranked_reel_ids(state, sessions, direct(state, sessions, viewer.id))
    return [post_id for post_id in everything if post_id in wanted]


async def test_a_post_of_one_video_is_a_reel(state: AppState, sessions: ShardSessions) -> None:
    author = await new_user(state, sessions, "director")
    reel = await new_reel(state, sessions, author, seed=1)
    photo = await ready_media(state, sessions, author, seed=2)
    clip = await ready_media(state, sessions, author, seed=3, kind="video")
    carousel = await posts.create_post(
        state, sessions, author.id, caption="both", media_ids=[clip.id, photo.id]
    )
    text = await new_post(state, sessions, author, "words")
    assert [reel.is_reel, carousel.is_reel, text.is_reel] == [True, False, False]
    # Only the reel became a candidate of every reels feed, at once.
    candidates = {post_id for post_id, _ in await reels.recent_reels(state, sessions)}
    assert reel.id in candidates
    assert not {carousel.id, text.id} & candidates


async def test_views_count_people_not_replays(state: AppState, sessions: ShardSessions) -> None:
    author = await new_user(state, sessions, "filmer")
    first, second = await new_user(state, sessions, "eye"), await new_user(state, sessions, "ear")
    reel = await new_reel(state, sessions, author, seed=4)
    assert await reels.record_view(state, sessions, first.id, reel.id) == 1
    assert await reels.record_view(state, sessions, first.id, reel.id) == 1
    assert await reels.record_view(state, sessions, second.id, reel.id) == 2
    assert await reels.view_counts(state, sessions, [reel.id]) == [2]


async def test_views_only_of_reels_the_viewer_may_see(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "closed", private=True)
    outsider = await new_user(state, sessions, "peeker")
    reel = await new_reel(state, sessions, author, seed=5)
    with pytest.raises(NotFound):
        await reels.record_view(state, sessions, outsider.id, reel.id)
    public = await new_user(state, sessions, "texter")
    text = await new_post(state, sessions, public, "not a reel")
    with pytest.raises(BadUserInput):
        await reels.record_view(state, sessions, outsider.id, text.id)
    await follow_approved(state, sessions, outsider, author)
    assert await reels.view_counts(state, sessions, [reel.id]) == [0], "refused views left none"
    assert await reels.record_view(state, sessions, outsider.id, reel.id) == 1


async def test_the_reels_feed_leaves_out_own_hidden_and_blocked_reels(
    state: AppState, sessions: ShardSessions
) -> None:
    viewer = await new_user(state, sessions, "scroller")
    followed = await new_user(state, sessions, "followed")
    other = await new_user(state, sessions, "other")
    private = await new_user(state, sessions, "private", private=True)
    blocked = await new_user(state, sessions, "blocked")
    await follow_approved(state, sessions, viewer, followed)
    made = {
        user.id: await new_reel(state, sessions, user, seed=10 + number)
        for number, user in enumerate((viewer, followed, other, private, blocked))
    }
    among = list(made.values())
    await blocks.block(state, sessions, viewer.id, blocked.id)
    # Followed or not, public reels; not one's own, a private account's, a blocked one's.
    assert set(await ranked(state, sessions, viewer, among)) == {
        made[followed.id].id,
        made[other.id].id,
    }
    # The block is between those two alone: someone else still gets the blocked reel.
    assert set(await ranked(state, sessions, other, among)) == {
        made[viewer.id].id,
        made[followed.id].id,
        made[blocked.id].id,
    }
    # A private account's reel reaches its followers.
    await follow_approved(state, sessions, viewer, private)
    assert made[private.id].id in await ranked(state, sessions, viewer, among)


async def test_the_reels_feed_ranks_engagement_and_follows(
    state: AppState, sessions: ShardSessions
) -> None:
    viewer = await new_user(state, sessions, "ranker")
    followed = await new_user(state, sessions, "friendly")
    stranger = await new_user(state, sessions, "unknown")
    fans = [await new_user(state, sessions, f"fan{n}") for n in range(3)]
    await follow_approved(state, sessions, viewer, followed)
    # Newest first: a stranger's reel, then a followed account's, then a liked one.
    liked = await new_reel(state, sessions, stranger, seed=20)
    friends = await new_reel(state, sessions, followed, seed=21)
    plain = await new_reel(state, sessions, stranger, seed=22)
    among = [liked, friends, plain]
    # Equal engagement and nearly equal age: the followed account's reel comes first.
    assert await ranked(state, sessions, viewer, among) == [friends.id, plain.id, liked.id]
    # Three likes outweigh the follow boost.
    for fan in fans:
        await likes.set_post_like(state, sessions, fan.id, liked.id, liked=True)
    assert await ranked(state, sessions, viewer, among) == [liked.id, friends.id, plain.id]


def test_engagement_decays_with_age_and_follows_boost_it() -> None:
    fresh = reels.engagement_score(likes=3, comments=0, views=0, age_hours=1, followed=False)
    old = reels.engagement_score(likes=30, comments=0, views=0, age_hours=72, followed=False)
    assert fresh > old
    plain = reels.engagement_score(likes=3, comments=1, views=10, age_hours=5, followed=False)
    boosted = reels.engagement_score(likes=3, comments=1, views=10, age_hours=5, followed=True)
    assert boosted == pytest.approx(plain * reels.FOLLOWED_BOOST)
    # A comment weighs two likes; a view a fifth of one.
    assert reels.engagement_score(
        likes=0, comments=1, views=0, age_hours=1, followed=False
    ) == pytest.approx(
        reels.engagement_score(likes=2, comments=0, views=0, age_hours=1, followed=False)
    )
    assert reels.engagement_score(
        likes=0, comments=0, views=5, age_hours=1, followed=False
    ) == pytest.approx(
        reels.engagement_score(likes=1, comments=0, views=0, age_hours=1, followed=False)
    )


async def test_reels_older_than_the_window_are_no_candidates(
    state: AppState, sessions: ShardSessions, clock: FrozenClock
) -> None:
    author = await new_user(state, sessions, "archivist")
    viewer = await new_user(state, sessions, "latecomer")
    reel = await new_reel(state, sessions, author, seed=30)
    assert await ranked(state, sessions, viewer, [reel]) == [reel.id]
    clock.now += reels.REEL_WINDOW + timedelta(days=1)
    assert reel.id not in {post_id for post_id, _ in await reels.recent_reels(state, sessions)}
    assert await ranked(state, sessions, viewer, [reel]) == []
