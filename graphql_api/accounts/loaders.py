"""Per-request DataLoaders for users and the viewer's relationships."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db.accounts import repository as accounts_repo
from db.accounts.models import User
from db.session import ShardSessions
from graphql_api.accounts import service
from graphql_api.state import AppState


class AccountLoaders:
    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        self._block_set: asyncio.Task[set[int]] | None = None
        self.user: DataLoader[int, User | None] = DataLoader(load_fn=self._load_users)
        self.viewer_follows: DataLoader[int, bool] = DataLoader(load_fn=self._load_viewer_follows)
        self.viewer_requested: DataLoader[int, bool] = DataLoader(
            load_fn=self._load_viewer_requested
        )

    async def _load_users(self, ids: Sequence[int]) -> list[User | None]:
        return await self._state.user_cache.load(
            ids, sessions=self._sessions, fetch=accounts_repo.get_users
        )

    async def _load_viewer_follows(self, target_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(target_ids)
        return await service.following_flags(
            self._state, self._sessions, self._viewer_id, list(target_ids)
        )

    async def _load_viewer_requested(self, target_ids: Sequence[int]) -> list[bool]:
        viewer_id = self._viewer_id
        if viewer_id is None:
            return [False] * len(target_ids)

        async def query(session: AsyncSession, shard_ids: list[int]) -> list[int]:
            return list(await accounts_repo.requested_targets(session, viewer_id, shard_ids))

        requested = set(await self._sessions.scatter_ids(target_ids, query))
        return [target in requested for target in target_ids]

    async def viewer_block_set(self) -> set[int]:
        """Everyone the viewer blocked or was blocked by; loaded once per request."""
        if self._viewer_id is None:
            return set()
        if self._block_set is None:
            self._block_set = asyncio.ensure_future(
                service.block_set(self._state, self._sessions, self._viewer_id)
            )
        return await self._block_set

    async def visible_user(self, user_id: int) -> User | None:
        """The user, unless deleted or on either side of a block with the viewer."""
        user, blocked = await asyncio.gather(self.user.load(user_id), self.viewer_block_set())
        if user is None or user_id in blocked:
            return None
        return user

    async def visible_users(self, user_ids: Sequence[int]) -> list[User | None]:
        users, blocked = await asyncio.gather(
            self.user.load_many(user_ids), self.viewer_block_set()
        )
        return [user if user is not None and user.id not in blocked else None for user in users]
