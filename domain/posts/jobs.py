"""Posts' background work: the daily repair of the hashtag index. Registered here, found
by ``domain.jobs.load_features``. (Hot counters have no periodic repair: each expires
within the cache TTL, which bounds their drift; ``aperture repair counters`` checks them.)"""

from __future__ import annotations

from db.claims import claim_round
from domain.jobs import periodic
from domain.posts.repairs import repair_hashtag_index
from domain.state import AppState

REPAIR_INTERVAL_SECONDS = 86400.0


@periodic("posts.repair_hashtag_index", interval=lambda settings: REPAIR_INTERVAL_SECONDS)
async def repair_hashtag_index_daily(state: AppState) -> None:
    # It reads every shard's tags and index: one worker once a day.
    if await claim_round(
        state.runtime.redis, "posts.repair_hashtag_index", seconds=REPAIR_INTERVAL_SECONDS
    ):
        await repair_hashtag_index(state)
