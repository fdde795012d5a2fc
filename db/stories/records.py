"""Stories as read."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from db.cache import to_record
from db.stories.models import Story

StoryAudience = Literal["everyone", "close_friends"]


class StoryRecord(msgspec.Struct, frozen=True):
    id: int
    author_id: int
    media_id: int
    audience: StoryAudience
    created_at: datetime
    expires_at: datetime


def story_record(row: Story) -> StoryRecord:
    """A story row just written or read from PostgreSQL, as readers get it."""
    return to_record(StoryRecord, row)
