"""Stories' background work: purging expired stories."""

from __future__ import annotations

from domain.jobs import periodic
from domain.state import AppState
from domain.stories.stories import purge_expired

STORIES_QUEUE = "stories"


@periodic("stories.purge_expired", queue=STORIES_QUEUE, interval=lambda settings: 300.0)
async def purge(state: AppState) -> None:
    await purge_expired(state)
