"""Every SQL statement about accounts, sessions, follows and blocks.

Each function takes a session already bound to the right shard; the caller routes by id
bits (``ShardSessions.for_id``) or by key hash (``ShardMap.shard_for_username`` and its kin).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.accounts.models import (
    AuthSession,
    Block,
    BlockedBy,
    Follower,
    Following,
    FollowRequest,
    UniqueKey,
    User,
)
from db.posts.models import Post


async def get_users(session: AsyncSession, ids: Sequence[int]) -> list[User]:
    if not ids:
        return []
    result = await session.scalars(select(User).where(User.id.in_(ids), User.deleted_at.is_(None)))
    return list(result)


async def get_user_by_username(session: AsyncSession, username_lower: str) -> User | None:
    return await session.scalar(
        select(User).where(User.username_lower == username_lower, User.deleted_at.is_(None))
    )


async def insert_user(
    session: AsyncSession, *, username: str, email: str, password_hash: str
) -> User | None:
    """None when the username is taken in this shard (its home shard, by hash)."""
    row = await session.scalar(
        insert(User)
        .values(
            username=username,
            username_lower=username.lower(),
            email=email,
            password_hash=password_hash,
        )
        .on_conflict_do_nothing(index_elements=[User.username_lower])
        .returning(User)
    )
    return row


async def claim_unique_key(session: AsyncSession, *, kind: str, key: str, owner_id: int) -> bool:
    claimed = await session.scalar(
        insert(UniqueKey)
        .values(kind=kind, key=key, owner_id=owner_id)
        .on_conflict_do_nothing()
        .returning(UniqueKey.owner_id)
    )
    return claimed is not None


async def release_unique_key(session: AsyncSession, *, kind: str, key: str, owner_id: int) -> None:
    await session.execute(
        delete(UniqueKey).where(
            UniqueKey.kind == kind, UniqueKey.key == key, UniqueKey.owner_id == owner_id
        )
    )


async def reassign_unique_key(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    from_owner: int,
    to_owner: int,
    claimed_before: datetime,
) -> bool:
    """Move a claim to a new owner, only if it is older than ``claimed_before``: a claim
    younger than that may belong to a sign-up whose user row has not committed yet."""
    moved = await session.scalar(
        update(UniqueKey)
        .where(
            UniqueKey.kind == kind,
            UniqueKey.key == key,
            UniqueKey.owner_id == from_owner,
            UniqueKey.created_at < claimed_before,
        )
        .values(owner_id=to_owner, created_at=func.now())
        .returning(UniqueKey.owner_id)
    )
    return moved is not None


async def find_unique_key_owner(session: AsyncSession, *, kind: str, key: str) -> int | None:
    return await session.scalar(
        select(UniqueKey.owner_id).where(UniqueKey.kind == kind, UniqueKey.key == key)
    )


async def update_user(session: AsyncSession, user_id: int, values: dict[str, Any]) -> User | None:
    return await session.scalar(
        update(User)
        .where(User.id == user_id, User.deleted_at.is_(None))
        .values(**values)
        .returning(User)
    )


async def mark_user_deleted(session: AsyncSession, user_id: int) -> bool:
    deleted = await session.scalar(
        update(User)
        .where(User.id == user_id, User.deleted_at.is_(None))
        .values(deleted_at=func.now())
        .returning(User.id)
    )
    return deleted is not None


async def touch_last_active(session: AsyncSession, user_id: int, when: datetime) -> None:
    await session.execute(update(User).where(User.id == user_id).values(last_active_at=when))


async def adjust_counter(session: AsyncSession, user_id: int, column: str, delta: int) -> None:
    target = getattr(User, column)
    await session.execute(
        update(User).where(User.id == user_id).values({target: func.greatest(target + delta, 0)})
    )


# The denormalised counts and the rows they count, all in the user's own shard.
COUNTED_COLUMNS = ("follower_count", "following_count", "post_count")


class CountDrift(NamedTuple):
    user_id: int
    column: str
    stored: int
    counted: int


def _counts_of_rows(user: type[User]) -> tuple[Any, Any, Any]:
    def count_of(*conditions: Any) -> Any:
        return select(func.count()).where(*conditions).scalar_subquery()

    return (
        count_of(Follower.followee_id == user.id),
        count_of(Following.follower_id == user.id),
        count_of(Post.author_id == user.id, Post.deleted_at.is_(None)),
    )


def _drifts(rows: Iterable[Sequence[int]]) -> list[CountDrift]:
    """Rows of (user id, three stored counts, three counted), as the counts that differ."""
    return [
        CountDrift(row[0], column, row[1 + index], row[4 + index])
        for row in rows
        for index, column in enumerate(COUNTED_COLUMNS)
        if row[1 + index] != row[4 + index]
    ]


async def count_drifts_page(
    session: AsyncSession, *, after_id: int, limit: int
) -> tuple[list[CountDrift], list[int]]:
    """The wrong counts among a keyset page of this shard's live users after ``after_id``,
    and the ids of the page."""
    rows = (
        await session.execute(
            select(
                User.id,
                *(getattr(User, column) for column in COUNTED_COLUMNS),
                *_counts_of_rows(User),
            )
            .where(User.id > after_id, User.deleted_at.is_(None))
            .order_by(User.id)
            .limit(limit)
        )
    ).all()
    return _drifts(rows), [row[0] for row in rows]


async def fix_counts(session: AsyncSession, user_ids: Sequence[int]) -> list[CountDrift]:
    """Set these users' counts to a count of their rows, in one UPDATE; returns what
    changed. The rows are locked first, so that the counts are taken after any follow or
    post that changed them commits (a count taken inside the UPDATE would not see one
    that committed while it waited for the row)."""
    if not user_ids:
        return []
    await session.execute(
        select(User.id).where(User.id.in_(user_ids)).order_by(User.id).with_for_update()
    )
    stored = aliased(User)
    counted = _counts_of_rows(User)
    rows = await session.execute(
        update(User)
        .where(
            User.id == stored.id,
            User.id.in_(user_ids),
            tuple_(*(getattr(User, column) for column in COUNTED_COLUMNS)).is_distinct_from(
                tuple_(*counted)
            ),
        )
        .values(dict(zip(COUNTED_COLUMNS, counted, strict=True)))
        .returning(
            User.id,
            *(getattr(stored, column) for column in COUNTED_COLUMNS),
            *(getattr(User, column) for column in COUNTED_COLUMNS),
        )
        .execution_options(synchronize_session=False)
    )
    return _drifts(rows.all())


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    rows = await get_users(session, [user_id])
    return rows[0] if rows else None


async def live_user_for_update(session: AsyncSession, user_id: int) -> User | None:
    """The user's row, locked until the transaction ends; None once deleted."""
    user: User | None = await session.scalar(
        select(User).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update()
    )
    return user


# Sessions -----------------------------------------------------------------------------


async def insert_session(session: AsyncSession, *, token_hash: bytes, user_id: int) -> None:
    session.add(AuthSession(token_hash=token_hash, user_id=user_id))
    await session.flush()


async def find_live_session(session: AsyncSession, token_hash: bytes) -> AuthSession | None:
    return await session.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None)
        )
    )


async def revoke_session(session: AsyncSession, token_hash: bytes) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def revoke_all_sessions(session: AsyncSession, user_id: int) -> list[bytes]:
    result = await session.scalars(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(AuthSession.token_hash)
    )
    return list(result)


# Follow graph: `following` in the follower's shard, `followers` in the followee's --------


async def add_following(session: AsyncSession, *, follower_id: int, followee_id: int) -> bool:
    inserted = await session.scalar(
        insert(Following)
        .values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing()
        .returning(Following.edge_id)
    )
    if inserted is not None:
        await adjust_counter(session, follower_id, "following_count", 1)
    return inserted is not None


async def add_follower(session: AsyncSession, *, followee_id: int, follower_id: int) -> bool:
    inserted = await session.scalar(
        insert(Follower)
        .values(followee_id=followee_id, follower_id=follower_id)
        .on_conflict_do_nothing()
        .returning(Follower.edge_id)
    )
    if inserted is not None:
        await adjust_counter(session, followee_id, "follower_count", 1)
    return inserted is not None


async def remove_following(session: AsyncSession, *, follower_id: int, followee_id: int) -> bool:
    removed = await session.scalar(
        delete(Following)
        .where(Following.follower_id == follower_id, Following.followee_id == followee_id)
        .returning(Following.edge_id)
    )
    if removed is not None:
        await adjust_counter(session, follower_id, "following_count", -1)
    return removed is not None


async def remove_follower(session: AsyncSession, *, followee_id: int, follower_id: int) -> bool:
    removed = await session.scalar(
        delete(Follower)
        .where(Follower.followee_id == followee_id, Follower.follower_id == follower_id)
        .returning(Follower.edge_id)
    )
    if removed is not None:
        await adjust_counter(session, followee_id, "follower_count", -1)
    return removed is not None


async def following_page(
    session: AsyncSession, user_id: int, *, before_edge_id: int | None, limit: int
) -> list[tuple[int, int]]:
    """(edge_id, followee_id), most recent first."""
    query = select(Following.edge_id, Following.followee_id).where(Following.follower_id == user_id)
    if before_edge_id is not None:
        query = query.where(Following.edge_id < before_edge_id)
    rows = await session.execute(query.order_by(Following.edge_id.desc()).limit(limit))
    return [(edge, other) for edge, other in rows]


async def followers_page(
    session: AsyncSession, user_id: int, *, before_edge_id: int | None, limit: int
) -> list[tuple[int, int]]:
    """(edge_id, follower_id), most recent first."""
    query = select(Follower.edge_id, Follower.follower_id).where(Follower.followee_id == user_id)
    if before_edge_id is not None:
        query = query.where(Follower.edge_id < before_edge_id)
    rows = await session.execute(query.order_by(Follower.edge_id.desc()).limit(limit))
    return [(edge, other) for edge, other in rows]


async def all_followee_ids(session: AsyncSession, user_id: int) -> list[int]:
    result = await session.scalars(
        select(Following.followee_id).where(Following.follower_id == user_id)
    )
    return list(result)


async def follower_ids_page(
    session: AsyncSession, user_id: int, *, after_follower_id: int, limit: int
) -> list[int]:
    """Followers in id order, for fan-out batches that resume where they stopped."""
    result = await session.scalars(
        select(Follower.follower_id)
        .where(Follower.followee_id == user_id, Follower.follower_id > after_follower_id)
        .order_by(Follower.follower_id)
        .limit(limit)
    )
    return list(result)


async def follows_many(
    session: AsyncSession, pairs: Iterable[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which (follower, followee) pairs exist; all followers must live in this shard."""
    pair_list = list(pairs)
    if not pair_list:
        return set()
    rows = await session.execute(
        select(Following.follower_id, Following.followee_id).where(
            func.row(Following.follower_id, Following.followee_id).in_(pair_list)
        )
    )
    return {(a, b) for a, b in rows}


async def add_follow_request(session: AsyncSession, *, target_id: int, requester_id: int) -> bool:
    inserted = await session.scalar(
        insert(FollowRequest)
        .values(target_id=target_id, requester_id=requester_id)
        .on_conflict_do_nothing()
        .returning(FollowRequest.request_id)
    )
    return inserted is not None


async def remove_follow_request(
    session: AsyncSession, *, target_id: int, requester_id: int
) -> bool:
    removed = await session.scalar(
        delete(FollowRequest)
        .where(FollowRequest.target_id == target_id, FollowRequest.requester_id == requester_id)
        .returning(FollowRequest.request_id)
    )
    return removed is not None


async def pending_requests(
    session: AsyncSession, target_id: int, requester_ids: Sequence[int]
) -> set[int]:
    if not requester_ids:
        return set()
    result = await session.scalars(
        select(FollowRequest.requester_id).where(
            FollowRequest.target_id == target_id, FollowRequest.requester_id.in_(requester_ids)
        )
    )
    return set(result)


async def follow_requests_page(
    session: AsyncSession, target_id: int, *, before_request_id: int | None, limit: int
) -> list[tuple[int, int]]:
    query = select(FollowRequest.request_id, FollowRequest.requester_id).where(
        FollowRequest.target_id == target_id
    )
    if before_request_id is not None:
        query = query.where(FollowRequest.request_id < before_request_id)
    rows = await session.execute(query.order_by(FollowRequest.request_id.desc()).limit(limit))
    return [(request, requester) for request, requester in rows]


async def requested_targets(
    session: AsyncSession, requester_id: int, target_ids: Sequence[int]
) -> set[int]:
    """Which of ``target_ids`` (all in this shard) have a pending request from requester."""
    if not target_ids:
        return set()
    result = await session.scalars(
        select(FollowRequest.target_id).where(
            FollowRequest.requester_id == requester_id, FollowRequest.target_id.in_(target_ids)
        )
    )
    return set(result)


async def has_pending_request(session: AsyncSession, *, target_id: int, requester_id: int) -> bool:
    return bool(await pending_requests(session, target_id, [requester_id]))


# Blocks -------------------------------------------------------------------------------


async def add_block(session: AsyncSession, *, blocker_id: int, blocked_id: int) -> bool:
    inserted = await session.scalar(
        insert(Block)
        .values(blocker_id=blocker_id, blocked_id=blocked_id)
        .on_conflict_do_nothing()
        .returning(Block.blocked_id)
    )
    return inserted is not None


async def add_blocked_by(session: AsyncSession, *, blocked_id: int, blocker_id: int) -> None:
    await session.execute(
        insert(BlockedBy)
        .values(blocked_id=blocked_id, blocker_id=blocker_id)
        .on_conflict_do_nothing()
    )


async def remove_block(session: AsyncSession, *, blocker_id: int, blocked_id: int) -> bool:
    removed = await session.scalar(
        delete(Block)
        .where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
        .returning(Block.blocked_id)
    )
    return removed is not None


async def remove_blocked_by(session: AsyncSession, *, blocked_id: int, blocker_id: int) -> None:
    await session.execute(
        delete(BlockedBy).where(
            BlockedBy.blocked_id == blocked_id, BlockedBy.blocker_id == blocker_id
        )
    )


async def block_relations(session: AsyncSession, user_id: int) -> set[int]:
    """Everyone ``user_id`` blocked or was blocked by: one shard, two index scans."""
    blocked = select(Block.blocked_id).where(Block.blocker_id == user_id)
    blockers = select(BlockedBy.blocker_id).where(BlockedBy.blocked_id == user_id)
    result = await session.scalars(blocked.union(blockers))
    return set(result)


# Search -------------------------------------------------------------------------------


async def users_with_prefix(
    session: AsyncSession, prefix_lower: str, *, after_username: str | None, limit: int
) -> list[User]:
    """Keyset page of usernames starting with a prefix, in order (index users_username_prefix)."""
    escaped = prefix_lower.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(User).where(User.username_lower.like(f"{escaped}%"), User.deleted_at.is_(None))
    if after_username is not None:
        query = query.where(User.username_lower > after_username)
    result = await session.scalars(query.order_by(User.username_lower).limit(limit))
    return list(result)
