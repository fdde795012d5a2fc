"""Notifications: raised by other features' events after their commit (``jobs.py``),
stored in the recipient's shard, folded into groups ("ana and 3 others liked your
post"), then pushed live to the recipient's sockets.

Idempotent: each event is claimed once per recipient (``notification_events``), so a
delivery run twice counts once. A group stays open while unread; once read, the next
event opens a new one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from db.notifications import repository as notifications_repo
from db.notifications.records import NotificationRecord
from db.session import ShardSessions
from domain import realtime
from domain.realtime import EventKind, LiveEvent
from domain.state import AppState
from domain.visibility import direct


class NotificationKind(enum.StrEnum):
    LIKE = "like"
    COMMENT = "comment"
    MENTION = "mention"
    FOLLOW = "follow"
    FOLLOW_REQUEST = "follow_request"
    MESSAGE = "message"
    STORY_REPLY = "story_reply"


@dataclass(frozen=True)
class Target:
    post_id: int | None = None
    comment_id: int | None = None
    thread_id: int | None = None
    story_id: int | None = None


async def notify(
    state: AppState,
    sessions: ShardSessions,
    *,
    recipient_id: int,
    actor_id: int,
    kind: NotificationKind,
    group_key: str,
    event_key: str,
    target: Target = Target(),
) -> NotificationRecord | None:
    """Fold one event into the recipient's notifications and tell their sockets; None when
    there is nothing to say (their own action, a block either way, already counted)."""
    if recipient_id == actor_id:
        return None
    if not await direct(state, sessions, recipient_id).unblocked([actor_id]):
        return None
    async with sessions.for_id(recipient_id) as session:
        if not await notifications_repo.claim_event(session, recipient_id, event_key):
            return None
        group = await notifications_repo.fold_in(
            session,
            recipient_id=recipient_id,
            kind=kind.value,
            group_key=group_key,
            actor_id=actor_id,
            now=state.clock(),
            post_id=target.post_id,
            comment_id=target.comment_id,
            thread_id=target.thread_id,
            story_id=target.story_id,
        )
    await realtime.publish(
        state,
        [recipient_id],
        LiveEvent(kind=EventKind.NOTIFICATION, notification_id=group.id, user_id=recipient_id),
    )
    return group


async def notifications_page(
    sessions: ShardSessions,
    viewer_id: int,
    *,
    after_revision: int | None,
    before_revision: int | None,
    limit: int,
) -> tuple[list[NotificationRecord], bool]:
    """Groups in the order they last changed, oldest first: after ``after_revision``
    going forward (catching up), else the latest before ``before_revision``."""
    async with sessions.for_id(viewer_id) as session:
        if after_revision is not None:
            rows = await notifications_repo.changed_after(
                session, viewer_id, after_revision=after_revision, limit=limit + 1
            )
            return rows[:limit], len(rows) > limit
        rows = await notifications_repo.latest_before(
            session, viewer_id, before_revision=before_revision, limit=limit + 1
        )
        return (rows[-limit:] if limit else []), len(rows) > limit


async def load_notifications(
    sessions: ShardSessions, viewer_id: int, ids: list[int]
) -> list[NotificationRecord]:
    async with sessions.for_id(viewer_id) as session:
        return await notifications_repo.get_notifications(session, viewer_id, ids)


async def unread_count(sessions: ShardSessions, viewer_id: int) -> int:
    async with sessions.for_id(viewer_id) as session:
        return await notifications_repo.unread_count(session, viewer_id)


async def mark_read(
    state: AppState, sessions: ShardSessions, viewer_id: int, *, up_to_revision: int | None
) -> int:
    async with sessions.for_id(viewer_id) as session:
        return await notifications_repo.mark_read(
            session, viewer_id, up_to_revision=up_to_revision, now=state.clock()
        )


async def forget_old_events(state: AppState, sessions: ShardSessions) -> int:
    older_than = state.clock() - notifications_repo.EVENT_MEMORY
    counts = await sessions.scatter_all(
        lambda session: notifications_repo.forget_events(session, older_than=older_than)
    )
    return sum(counts.values())


PURGE_INTERVAL = timedelta(hours=1)


def describe(kind: str, actor_names: list[str], actor_count: int) -> str:
    """ "ana liked your post", "ana and ben ...", "ana and 3 others ..."."""
    action = {
        "like": "liked your post",
        "comment": "commented on your post",
        "mention": "mentioned you",
        "follow": "started following you",
        "follow_request": "asked to follow you",
        "message": "sent you a message",
        "story_reply": "replied to your story",
    }.get(kind, kind)
    if not actor_names:
        return f"Someone {action}" if actor_count <= 1 else f"{actor_count} people {action}"
    first = actor_names[0]
    others = actor_count - 1
    if others <= 0:
        return f"{first} {action}"
    if others == 1 and len(actor_names) > 1:
        return f"{first} and {actor_names[1]} {action}"
    return f"{first} and {others} others {action}"
