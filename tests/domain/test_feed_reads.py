"""The home feed at the domain level (domain/feed/reads.py): the precomputed feed and fan-out
on read give the same pages, and both keep to Visibility's rule for feed entries."""

from __future__ import annotations

import pytest

from db.accounts.records import UserRecord as User
from db.session import ShardSessions
from domain.accounts import blocks, graph
from domain.feed.reads import FeedRead, FeedSlice, home_feed, home_feed_from_sql
from domain.posts import posts
from domain.state import AppState
from domain.visibility import direct
from tests.domain.support import follow_approved, new_post, new_user

STRATEGIES = pytest.mark.parametrize(
    "read", [home_feed, home_feed_from_sql], ids=["precomputed", "fanout_on_read"]
)


async def whole_feed(
    state: AppState, sessions: ShardSessions, read: FeedRead, viewer: User, *, page: int
) -> list[int]:
    """Every post of the feed, page by page, checking each page's shape on the way."""
    seen: list[int] = []
    before: int | None = None
    for _ in range(20):
        sliced: FeedSlice = await read(
            state,
            sessions,
            visibility=direct(state, sessions, viewer.id),
            viewer_id=viewer.id,
            before_id=before,
            limit=page,
        )
        assert len(sliced.posts) <= page
        seen += [post.id for post in sliced.posts]
        if not sliced.has_next:
            return seen
        before = sliced.resume_after
    raise AssertionError("the feed did not end")


@STRATEGIES
async def test_feed_holds_own_and_followed_posts_newest_first(
    state: AppState, sessions: ShardSessions, read: FeedRead
) -> None:
    """Own posts and those of accounts followed (private ones included), newest first,
    across pages; not a stranger's, a deleted post, or a blocked or unfollowed account's."""
    viewer = await new_user(state, sessions, "reader")
    friend = await new_user(state, sessions, "friend")
    closed = await new_user(state, sessions, "closedfriend", private=True)
    stranger = await new_user(state, sessions, "stranger")
    foe = await new_user(state, sessions, "foe")
    late = await new_user(state, sessions, "late")
    for user in (friend, closed, foe, late):
        await follow_approved(state, sessions, viewer, user)

    made: dict[int, list[int]] = {}
    for user in (viewer, friend, closed, stranger, foe):
        made[user.id] = [(await new_post(state, sessions, user, f"p{n}")).id for n in range(3)]
    # A deleted post, and the post of an account unfollowed before it posted, stay out.
    await posts.delete_post(state, sessions, friend.id, made[friend.id].pop())
    await graph.unfollow(state, sessions, viewer.id, late.id)
    await new_post(state, sessions, late, "after the unfollow")

    def expected(*users: User) -> list[int]:
        return sorted((post for user in users for post in made[user.id]), reverse=True)

    assert await whole_feed(state, sessions, read, viewer, page=4) == expected(
        viewer, friend, closed, foe
    )

    # A block ends the follow: the foe's posts leave the feed.
    await blocks.block(state, sessions, viewer.id, foe.id)
    assert await whole_feed(state, sessions, read, viewer, page=4) == expected(
        viewer, friend, closed
    )
    # A new follow brings the followee's posts in at once.
    await follow_approved(state, sessions, viewer, stranger)
    assert await whole_feed(state, sessions, read, viewer, page=3) == expected(
        viewer, friend, closed, stranger
    )
