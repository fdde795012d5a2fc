"""Every SQL statement about notifications; sessions are bound to the recipient's shard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ARRAY, BigInteger, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.notifications.models import Notification, NotificationActor, NotificationEvent
from db.notifications.records import NotificationRecord, notification_record

# The actors a group names ("ana, ben and 3 others").
NAMED_ACTORS = 3


async def claim_event(session: AsyncSession, recipient_id: int, event_key: str) -> bool:
    """Record that this event reached the recipient; False if it already had."""
    claimed = await session.scalar(
        insert(NotificationEvent)
        .values(recipient_id=recipient_id, event_key=event_key)
        .on_conflict_do_nothing()
        .returning(NotificationEvent.event_key)
    )
    return claimed is not None


async def fold_in(
    session: AsyncSession,
    *,
    recipient_id: int,
    kind: str,
    group_key: str,
    actor_id: int,
    now: datetime,
    post_id: int | None = None,
    comment_id: int | None = None,
    thread_id: int | None = None,
    story_id: int | None = None,
) -> NotificationRecord:
    """Add ``actor_id`` to the recipient's unread group ``group_key``, opening it if none is."""
    opened = insert(Notification).values(
        recipient_id=recipient_id,
        kind=kind,
        group_key=group_key,
        post_id=post_id,
        comment_id=comment_id,
        thread_id=thread_id,
        story_id=story_id,
        created_at=now,
        updated_at=now,
    )
    group_id: int | None = await session.scalar(
        opened.on_conflict_do_update(
            index_elements=[Notification.recipient_id, Notification.group_key],
            index_where=Notification.read_at.is_(None),
            set_={"updated_at": now},
        ).returning(Notification.id)
    )
    assert group_id is not None
    new_actor = await session.scalar(
        insert(NotificationActor)
        .values(notification_id=group_id, actor_id=actor_id)
        .on_conflict_do_nothing()
        .returning(NotificationActor.actor_id)
    )
    latest = func.array_prepend(
        actor_id,
        func.array_remove(Notification.latest_actor_ids, actor_id),
        type_=ARRAY(BigInteger),
    )
    group: Notification | None = await session.scalar(
        update(Notification)
        .where(Notification.id == group_id)
        .values(
            actor_count=Notification.actor_count + (1 if new_actor is not None else 0),
            latest_actor_ids=latest[1:NAMED_ACTORS],
            # The column's default is the shard's own next_id(): a fresh, larger id.
            revision=literal_column("DEFAULT"),
            updated_at=now,
        )
        .returning(Notification)
    )
    assert group is not None
    return notification_record(group)


async def get_notifications(
    session: AsyncSession, recipient_id: int, ids: Sequence[int]
) -> list[NotificationRecord]:
    if not ids:
        return []
    rows = await session.scalars(
        select(Notification).where(
            Notification.recipient_id == recipient_id, Notification.id.in_(ids)
        )
    )
    return [notification_record(row) for row in rows]


async def changed_after(
    session: AsyncSession, recipient_id: int, *, after_revision: int, limit: int
) -> list[NotificationRecord]:
    """Groups opened or changed after ``after_revision``, in the order they changed."""
    rows = await session.scalars(
        select(Notification)
        .where(Notification.recipient_id == recipient_id, Notification.revision > after_revision)
        .order_by(Notification.revision)
        .limit(limit)
    )
    return [notification_record(row) for row in rows]


async def latest_before(
    session: AsyncSession, recipient_id: int, *, before_revision: int | None, limit: int
) -> list[NotificationRecord]:
    """The ``limit`` groups changed last before ``before_revision``, in change order."""
    query = select(Notification).where(Notification.recipient_id == recipient_id)
    if before_revision is not None:
        query = query.where(Notification.revision < before_revision)
    rows = await session.scalars(query.order_by(Notification.revision.desc()).limit(limit))
    return [notification_record(row) for row in reversed(list(rows))]


async def unread_count(session: AsyncSession, recipient_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Notification.recipient_id == recipient_id, Notification.read_at.is_(None)
        )
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, recipient_id: int, *, up_to_revision: int | None, now: datetime
) -> int:
    query = update(Notification).where(
        Notification.recipient_id == recipient_id, Notification.read_at.is_(None)
    )
    if up_to_revision is not None:
        query = query.where(Notification.revision <= up_to_revision)
    result = await session.execute(query.values(read_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def forget_events(session: AsyncSession, *, older_than: datetime) -> int:
    """Drop idempotence marks long past any redelivery (the outbox retries for minutes)."""
    result = await session.execute(
        delete(NotificationEvent).where(NotificationEvent.created_at < older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


EVENT_MEMORY = timedelta(days=7)
