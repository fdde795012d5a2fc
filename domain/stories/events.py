"""What happens to stories, for other features to react to (``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class StoryViewed:
    story_id: int
    author_id: int
    viewer_id: int


STORY_VIEWED = Topic("story.viewed", StoryViewed)


@dataclass(frozen=True)
class StoryDeleted:
    story_id: int
    author_id: int


# Deleted by its author, or purged after it expired.
STORY_DELETED = Topic("story.deleted", StoryDeleted)
