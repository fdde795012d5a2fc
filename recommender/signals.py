"""The kinds of interaction Explore learns from. Kept apart from the matrix code so that
the features that record interactions (and the workers that run their jobs) do not import
numpy and scipy to name one."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    """What a person did with an item (a post or a reel)."""

    LIKE = "like"
    COMMENT = "comment"
    SAVE = "save"
    REEL_VIEW = "reel_view"
    STORY_VIEW = "story_view"
