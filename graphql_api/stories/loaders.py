"""Per-operation loaders for stories and close-friends lists; they answer the visibility
policy's questions about stories (``StoryFacts``)."""

from __future__ import annotations

from collections.abc import Sequence

from db.stories.records import StoryRecord
from domain.stories import reads, stories
from domain.visibility import StoryFacts
from graphql_api.context import Loaders
from graphql_api.loader import Loader


class StoryLoaders(StoryFacts):
    def __init__(self, loaders: Loaders) -> None:
        self._state = loaders.state
        self._sessions = loaders.sessions
        self._viewer_id = loaders.viewer_id
        self.story: Loader[int, StoryRecord | None] = Loader(self._load_stories)
        # Keyed by author: whether that author lists the viewer as a close friend.
        self.viewer_in_close_friends: Loader[int, bool] = Loader(self._load_in_close_friends)
        # Keyed by story: whether the viewer has seen it; one read of the viewer's seen
        # set for every story on the page (the tray primes it with what it read).
        self.viewer_has_seen: Loader[int, bool] = Loader(self._load_seen)

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

    # The policy's facts (``StoryFacts``) ------------------------------------------------

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        return await self.story.load_many(ids)

    async def in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        return await self.viewer_in_close_friends.load_many(author_ids)
