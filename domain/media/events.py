"""What happens to media, for the workers to react to (``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class MediaUploaded:
    media_id: int
    owner_id: int


MEDIA_UPLOADED = Topic("media.uploaded", MediaUploaded)
