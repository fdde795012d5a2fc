"""Threads and messages as readers (and realtime events) carry them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from db.messaging.models import Message, Thread, ThreadMember

ThreadKind = Literal["direct", "group"]
MessageKind = Literal["text", "post", "media", "story_reply"]


class ThreadRecord(msgspec.Struct, frozen=True):
    id: int
    kind: ThreadKind
    title: str | None
    created_by: int
    last_seq: int
    last_message_at: datetime | None
    created_at: datetime


class ThreadMemberRecord(msgspec.Struct, frozen=True):
    """A member still in the thread."""

    thread_id: int
    user_id: int
    added_by: int
    joined_at: datetime
    last_read_seq: int


class MessageRecord(msgspec.Struct, frozen=True):
    id: int
    thread_id: int
    seq: int
    sender_id: int
    kind: MessageKind
    body: str | None
    post_id: int | None
    media_id: int | None
    story_id: int | None
    created_at: datetime


def thread_record(row: Thread) -> ThreadRecord:
    return ThreadRecord(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        title=row.title,
        created_by=row.created_by,
        last_seq=row.last_seq,
        last_message_at=row.last_message_at,
        created_at=row.created_at,
    )


def message_record(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        thread_id=row.thread_id,
        seq=row.seq,
        sender_id=row.sender_id,
        kind=row.kind,  # type: ignore[arg-type]
        body=row.body,
        post_id=row.post_id,
        media_id=row.media_id,
        story_id=row.story_id,
        created_at=row.created_at,
    )


def thread_member_record(row: ThreadMember) -> ThreadMemberRecord:
    return ThreadMemberRecord(
        thread_id=row.thread_id,
        user_id=row.user_id,
        added_by=row.added_by,
        joined_at=row.joined_at,
        last_read_seq=row.last_read_seq,
    )
