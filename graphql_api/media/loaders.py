"""Per-operation loaders for media rows."""

from __future__ import annotations

from collections.abc import Sequence

from db.media.records import MediaRecord
from domain.media import uploads
from graphql_api.context import Loaders
from graphql_api.loader import Loader


class MediaLoaders:
    def __init__(self, loaders: Loaders) -> None:
        self._state = loaders.state
        self._sessions = loaders.sessions
        self.media: Loader[int, MediaRecord | None] = Loader(self._load_media)

    async def _load_media(self, ids: Sequence[int]) -> list[MediaRecord | None]:
        return await uploads.load_media(self._state, self._sessions, ids)
