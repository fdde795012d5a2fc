"""Story reads the visibility policy needs: rows by id and close-friends lists. Kept
apart from the rules in ``stories.py``, which use the policy themselves."""

from __future__ import annotations

from collections.abc import Sequence

from db.session import ShardSessions
from db.stories import repository as stories_repo
from db.stories.caches import StoryCaches
from db.stories.records import StoryRecord
from domain.state import AppState


async def load_stories(
    state: AppState, sessions: ShardSessions, story_ids: Sequence[int]
) -> list[StoryRecord | None]:
    """Story rows by id, expired or not, whoever may see them: callers go through
    Visibility, which also hides expired stories."""
    return await state.of(StoryCaches).story_cache.load(
        story_ids, sessions=sessions, fetch=stories_repo.get_stories
    )


async def close_friend_ids(state: AppState, sessions: ShardSessions, user_id: int) -> set[int]:
    async def load() -> list[int]:
        async with sessions.for_id(user_id) as session:
            return await stories_repo.close_friends_of(session, user_id)

    return await state.of(StoryCaches).close_friends.members(user_id, load=load)


async def in_close_friends(
    state: AppState, sessions: ShardSessions, viewer_id: int, author_ids: Sequence[int]
) -> list[bool]:
    """Whether each author counts the viewer among their close friends."""
    flags = []
    for author_id in author_ids:
        flags.append(viewer_id in await close_friend_ids(state, sessions, author_id))
    return flags
