"""Media's background work: processing finalized uploads, deleting media once nothing
publishes it (``domain/media/lifecycle.py``), sweeping abandoned uploads."""

from __future__ import annotations

from datetime import timedelta

from db.claims import claim_round
from db.session import ShardSessions
from domain.accounts.events import (
    ACCOUNT_DELETED,
    AVATAR_REPLACED,
    AccountDeleted,
    AvatarReplaced,
)
from domain.events import handles
from domain.jobs import periodic
from domain.media.events import MEDIA_UPLOADED, MediaUploaded
from domain.media.lifecycle import (
    attach_to_message,
    release_everything_of,
    release_media,
    release_published_by,
    repair_orphaned_objects,
    sweep_unpublished,
)
from domain.media.pipeline import process_upload, sweep_abandoned
from domain.messaging.events import MEDIA_SENT, MediaSent
from domain.posts.events import POST_DELETED, PostDeleted
from domain.state import AppState
from domain.stories.events import STORY_DELETED, StoryDeleted

MEDIA_QUEUE = "media"
# An object younger than this may belong to a row not yet committed.
ORPHAN_GRACE = timedelta(hours=6)


@handles(MEDIA_UPLOADED, name="media.process", queue=MEDIA_QUEUE, timeout_seconds=300)
async def process_uploaded(state: AppState, sessions: ShardSessions, event: MediaUploaded) -> None:
    await process_upload(state, sessions, event.media_id)


# Inline: a deleted post's or story's files stop answering as the delete returns.
@handles(POST_DELETED, name="media.release_post", queue=MEDIA_QUEUE, inline=True)
async def release_post_media(state: AppState, sessions: ShardSessions, event: PostDeleted) -> None:
    await release_published_by(
        state, sessions, owner_id=event.author_id, publisher_id=event.post_id
    )


@handles(STORY_DELETED, name="media.release_story", queue=MEDIA_QUEUE, inline=True)
async def release_story_media(
    state: AppState, sessions: ShardSessions, event: StoryDeleted
) -> None:
    await release_published_by(
        state, sessions, owner_id=event.author_id, publisher_id=event.story_id
    )


@handles(AVATAR_REPLACED, name="media.release_avatar", queue=MEDIA_QUEUE, inline=True)
async def release_avatar(state: AppState, sessions: ShardSessions, event: AvatarReplaced) -> None:
    await release_media(
        state, sessions, owner_id=event.user_id, media_id=event.media_id, publisher_id=event.user_id
    )


@handles(ACCOUNT_DELETED, name="media.release_account", queue=MEDIA_QUEUE)
async def release_account_media(
    state: AppState, sessions: ShardSessions, event: AccountDeleted
) -> None:
    await release_everything_of(state, sessions, event.user_id)


@handles(MEDIA_SENT, name="media.attach_to_message", queue=MEDIA_QUEUE, inline=True)
async def publish_in_message(state: AppState, sessions: ShardSessions, event: MediaSent) -> None:
    await attach_to_message(
        state,
        sessions,
        owner_id=event.sender_id,
        media_id=event.media_id,
        message_id=event.message_id,
    )


@periodic("media.sweep_abandoned", queue=MEDIA_QUEUE, interval=lambda settings: 60.0)
async def sweep(state: AppState) -> None:
    await sweep_abandoned(state)
    await sweep_unpublished(state)


REPAIR_INTERVAL_SECONDS = 86400.0


@periodic(
    "media.repair_orphaned_objects",
    queue=MEDIA_QUEUE,
    interval=lambda settings: REPAIR_INTERVAL_SECONDS,
)
async def repair_objects(state: AppState) -> None:
    # It lists the whole bucket: once a day across all workers, not at every start.
    if await claim_round(state.runtime.redis, "media.repair", seconds=REPAIR_INTERVAL_SECONDS):
        await repair_orphaned_objects(state, older_than=ORPHAN_GRACE)
