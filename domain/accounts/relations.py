"""Cached reads of accounts and relations that every rule builds on: users by id, user
ids by username, whom a user follows, and whom they blocked or were blocked by."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches
from db.accounts.records import UserRecord, user_record
from db.session import ShardSessions
from domain.state import AppState


async def load_users(
    state: AppState, sessions: ShardSessions, user_ids: Sequence[int]
) -> list[UserRecord | None]:
    """Live users by id, from the cache, then one statement per shard for the misses."""
    return await state.of(AccountCaches).user_cache.load(
        user_ids, sessions=sessions, fetch=accounts_repo.get_users
    )


async def load_user(state: AppState, sessions: ShardSessions, user_id: int) -> UserRecord | None:
    (row,) = await load_users(state, sessions, [user_id])
    return row


async def stored_user(session: AsyncSession, user_id: int) -> UserRecord | None:
    """The user's row as committed, not as cached: for jobs that decide on its counts.
    ``session`` is the caller's, on the user's shard."""
    user = await accounts_repo.get_user(session, user_id)
    return user_record(user) if user is not None else None


async def refresh_users(state: AppState, sessions: ShardSessions, *user_ids: int) -> None:
    """Write these users' committed rows (new counts) through to the cache."""
    for user_id in user_ids:
        async with sessions.for_id(user_id) as session:
            user = await accounts_repo.get_user(session, user_id)
        await state.of(AccountCaches).user_cache.store(user_id, user)


async def user_id_for_username(
    state: AppState, sessions: ShardSessions, username: str
) -> int | None:
    """Usernames never change owner, so the name → id mapping caches safely; an unknown
    name is remembered briefly, and sign-up overwrites that answer when it claims it."""
    username_lower = username.lower()
    epoch = state.of(AccountCaches).usernames.epoch()
    cached = await state.of(AccountCaches).usernames.get(username_lower)
    if cached is not False:
        return cached if isinstance(cached, int) else None
    async with sessions.shard(sessions.shard_map.shard_for_username(username_lower)) as session:
        user = await accounts_repo.get_user_by_username(session, username_lower)
    user_id = user.id if user is not None else None
    await state.of(AccountCaches).usernames.fill(username_lower, user_id, epoch=epoch)
    return user_id


async def user_ids_for_usernames(
    state: AppState, sessions: ShardSessions, usernames: Sequence[str]
) -> list[int]:
    """User ids for usernames that exist, in order; unknown names drop out."""
    ids = await asyncio.gather(*(user_id_for_username(state, sessions, name) for name in usernames))
    return [user_id for user_id in ids if user_id is not None]


async def block_set(state: AppState, sessions: ShardSessions, user_id: int) -> set[int]:
    """Everyone ``user_id`` blocked or was blocked by."""

    async def load() -> set[int]:
        async with sessions.for_id(user_id) as session:
            return await accounts_repo.block_relations(session, user_id)

    return await state.of(AccountCaches).block_sets.members(user_id, load=load)


async def stored_followee_ids(sessions: ShardSessions, user_id: int) -> list[int]:
    """Everyone ``user_id`` follows, read from their shard, not the cache."""
    async with sessions.for_id(user_id) as session:
        return await accounts_repo.all_followee_ids(session, user_id)


def _followee_loader(sessions: ShardSessions, user_id: int) -> Callable[[], Awaitable[list[int]]]:
    async def load() -> list[int]:
        return await stored_followee_ids(sessions, user_id)

    return load


async def following_flags(
    state: AppState, sessions: ShardSessions, user_id: int, targets: list[int]
) -> list[bool]:
    """Whether ``user_id`` follows each of ``targets``."""
    loader = _followee_loader(sessions, user_id)
    return await state.of(AccountCaches).following_sets.contains(user_id, targets, load=loader)


async def followee_ids(state: AppState, sessions: ShardSessions, user_id: int) -> set[int]:
    loader = _followee_loader(sessions, user_id)
    return await state.of(AccountCaches).following_sets.members(user_id, load=loader)


async def follower_ids_page(
    sessions: ShardSessions, user_id: int, *, after_follower_id: int, limit: int
) -> list[int]:
    """``user_id``'s followers after ``after_follower_id`` in id order, ``limit`` of them:
    batches that resume where they stopped."""
    async with sessions.for_id(user_id) as session:
        return await accounts_repo.follower_ids_page(
            session, user_id, after_follower_id=after_follower_id, limit=limit
        )


async def requested_targets(
    sessions: ShardSessions, requester_id: int, target_ids: Sequence[int]
) -> set[int]:
    """Which of ``target_ids`` have a pending follow request from ``requester_id``."""

    async def query(session: AsyncSession, shard_ids: list[int]) -> list[int]:
        return list(await accounts_repo.requested_targets(session, requester_id, shard_ids))

    return set(await sessions.scatter_ids(target_ids, query))
