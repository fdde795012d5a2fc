"""Per-operation DataLoaders for users and the viewer's relationships."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from db.accounts.records import UserRecord
from db.session import ShardSessions
from domain.accounts import relations
from domain.state import AppState


class AccountLoaders:
    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        self._block_set: asyncio.Future[set[int]] | None = None
        self.user: DataLoader[int, UserRecord | None] = DataLoader(load_fn=self._load_users)
        self.viewer_follows: DataLoader[int, bool] = DataLoader(load_fn=self._load_viewer_follows)
        self.viewer_requested: DataLoader[int, bool] = DataLoader(
            load_fn=self._load_viewer_requested
        )

    async def _load_users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await relations.load_users(self._state, self._sessions, ids)

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

    def know_block_set(self, blocked: set[int]) -> None:
        """The viewer's block set, read ahead with a page: no second read."""
        if self._block_set is None:
            self._block_set = asyncio.get_running_loop().create_future()
            self._block_set.set_result(blocked)

    async def viewer_block_set(self) -> set[int]:
        """Everyone the viewer blocked or was blocked by; loaded once per operation."""
        if self._viewer_id is None:
            return set()
        if self._block_set is None:
            self._block_set = asyncio.ensure_future(
                relations.block_set(self._state, self._sessions, self._viewer_id)
            )
        return await self._block_set
