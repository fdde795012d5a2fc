"""Users as read: plain structs decoded from the cache in one call (see
``db/posts/records.py``). Credentials are not part of them: they never leave PostgreSQL,
and log-in reads the ORM row itself."""

from __future__ import annotations

from datetime import datetime

import msgspec

from db.accounts.models import User
from db.cache import to_record


class UserRecord(msgspec.Struct, frozen=True):
    id: int
    username: str
    username_lower: str
    full_name: str
    bio: str
    website: str
    is_private: bool
    follower_count: int
    following_count: int
    post_count: int
    created_at: datetime
    last_active_at: datetime
    avatar_media_id: int | None = None
    deleted_at: datetime | None = None


def user_record(row: User) -> UserRecord:
    """A user row just written or read from PostgreSQL, as readers get it."""
    return to_record(UserRecord, row)
