"""Accounts, follows and posts made through the domain's own functions, for domain tests."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from datetime import datetime

from db.accounts.records import UserRecord as User
from db.ids import compose_id
from db.media.records import MediaKind, MediaRecord
from db.posts.records import PostRecord as Post
from db.session import ShardSessions
from domain.accounts import graph, profiles
from domain.accounts import sessions as auth
from domain.accounts.relations import load_user
from domain.media import pipeline, uploads
from domain.media.processing import generate_demo_image, generate_demo_video
from domain.posts import posts
from domain.state import AppState

CLIENT_IP = "198.51.100.23"
PASSWORD = "correct horse battery staple"

# Tests share one database and nothing is truncated: every name carries this run's tag.
_RUN = secrets.token_hex(3)
_serial = itertools.count()


class FrozenClock:
    """Stands in for ``state.clock`` (the ``clock`` fixture) while a test moves time by
    hand: every rule that reads the time reads ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def unique_name(prefix: str) -> str:
    """A fresh username, at most 28 characters, ``prefix`` first."""
    return f"{prefix[:14]}_{_RUN}{next(_serial)}"


def unknown_id(shard: int) -> int:
    """An id no row has: one millisecond after the id epoch, long before any test ran."""
    return compose_id(milliseconds_since_epoch=1, shard=shard, sequence=1)


async def new_user(
    state: AppState,
    sessions: ShardSessions,
    prefix: str,
    *,
    private: bool = False,
    username: str | None = None,
) -> User:
    """A new account named ``username``, or ``prefix`` and a unique tag."""
    name = username or unique_name(prefix)
    signed_in = await auth.sign_up(
        state,
        sessions,
        username=name,
        email=f"{name}@example.com",
        password=PASSWORD,
        client_ip=CLIENT_IP,
    )
    if not private:
        return signed_in.user
    return await profiles.update_profile(
        state, sessions, signed_in.user.id, full_name=None, bio=None, website=None, is_private=True
    )


async def follow_approved(
    state: AppState, sessions: ShardSessions, follower: User, followee: User
) -> None:
    """``follower`` follows ``followee``, with the request approved if it is private."""
    status = await graph.follow(state, sessions, follower.id, followee.id)
    if status is graph.FollowStatus.REQUESTED:
        await graph.answer_follow_request(state, sessions, followee.id, follower.id, approve=True)
    assert await graph.follow_status(state, sessions, follower.id, followee.id) is (
        graph.FollowStatus.FOLLOWING
    )


async def new_post(
    state: AppState, sessions: ShardSessions, author: User, caption: str = "hello"
) -> Post:
    return await posts.create_post(state, sessions, author.id, caption=caption)


async def reload(state: AppState, sessions: ShardSessions, user: User) -> User:
    """The user as the cache now holds it (counts written through after each change)."""
    row = await load_user(state, sessions, user.id)
    assert row is not None, f"user {user.id} is gone"
    return row


def ids_of(rows: Sequence[object | None]) -> list[int | None]:
    """Each row's id, None where there is no row."""
    return [None if row is None else getattr(row, "id") for row in rows]  # noqa: B009


async def ready_media(
    state: AppState,
    sessions: ShardSessions,
    owner: User,
    *,
    seed: int,
    kind: MediaKind = "image",
) -> MediaRecord:
    """Processed media of ``owner``, not published yet: asked for, stored, finalized and
    processed as a client and a media worker do (the worker's step called here, so no
    queue is drained). Small, so that processing takes milliseconds."""
    if kind == "image":
        data, content_type = generate_demo_image(seed=seed, width=90, height=160), "image/jpeg"
    else:
        data = generate_demo_video(seed=seed, seconds=0.5, width=96, height=160)
        content_type = "video/mp4"
    ticket = await uploads.create_upload(
        state, sessions, owner.id, kind=kind, content_type=content_type, byte_size=len(data)
    )
    # What the client's presigned POST stores: the key the ticket pins.
    await state.runtime.object_store.put(
        key=ticket.target.fields["key"], body=data, content_type=content_type
    )
    await uploads.finalize_upload(state, sessions, owner.id, ticket.media.id)
    await pipeline.process_upload(state, sessions, ticket.media.id)
    media = await uploads.own_media(state, sessions, owner.id, ticket.media.id)
    assert media.status == "ready", media.error_code
    return media
