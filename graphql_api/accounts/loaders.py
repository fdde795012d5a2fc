"""Per-operation loaders for users and the viewer's relationships; they answer the
visibility policy's questions about accounts (``UserFacts``)."""

from __future__ import annotations

from collections.abc import Sequence

from db.accounts.records import UserRecord
from domain.accounts import relations
from domain.visibility import UserFacts
from graphql_api.context import Loaders
from graphql_api.loader import Loader


class AccountLoaders(UserFacts):
    def __init__(self, loaders: Loaders) -> None:
        self._loaders = loaders
        self._state = loaders.state
        self._sessions = loaders.sessions
        self._viewer_id = loaders.viewer_id
        # Rows as stored, whoever may see them: for the policy, and for what the policy
        # has already allowed (a visible post's author's media).
        self.user: Loader[int, UserRecord | None] = Loader(self._load_users)
        # Rows the viewer may see (None otherwise), as the policy says.
        self.visible_user: Loader[int, UserRecord | None] = Loader(self._load_visible_users)
        self.viewer_follows: Loader[int, bool] = Loader(self._load_viewer_follows)
        self.viewer_requested: Loader[int, bool] = Loader(self._load_viewer_requested)
        # Keyed by the viewer: everyone they blocked or were blocked by, read once.
        self.block_set: Loader[int, set[int]] = Loader(self._load_block_sets)

    async def _load_users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await relations.load_users(self._state, self._sessions, ids)

    async def _load_visible_users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await self._loaders.visibility.users(ids)

    async def _load_viewer_follows(self, target_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(target_ids)
        return await relations.following_flags(
            self._state, self._sessions, self._viewer_id, list(target_ids)
        )

    async def _load_viewer_requested(self, target_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(target_ids)
        requested = await relations.requested_targets(self._sessions, self._viewer_id, target_ids)
        return [target in requested for target in target_ids]

    async def _load_block_sets(self, viewer_ids: Sequence[int]) -> list[set[int]]:
        return [
            await relations.block_set(self._state, self._sessions, viewer_id)
            for viewer_id in viewer_ids
        ]

    def known_block_set(self) -> set[int] | None:
        """The viewer's block set if this operation has read it (None: not yet)."""
        if self._viewer_id is None:
            return set()
        return self.block_set.peek(self._viewer_id)

    # The policy's facts (``UserFacts``) -------------------------------------------------

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await self.user.load_many(ids)

    async def follows(self, ids: Sequence[int]) -> list[bool]:
        if not ids:
            return []
        return await self.viewer_follows.load_many(ids)

    async def blocked(self) -> set[int]:
        if self._viewer_id is None:
            return set()
        return await self.block_set.load(self._viewer_id)
