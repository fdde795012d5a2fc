"""The follow graph: follows, follow requests, and the pages of followers and following.

A follow touches two shards: the follower's ``following`` row decides what the follower
sees, the followee's ``followers`` row who receives their posts. There is no
distributed transaction: the follower's side commits first, with the event, and every
step is idempotent, so repeating a follow (or an unfollow) completes one that died
half-way. Caches are updated only after commits; feeds react to the events.
"""

from __future__ import annotations

import enum

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches
from db.accounts.records import UserRecord
from db.session import ShardSessions
from domain import events
from domain.accounts.events import (
    FOLLOW_REQUESTED,
    FOLLOWED,
    UNFOLLOWED,
    FollowChanged,
    FollowRequested,
)
from domain.accounts.relations import following_flags, refresh_users
from domain.errors import BadUserInput, NotFound
from domain.state import AppState
from domain.visibility import Visibility, direct


class FollowStatus(enum.Enum):
    SELF = "SELF"
    NONE = "NONE"
    REQUESTED = "REQUESTED"
    FOLLOWING = "FOLLOWING"


async def connect(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    # The follower's side first: it decides what the follower sees, and a retried follow
    # completes the followee's side.
    async with sessions.for_id(follower_id) as session:
        await accounts_repo.add_following(session, follower_id=follower_id, followee_id=followee_id)
        owed = await events.emit(
            session, FOLLOWED, FollowChanged(follower_id=follower_id, followee_id=followee_id)
        )
    async with sessions.for_id(followee_id) as session:
        await accounts_repo.add_follower(session, followee_id=followee_id, follower_id=follower_id)
        await accounts_repo.remove_follow_request(
            session, target_id=followee_id, requester_id=follower_id
        )
    await state.of(AccountCaches).following_sets.changed(follower_id)
    await refresh_users(state, sessions, follower_id, followee_id)
    await events.relay(state, sessions, owed)


async def disconnect(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    async with sessions.for_id(follower_id) as session:
        await accounts_repo.remove_following(
            session, follower_id=follower_id, followee_id=followee_id
        )
        owed = await events.emit(
            session, UNFOLLOWED, FollowChanged(follower_id=follower_id, followee_id=followee_id)
        )
    async with sessions.for_id(followee_id) as session:
        await accounts_repo.remove_follower(
            session, followee_id=followee_id, follower_id=follower_id
        )
        await accounts_repo.remove_follow_request(
            session, target_id=followee_id, requester_id=follower_id
        )
    await state.of(AccountCaches).following_sets.changed(follower_id)
    await refresh_users(state, sessions, follower_id, followee_id)
    await events.relay(state, sessions, owed)


async def follow_status(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        return FollowStatus.SELF
    (follows,) = await following_flags(state, sessions, viewer_id, [target_id])
    if follows:
        return FollowStatus.FOLLOWING
    async with sessions.for_id(target_id) as session:
        requested = await accounts_repo.has_pending_request(
            session, target_id=target_id, requester_id=viewer_id
        )
    return FollowStatus.REQUESTED if requested else FollowStatus.NONE


async def follow(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        raise BadUserInput("You cannot follow yourself", field="userId")
    target = await direct(state, sessions, viewer_id).require_user(target_id)
    current = await follow_status(state, sessions, viewer_id, target_id)
    if current is FollowStatus.FOLLOWING:
        # Idempotent repair: a follow that crashed between its two shards is completed.
        await connect(state, sessions, follower_id=viewer_id, followee_id=target_id)
        return current
    if current is FollowStatus.REQUESTED and target.is_private:
        return current
    if target.is_private:
        async with sessions.for_id(target_id) as session:
            added = await accounts_repo.add_follow_request(
                session, target_id=target_id, requester_id=viewer_id
            )
            owed = (
                await events.emit(
                    session,
                    FOLLOW_REQUESTED,
                    FollowRequested(requester_id=viewer_id, target_id=target_id),
                )
                if added
                else []
            )
        await events.relay(state, sessions, owed)
        return FollowStatus.REQUESTED
    await connect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    return FollowStatus.FOLLOWING


async def unfollow(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        raise BadUserInput("You cannot unfollow yourself", field="userId")
    await disconnect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    return FollowStatus.NONE


async def answer_follow_request(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    requester_id: int,
    *,
    approve: bool,
) -> None:
    async with sessions.for_id(viewer_id) as session:
        pending = await accounts_repo.has_pending_request(
            session, target_id=viewer_id, requester_id=requester_id
        )
    if not pending:
        raise NotFound("No pending follow request from that user")
    if approve:
        await connect(state, sessions, follower_id=requester_id, followee_id=viewer_id)
    else:
        async with sessions.for_id(viewer_id) as session:
            await accounts_repo.remove_follow_request(
                session, target_id=viewer_id, requester_id=requester_id
            )


async def remove_follower(
    state: AppState, sessions: ShardSessions, viewer_id: int, follower_id: int
) -> None:
    await disconnect(state, sessions, follower_id=follower_id, followee_id=viewer_id)


# Pages ---------------------------------------------------------------------------------
# Each returns (cursor position, user id) rows, ``limit`` at most; the caller passes the
# ids through Visibility.


class Side(enum.Enum):
    FOLLOWERS = "followers"
    FOLLOWING = "following"


async def connections_page(
    sessions: ShardSessions,
    visibility: Visibility,
    owner: UserRecord,
    *,
    side: Side,
    before_edge_id: int | None,
    limit: int,
) -> list[tuple[int, int]]:
    """Who follows ``owner``, or whom they follow, most recent first."""
    await visibility.require_content_access(owner)
    read = accounts_repo.followers_page if side is Side.FOLLOWERS else accounts_repo.following_page
    async with sessions.for_id(owner.id) as session:
        return await read(session, owner.id, before_edge_id=before_edge_id, limit=limit)


async def follow_requests_page(
    sessions: ShardSessions, viewer_id: int, *, before_request_id: int | None, limit: int
) -> list[tuple[int, int]]:
    async with sessions.for_id(viewer_id) as session:
        return await accounts_repo.follow_requests_page(
            session, viewer_id, before_request_id=before_request_id, limit=limit
        )
