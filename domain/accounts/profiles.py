"""Profiles: editing one, deleting an account, and finding users by username prefix."""

from __future__ import annotations

from datetime import datetime

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches
from db.accounts.records import UserRecord, user_record
from db.session import ShardSessions
from domain import events
from domain.accounts.events import (
    ACCOUNT_DELETED,
    AVATAR_REPLACED,
    AccountDeleted,
    AvatarReplaced,
)
from domain.accounts.validation import profile_changes, validate_search_prefix
from domain.errors import MediaNotReady, NotFound
from domain.media.lifecycle import publish_media, published
from domain.state import AppState
from domain.visibility import Visibility


async def update_profile(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    full_name: str | None,
    bio: str | None,
    website: str | None,
    is_private: bool | None,
) -> UserRecord:
    values = profile_changes(full_name=full_name, bio=bio, website=website, is_private=is_private)
    async with sessions.for_id(viewer_id) as session:
        user = await accounts_repo.update_user(session, viewer_id, values)
    if user is None:
        raise NotFound("Your account no longer exists")
    await state.of(AccountCaches).user_cache.store(user.id, user)
    return user_record(user)


async def delete_account(state: AppState, sessions: ShardSessions, viewer_id: int) -> None:
    async with sessions.for_id(viewer_id) as session:
        deleted = await accounts_repo.mark_user_deleted(session, viewer_id)
        tokens = await accounts_repo.revoke_all_sessions(session, viewer_id)
        owed = (
            await events.emit(session, ACCOUNT_DELETED, AccountDeleted(user_id=viewer_id))
            if deleted
            else []
        )
    await events.relay(state, sessions, owed)
    await state.of(AccountCaches).user_cache.store(viewer_id, None)
    await state.of(AccountCaches).session_cache.revoke(tokens)


async def search_users(
    sessions: ShardSessions,
    visibility: Visibility,
    *,
    prefix: str,
    after_username: str | None,
    limit: int,
) -> list[tuple[str, UserRecord | None]]:
    """Up to ``limit`` (username, user) pairs after ``after_username`` in username order;
    the user is None where the viewer may not see it (the position still counts)."""
    prefix_lower = validate_search_prefix(prefix)
    # Every shard holds some usernames: ask all at once, merge in username order.
    per_shard = await sessions.scatter_all(
        lambda session: accounts_repo.users_with_prefix(
            session, prefix_lower, after_username=after_username, limit=limit
        )
    )
    rows = sorted(
        (row for rows in per_shard.values() for row in rows),
        key=lambda row: row.username_lower,
    )[:limit]
    visible = await visibility.visible_rows([user_record(row) for row in rows])
    return [(row.username_lower, user) for row, user in zip(rows, visible, strict=True)]


async def set_avatar(
    state: AppState, sessions: ShardSessions, viewer_id: int, *, media_id: int | None
) -> UserRecord:
    """Make one of the viewer's processed, unpublished images their avatar (None removes
    it). The avatar publishes the image, as a post would; the one it replaces is deleted
    through ``account.avatar_replaced``."""
    async with sessions.for_id(viewer_id) as session:
        current = await accounts_repo.live_user_for_update(session, viewer_id)
        if current is None:
            raise NotFound("Your account no longer exists")
        replaced = current.avatar_media_id
        if media_id is not None and media_id != replaced:
            attached = await publish_media(
                session, media_ids=[media_id], owner_id=viewer_id, publisher_id=viewer_id
            )
            if not attached or attached[0].kind != "image":
                # Raising rolls the attach back with the rest of the transaction.
                raise MediaNotReady(
                    "An avatar must be one of your own processed images, not published "
                    "on a post, story or message",
                    mediaIds=[str(media_id)],
                )
        user = await accounts_repo.update_user(session, viewer_id, {"avatar_media_id": media_id})
        assert user is not None  # locked above
        owed = (
            await events.emit(
                session, AVATAR_REPLACED, AvatarReplaced(user_id=viewer_id, media_id=replaced)
            )
            if replaced is not None and replaced != media_id
            else []
        )
    await events.relay(state, sessions, owed)
    await state.of(AccountCaches).user_cache.store(user.id, user)
    if media_id is not None and media_id != replaced:
        await published(state, [media_id])
    return user_record(user)


async def touch_last_active(sessions: ShardSessions, user_id: int, *, now: datetime) -> None:
    """Note on the user's row when they were last active."""
    async with sessions.for_id(user_id) as session:
        await accounts_repo.touch_last_active(session, user_id, now)
