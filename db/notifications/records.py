"""Notifications as readers get them: plain structs, not ORM rows."""

from __future__ import annotations

from datetime import datetime

import msgspec

from db.cache import to_record
from db.notifications.models import Notification


class NotificationRecord(msgspec.Struct, frozen=True):
    """A group of events of one kind about one thing (see ``models.Notification``)."""

    id: int
    recipient_id: int
    kind: str
    group_key: str
    post_id: int | None
    comment_id: int | None
    thread_id: int | None
    story_id: int | None
    actor_count: int
    latest_actor_ids: list[int]
    revision: int
    created_at: datetime
    updated_at: datetime
    read_at: datetime | None


def notification_record(row: Notification) -> NotificationRecord:
    return to_record(NotificationRecord, row)
