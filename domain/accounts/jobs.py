"""Accounts' background work: the daily check of the users' denormalised counts.
Registered here, found by ``domain.jobs.load_features``."""

from __future__ import annotations

from db.claims import claim_round
from db.session import ShardSessions
from domain.accounts.repairs import repair_user_counts
from domain.feed.fanout import follower_count_changed
from domain.jobs import periodic
from domain.state import AppState

REPAIR_INTERVAL_SECONDS = 86400.0


@periodic("accounts.repair_counts", interval=lambda settings: REPAIR_INTERVAL_SECONDS)
async def repair_counts_daily(state: AppState) -> None:
    # It counts every user's rows: one worker once a day, not every worker at every start.
    if not await claim_round(
        state.runtime.redis, "accounts.repair_counts", seconds=REPAIR_INTERVAL_SECONDS
    ):
        return
    sessions = ShardSessions(state.runtime.databases)

    async def threshold_check(user_id: int) -> None:
        await follower_count_changed(state, sessions, user_id)

    await repair_user_counts(state, on_follower_count_fixed=threshold_check)
