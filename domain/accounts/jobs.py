"""Accounts' background work: the daily check of the users' denormalised counts.
Registered here, found by ``domain.jobs.load_features``."""

from __future__ import annotations

from db.claims import claim_round
from db.session import ShardSessions
from domain.accounts.repairs import CountRepairReport, repair_user_counts
from domain.feed.fanout import follower_count_changed
from domain.jobs import periodic
from domain.state import AppState

REPAIR_INTERVAL_SECONDS = 86400.0


async def repair_counts(state: AppState, *, dry_run: bool = False) -> CountRepairReport:
    """The users' counts against their rows; a fixed follower count may cross the fan-out
    threshold, so it goes through the feed's check, as a follow would."""
    sessions = ShardSessions(state.runtime.databases)

    async def threshold_check(user_id: int) -> None:
        await follower_count_changed(state, sessions, user_id)

    return await repair_user_counts(state, dry_run=dry_run, on_follower_count_fixed=threshold_check)


@periodic("accounts.repair_counts", interval=lambda settings: REPAIR_INTERVAL_SECONDS)
async def repair_counts_daily(state: AppState) -> None:
    # It counts every user's rows: one worker once a day, not every worker at every start.
    if await claim_round(
        state.runtime.redis, "accounts.repair_counts", seconds=REPAIR_INTERVAL_SECONDS
    ):
        await repair_counts(state)
