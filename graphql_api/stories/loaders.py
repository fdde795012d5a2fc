"""Per-operation DataLoaders for stories and close-friends lists."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from db.session import ShardSessions
from db.stories.records import StoryRecord
from domain.state import AppState
from domain.stories import reads, stories


class StoryLoaders:
    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        self.story: DataLoader[int, StoryRecord | None] = DataLoader(load_fn=self._load_stories)
        # Keyed by author: whether that author lists the viewer as a close friend.
        self.viewer_in_close_friends: DataLoader[int, bool] = DataLoader(
            load_fn=self._load_in_close_friends
        )
        # Keyed by story: whether the viewer has seen it; one read of the viewer's seen
        # set for every story on the page.
        self.viewer_has_seen: DataLoader[int, bool] = DataLoader(load_fn=self._load_seen)

    async def _load_stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        return await reads.load_stories(self._state, self._sessions, ids)

    async def _load_seen(self, story_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(story_ids)
        seen = await stories.seen_story_ids(self._state, self._sessions, self._viewer_id)
        return [story_id in seen for story_id in story_ids]

    async def _load_in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(author_ids)
        return await reads.in_close_friends(
            self._state, self._sessions, self._viewer_id, author_ids
        )
