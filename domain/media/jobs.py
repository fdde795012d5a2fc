"""Media's background work: processing finalized uploads, sweeping abandoned ones."""

from __future__ import annotations

from db.session import ShardSessions
from domain.events import handles
from domain.jobs import periodic
from domain.media.events import MEDIA_UPLOADED, MediaUploaded
from domain.media.pipeline import process_upload, sweep_abandoned
from domain.state import AppState

MEDIA_QUEUE = "media"


@handles(MEDIA_UPLOADED, name="media.process", queue=MEDIA_QUEUE, timeout_seconds=300)
async def process_uploaded(state: AppState, sessions: ShardSessions, event: MediaUploaded) -> None:
    await process_upload(state, sessions, event.media_id)


@periodic("media.sweep_abandoned", queue=MEDIA_QUEUE, interval=lambda settings: 60.0)
async def sweep(state: AppState) -> None:
    await sweep_abandoned(state)
