"""Story rules, called on the domain directly (domain/stories/): a story shows for exactly 24
hours by ``state.clock`` and is purged later with its media; close-friends stories reach
only the list; seen marks order the tray and count each viewer once; only the author
deletes a story or learns who saw it; a story needs the author's own unpublished media."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.accounts.records import UserRecord as User
from db.media.records import MediaRecord
from db.session import ShardSessions
from db.stories.records import StoryAudience, StoryRecord
from domain.accounts import blocks
from domain.errors import BadUserInput, Forbidden, MediaNotReady, NotFound
from domain.media.uploads import load_media
from domain.state import AppState
from domain.stories import stories
from domain.stories.reads import load_stories
from domain.stories.tray import TrayEntry, tray
from domain.visibility import direct
from tests.domain.support import FrozenClock, follow_approved, new_user, ready_media


async def new_story(
    state: AppState,
    sessions: ShardSessions,
    author: User,
    *,
    seed: int,
    audience: StoryAudience = "everyone",
) -> StoryRecord:
    media = await ready_media(state, sessions, author, seed=seed)
    return await stories.create_story(
        state, sessions, author.id, media_id=media.id, audience=audience
    )


async def sees(state: AppState, sessions: ShardSessions, viewer: User, story: StoryRecord) -> bool:
    (row,) = await direct(state, sessions, viewer.id).stories([story.id])
    return row is not None


async def tray_of(state: AppState, sessions: ShardSessions, viewer: User) -> list[TrayEntry]:
    return await tray(state, sessions, direct(state, sessions, viewer.id), viewer.id)


async def tray_authors(state: AppState, sessions: ShardSessions, viewer: User) -> list[int]:
    return [entry.author_id for entry in await tray_of(state, sessions, viewer)]


async def test_a_story_shows_for_exactly_24_hours_and_is_purged_later_with_its_media(
    state: AppState, sessions: ShardSessions, clock: FrozenClock
) -> None:
    author = await new_user(state, sessions, "brief")
    fan = await new_user(state, sessions, "watcher")
    await follow_approved(state, sessions, fan, author)
    posted = clock.now
    story = await new_story(state, sessions, author, seed=1)
    assert story.expires_at == posted + timedelta(hours=24)

    clock.now = posted + timedelta(hours=24) - timedelta(milliseconds=5)
    assert await sees(state, sessions, fan, story)
    assert await tray_authors(state, sessions, fan) == [author.id]

    clock.now = posted + timedelta(hours=24, milliseconds=5)
    assert not await sees(state, sessions, fan, story)
    assert not await sees(state, sessions, author, story), "gone for its author too"
    assert await tray_authors(state, sessions, fan) == []
    assert await stories.live_entries(state, sessions, [author.id]) == {author.id: []}
    with pytest.raises(NotFound):
        await stories.mark_seen(state, sessions, fan.id, story.id)

    # Kept a while after it vanished: its author may still ask who saw it.
    await stories.purge_expired(state)
    assert await load_stories(state, sessions, [story.id]) != [None]
    await stories.require_own_story(state, sessions, author.id, story.id)

    # A day after it vanished, the purge deletes it, and its media goes with it.
    clock.now = posted + timedelta(hours=49)
    assert await stories.purge_expired(state) >= 1
    assert await load_stories(state, sessions, [story.id]) == [None]
    assert await load_media(state, sessions, [story.media_id]) == [None]


async def test_close_friends_stories_reach_only_the_list(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "inner")
    friend = await new_user(state, sessions, "friend")
    follower = await new_user(state, sessions, "outer")
    for viewer in (friend, follower):
        await follow_approved(state, sessions, viewer, author)
    listed = await stories.change_close_friends(
        state, sessions, author.id, add=[friend.id, author.id], remove=[]
    )
    assert listed == {friend.id}, "the author is never on their own list"
    everyone = await new_story(state, sessions, author, seed=2)
    inner = await new_story(state, sessions, author, seed=3, audience="close_friends")

    assert await sees(state, sessions, friend, inner)
    assert await sees(state, sessions, author, inner)
    assert not await sees(state, sessions, follower, inner)
    assert await sees(state, sessions, follower, everyone)
    # The tray holds the same: the follower's entry plays the public story alone.
    (friend_entry,) = await tray_of(state, sessions, friend)
    (follower_entry,) = await tray_of(state, sessions, follower)
    assert friend_entry.story_ids == [everyone.id, inner.id]
    assert follower_entry.story_ids == [everyone.id]

    # Taken off the list, the friend no longer sees it, at once.
    await stories.change_close_friends(state, sessions, author.id, add=[], remove=[friend.id])
    assert not await sees(state, sessions, friend, inner)
    (friend_entry,) = await tray_of(state, sessions, friend)
    assert friend_entry.story_ids == [everyone.id]


async def test_close_friends_list_takes_only_visible_accounts_and_bounded_changes(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "lister")
    friend = await new_user(state, sessions, "pal")
    blocker = await new_user(state, sessions, "blocker")
    await blocks.block(state, sessions, blocker.id, author.id)
    listed = await stories.change_close_friends(
        state, sessions, author.id, add=[friend.id, blocker.id], remove=[]
    )
    assert listed == {friend.id}
    with pytest.raises(BadUserInput):
        await stories.change_close_friends(
            state,
            sessions,
            author.id,
            add=[friend.id] * 60,
            remove=[blocker.id] * (stories.MAX_CLOSE_FRIENDS_CHANGE - 59),
        )
    assert await stories.change_close_friends(state, sessions, author.id, add=[], remove=[]) == {
        friend.id
    }


async def test_seen_marks_order_the_tray_and_count_each_viewer_once(
    state: AppState, sessions: ShardSessions
) -> None:
    viewer = await new_user(state, sessions, "seer")
    ana = await new_user(state, sessions, "ana")
    bo = await new_user(state, sessions, "bo")
    stranger = await new_user(state, sessions, "stranger")
    for author in (ana, bo):
        await follow_approved(state, sessions, viewer, author)
    ana_story = await new_story(state, sessions, ana, seed=4)
    bo_story = await new_story(state, sessions, bo, seed=5)
    own = await new_story(state, sessions, viewer, seed=6)
    await new_story(state, sessions, stranger, seed=7)

    entries = await tray_of(state, sessions, viewer)
    # Own stories first; a stranger's are not in the tray at all.
    assert entries[0].author_id == viewer.id
    assert {entry.author_id for entry in entries[1:]} == {ana.id, bo.id}
    assert all(entry.unseen == 1 for entry in entries)
    # Bo posted last, so came first among the unseen; seeing it sends Bo after Ana.
    assert [entry.author_id for entry in entries[1:]] == [bo.id, ana.id]

    await stories.mark_seen(state, sessions, viewer.id, bo_story.id)
    await stories.mark_seen(state, sessions, viewer.id, bo_story.id)
    entries = await tray_of(state, sessions, viewer)
    assert [entry.author_id for entry in entries] == [viewer.id, ana.id, bo.id]
    assert entries[2].unseen == 0
    assert entries[2].seen == frozenset({bo_story.id})
    assert await stories.seen_story_ids(state, sessions, viewer.id) == {bo_story.id}

    # Seen twice, counted once; the author's own look counts nobody.
    await stories.mark_seen(state, sessions, viewer.id, own.id)
    assert await stories.view_counts(sessions, [bo_story.id, ana_story.id, own.id]) == [1, 0, 0]
    viewers = await stories.story_viewers(state, sessions, bo.id, bo_story.id, after=None, limit=10)
    assert [viewer_id for _, viewer_id in viewers] == [viewer.id]


async def test_only_the_author_learns_who_saw_a_story_or_deletes_it(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "owner")
    fan = await new_user(state, sessions, "fan")
    await follow_approved(state, sessions, fan, author)
    story = await new_story(state, sessions, author, seed=8)
    await stories.mark_seen(state, sessions, fan.id, story.id)

    with pytest.raises(Forbidden):
        await stories.story_viewers(state, sessions, fan.id, story.id, after=None, limit=10)
    with pytest.raises(Forbidden):
        await stories.delete_story(state, sessions, fan.id, story.id)
    assert await sees(state, sessions, fan, story)

    await stories.delete_story(state, sessions, author.id, story.id)
    assert not await sees(state, sessions, author, story)
    assert await load_stories(state, sessions, [story.id]) == [None]
    assert await stories.live_entries(state, sessions, [author.id]) == {author.id: []}
    # Its media is released as the delete returns.
    assert await load_media(state, sessions, [story.media_id]) == [None]


async def test_private_and_blocking_authors_stories_stay_hidden(
    state: AppState, sessions: ShardSessions
) -> None:
    private = await new_user(state, sessions, "hidden", private=True)
    outsider = await new_user(state, sessions, "outsider")
    story = await new_story(state, sessions, private, seed=9)
    assert not await sees(state, sessions, outsider, story)
    with pytest.raises(NotFound):
        await stories.mark_seen(state, sessions, outsider.id, story.id)
    await follow_approved(state, sessions, outsider, private)
    assert await sees(state, sessions, outsider, story)
    assert await tray_authors(state, sessions, outsider) == [private.id]

    await blocks.block(state, sessions, private.id, outsider.id)
    assert not await sees(state, sessions, outsider, story)
    assert await tray_authors(state, sessions, outsider) == []


async def test_a_story_needs_the_authors_own_unpublished_media(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "poster")
    other = await new_user(state, sessions, "lender")
    theirs: MediaRecord = await ready_media(state, sessions, other, seed=10)
    with pytest.raises(MediaNotReady):
        await stories.create_story(
            state, sessions, author.id, media_id=theirs.id, audience="everyone"
        )
    used = await new_story(state, sessions, author, seed=11)
    with pytest.raises(MediaNotReady):
        await stories.create_story(
            state, sessions, author.id, media_id=used.media_id, audience="everyone"
        )
    # A refused story leaves nothing behind: one story live, the first.
    entries = await stories.live_entries(state, sessions, [author.id])
    assert [entry.story_id for entry in entries[author.id]] == [used.id]
