"""Stories as read."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

StoryAudience = Literal["everyone", "close_friends"]


class StoryRecord(msgspec.Struct, frozen=True):
    id: int
    author_id: int
    media_id: int
    audience: StoryAudience
    created_at: datetime
    expires_at: datetime
