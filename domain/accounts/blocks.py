"""Blocks: each side disappears from the other's view, and every follow between them ends."""

from __future__ import annotations

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches
from db.session import ShardSessions
from domain.accounts.graph import disconnect
from domain.accounts.relations import load_user
from domain.errors import BadUserInput, NotFound
from domain.state import AppState


async def block(state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int) -> None:
    if viewer_id == target_id:
        raise BadUserInput("You cannot block yourself", field="userId")
    if await load_user(state, sessions, target_id) is None:
        raise NotFound("No such user")
    async with sessions.for_id(viewer_id) as session:
        await accounts_repo.add_block(session, blocker_id=viewer_id, blocked_id=target_id)
    async with sessions.for_id(target_id) as session:
        await accounts_repo.add_blocked_by(session, blocked_id=target_id, blocker_id=viewer_id)
    await state.of(AccountCaches).block_sets.changed(viewer_id, target_id)
    await disconnect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    await disconnect(state, sessions, follower_id=target_id, followee_id=viewer_id)


async def unblock(state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int) -> None:
    async with sessions.for_id(viewer_id) as session:
        await accounts_repo.remove_block(session, blocker_id=viewer_id, blocked_id=target_id)
    async with sessions.for_id(target_id) as session:
        await accounts_repo.remove_blocked_by(session, blocked_id=target_id, blocker_id=viewer_id)
    await state.of(AccountCaches).block_sets.changed(viewer_id, target_id)
