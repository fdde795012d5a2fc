"""What happens to reels, for other features to react to (``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class ReelViewed:
    post_id: int
    viewer_id: int


REEL_VIEWED = Topic("reel.viewed", ReelViewed)
