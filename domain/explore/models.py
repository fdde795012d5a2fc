"""The model an API process serves from: loaded from object storage on first use, and
swapped for a newer version without a restart (checked at most every few seconds)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from db.explore.store import ExploreStore

if TYPE_CHECKING:
    from recommender.model import ALSRecommender

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 5.0


class ServedModel:
    def __init__(self, store: ExploreStore) -> None:
        self._store = store
        self._model: ALSRecommender | None = None
        self._checked_at = -CHECK_INTERVAL_SECONDS
        self._lock = asyncio.Lock()

    def forget_check(self) -> None:
        """Look for a new version on the next use (after a training run here)."""
        self._checked_at = -CHECK_INTERVAL_SECONDS

    async def current(self) -> ALSRecommender | None:
        if time.monotonic() - self._checked_at < CHECK_INTERVAL_SECONDS:
            return self._model
        async with self._lock:
            if time.monotonic() - self._checked_at < CHECK_INTERVAL_SECONDS:
                return self._model
            version = await self._store.current_version()
            if version is not None and (self._model is None or self._model.version != version):
                artifact = await self._store.load_model(version)
                # Imported here: every process holds a ServedModel (AppState), but only
                # those that serve Explore need implicit, numpy and scipy (~60 MiB).
                from recommender.model import ALSRecommender  # noqa: PLC0415

                self._model = await asyncio.to_thread(ALSRecommender.from_bytes, artifact)
                log.info("explore: serving model %s", version)
            self._checked_at = time.monotonic()
            return self._model
