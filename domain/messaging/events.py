"""What happens in direct messages, for other features (and the live channel) to react to
(``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class MessageSent:
    thread_id: int
    seq: int
    message_id: int
    sender_id: int
    # Members when it was sent, and those of them for whom it is a request.
    member_ids: list[int]
    request_member_ids: list[int]
    kind: str
    story_id: int | None = None


@dataclass(frozen=True)
class MembersChanged:
    thread_id: int
    actor_id: int
    added_ids: list[int]
    removed_ids: list[int]
    request_member_ids: list[int]
    activity_id: int


MESSAGE_SENT = Topic("message.sent", MessageSent)
THREAD_MEMBERS_CHANGED = Topic("thread.members_changed", MembersChanged)


@dataclass(frozen=True)
class MediaSent:
    message_id: int
    sender_id: int
    media_id: int


# A message carries the sender's media: it is published there, as on a post.
MEDIA_SENT = Topic("message.media_sent", MediaSent)
