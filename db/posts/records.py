"""Posts and comments as read: plain structs decoded from the cache in one call.

The ORM classes (``db/posts/models.py``) stay on the write path; everything that reads
rows to show them (the API, the visibility rules, the feed) gets these, which cost a
fraction of an ORM instance to build and to read (no instrumented attributes).
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class PostRecord(msgspec.Struct, frozen=True):
    id: int
    author_id: int
    caption: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    fanout_cursor: int = 0
    media_ids: list[int] = msgspec.field(default_factory=list)
    is_reel: bool = False


class CommentRecord(msgspec.Struct, frozen=True):
    id: int
    post_id: int
    author_id: int
    body: str
    created_at: datetime
    parent_id: int | None = None
    deleted_at: datetime | None = None
