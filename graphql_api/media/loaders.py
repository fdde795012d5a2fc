"""Per-operation DataLoaders for media rows."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from db.media.records import MediaRecord
from db.session import ShardSessions
from domain.media import uploads
from domain.state import AppState


class MediaLoaders:
    def __init__(self, state: AppState, sessions: ShardSessions) -> None:
        self._state = state
        self._sessions = sessions
        self.media: DataLoader[int, MediaRecord | None] = DataLoader(load_fn=self._load_media)

    async def _load_media(self, ids: Sequence[int]) -> list[MediaRecord | None]:
        return await uploads.load_media(self._state, self._sessions, ids)
