"""The home feed's reactions to events: fan-out of new posts, and keeping feeds in step
with follows; and the repair of accounts that fell below the fan-out threshold
(``domain/feed/repairs.py``). Registered here, found by ``domain.jobs.load_features``."""

from __future__ import annotations

from db.claims import claim_round
from db.session import ShardSessions
from domain.accounts.events import FOLLOWED, UNFOLLOWED, FollowChanged
from domain.events import handles
from domain.feed.fanout import (
    FAN_OUT_HANDLER,
    REFILL_JOB,
    backfill,
    fan_out,
    follower_count_changed,
    remove_followee_posts,
)
from domain.feed.repairs import refill_followers, repair_small_accounts
from domain.jobs import job, periodic
from domain.posts.events import POST_CREATED, PostCreated
from domain.state import AppState

FEED_QUEUE = "feed"
REPAIR_INTERVAL_SECONDS = 86400.0


@handles(POST_CREATED, name=FAN_OUT_HANDLER, queue=FEED_QUEUE)
async def fan_out_post(state: AppState, sessions: ShardSessions, event: PostCreated) -> None:
    await fan_out(state, sessions, event.post_id)


# Inline: whoever follows someone expects their posts on the next refresh.
@handles(FOLLOWED, name="feed.backfill", queue=FEED_QUEUE, inline=True)
async def backfill_followee(state: AppState, sessions: ShardSessions, event: FollowChanged) -> None:
    await backfill(state, sessions, follower_id=event.follower_id, followee_id=event.followee_id)
    await follower_count_changed(state, sessions, event.followee_id)


@handles(UNFOLLOWED, name="feed.remove_followee", queue=FEED_QUEUE, inline=True)
async def remove_followee(state: AppState, sessions: ShardSessions, event: FollowChanged) -> None:
    await remove_followee_posts(
        state, sessions, follower_id=event.follower_id, followee_id=event.followee_id
    )
    await follower_count_changed(state, sessions, event.followee_id)


@job(REFILL_JOB, queue=FEED_QUEUE)
async def refill_shrunk_account(state: AppState, *, author_id: int) -> None:
    await refill_followers(state, ShardSessions(state.runtime.databases), author_id)


@periodic(
    "feed.repair_small_accounts",
    queue=FEED_QUEUE,
    interval=lambda settings: REPAIR_INTERVAL_SECONDS,
)
async def repair_small_accounts_daily(state: AppState) -> None:
    # One worker a day: the crossing's own job does the prompt work.
    if await claim_round(
        state.runtime.redis, "feed.repair_small_accounts", seconds=REPAIR_INTERVAL_SECONDS
    ):
        await repair_small_accounts(state)
