"""The repair of the denormalised counts on ``users`` (``follower_count``,
``following_count``, ``post_count``).

Each count changes in the transaction of the row it counts, so it drifts only through a
bug or a hand-made change to the rows; this finds and fixes any, a keyset page of users at
a time per shard (the rows counted live in the user's own shard), with one UPDATE per page
that needs one. The fixed users' cached rows are dropped, so readers see the new counts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches
from db.accounts.repository import CountDrift
from db.session import ShardSessions
from domain.state import AppState

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass
class CountRepairReport:
    examined_users: int = 0
    fixed: list[CountDrift] = field(default_factory=list)


async def repair_user_counts(
    state: AppState,
    *,
    dry_run: bool = False,
    on_follower_count_fixed: Callable[[int], Awaitable[object]] | None = None,
) -> CountRepairReport:
    """``on_follower_count_fixed(user_id)`` runs for each user whose follower count was
    fixed, as a follow's handlers would (the feed's check of the fan-out threshold)."""
    sessions = ShardSessions(state.runtime.databases)
    report = CountRepairReport()
    for shard in sessions.shard_map.shards:
        after = 0
        while True:
            async with sessions.shard(shard) as session:
                drifts, page = await accounts_repo.count_drifts_page(
                    session, after_id=after, limit=BATCH
                )
            report.examined_users += len(page)
            if drifts and not dry_run:
                async with sessions.shard(shard) as session:
                    # Counted again under lock: what was wrong a moment ago may be right now.
                    drifts = await accounts_repo.fix_counts(
                        session, sorted({drift.user_id for drift in drifts})
                    )
                await state.of(AccountCaches).user_cache.invalidate(
                    *{drift.user_id for drift in drifts}
                )
            report.fixed += drifts
            if on_follower_count_fixed is not None and not dry_run:
                for user_id in sorted({d.user_id for d in drifts if d.column == "follower_count"}):
                    await on_follower_count_fixed(user_id)
            if len(page) < BATCH:
                break
            after = page[-1]
    if report.fixed:
        log.warning(
            "%d user counts disagreed with their rows (%s)",
            len(report.fixed),
            "found" if dry_run else "fixed",
        )
    return report
