"""Explore: posts from accounts the viewer does not follow, chosen for them by the ALS
model (``recommender/``) from what people like, comment on, save and watch.

Reads are precomputed: a training run (``training.py``) leaves each active person's
ranked candidates and a trending list in Redis; a request reads one of them, then keeps
only what the one visibility policy calls discoverable (``Visibility.discoverable``) and
what the viewer has not already interacted with, and spreads authors out. A person's
first interactions fold them into the model at once (``fold_in``), before any retrain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from db.explore import repository as explore_repo
from db.explore.repository import InteractionRow
from db.explore.store import ExploreStore
from db.posts.records import PostRecord
from db.session import ShardSessions
from domain.explore.models import ServedModel
from domain.state import AppState
from domain.visibility import Visibility
from recommender.interactions import Interaction
from recommender.scoring import TrendingScorer
from recommender.signals import Signal

log = logging.getLogger(__name__)

# Candidates kept per person, and how many of them a page may look through.
CANDIDATES_PER_USER = 300
# A person with at most this many interactions is folded in on each new one.
FOLD_IN_UP_TO = 30
# An author appears at most once in this many consecutive Explore posts.
AUTHOR_SPACING = 6
# What trending ranks: engagement in the last week, the best of it.
TRENDING_WINDOW = timedelta(days=7)
TRENDING_SIZE = 500


async def record(
    state: AppState,
    sessions: ShardSessions,
    *,
    user_id: int,
    item_id: int,
    author_id: int,
    signal: Signal,
) -> None:
    """Log one interaction (after its own commit), then fold a new person in."""
    async with sessions.for_id(user_id) as session:
        await explore_repo.record(
            session,
            user_id=user_id,
            item_id=item_id,
            signal=signal.value,
            author_id=author_id,
            occurred_at=state.clock(),
        )
    await fold_in(state, sessions, user_id)


def as_interactions(rows: Sequence[InteractionRow]) -> list[Interaction]:
    return [
        Interaction(user_id, item_id, signal, occurred_at.timestamp())
        for user_id, item_id, signal, _, occurred_at in rows
    ]


def post_items(rows: Sequence[InteractionRow]) -> set[int]:
    """Items that are posts: story views name stories, which Explore never shows."""
    return {item_id for _, item_id, signal, _, _ in rows if signal != Signal.STORY_VIEW}


def trending_ids(rows: Sequence[InteractionRow], *, now: float) -> list[int]:
    posts = post_items(rows)
    interactions = [row for row in as_interactions(rows) if row.item_id in posts]
    if not interactions:
        return []
    scorer = TrendingScorer.from_interactions(interactions, now=now)
    return [item_id for item_id, _ in scorer.top(TRENDING_SIZE)]


async def fold_in(state: AppState, sessions: ShardSessions, user_id: int) -> bool:
    """Recompute a new or quiet person's factors from their log and store their
    candidates, without a retrain; False when there is no model or they are not new."""
    model = await state.of(ServedModel).current()
    if model is None:
        return False
    async with sessions.for_id(user_id) as session:
        rows = await explore_repo.of_user(session, user_id)
    if not rows or len(rows) > FOLD_IN_UP_TO:
        return False
    now = state.clock().timestamp()
    interactions = as_interactions(rows)
    report = await asyncio.to_thread(model.fold_in, user_id, interactions, now=now)
    ids, _ = model.recommend([user_id], CANDIDATES_PER_USER + len(rows))
    seen = {item_id for _, item_id, _, _, _ in rows}
    ranked = [int(item) for item in ids[0] if item >= 0 and int(item) not in seen]
    await state.of(ExploreStore).store_candidates({user_id: ranked[:CANDIDATES_PER_USER]})
    log.debug("explore: folded in %d in %.1f ms", user_id, report.seconds * 1e3)
    return True


def spread_authors(
    post_ids: Sequence[int], author_of: dict[int, int], *, complete: bool = True
) -> list[int]:
    """The same posts, each author at most once in any ``AUTHOR_SPACING`` in a row: a
    post too close to its author's previous one waits for the first place far enough
    on. Independent of page size, so pages never repeat or skip a post. Placing is
    online, so the posts placed from a prefix of ``post_ids`` are a prefix of those
    placed from all of it; ``complete=False`` leaves out those still waiting at the end,
    for a caller that has more to come."""
    placed: list[int] = []
    waiting: list[int] = []
    last_at: dict[int, int] = {}

    def fits(post_id: int) -> bool:
        previous = last_at.get(author_of[post_id])
        return previous is None or len(placed) - previous >= AUTHOR_SPACING

    def place(post_id: int) -> None:
        last_at[author_of[post_id]] = len(placed)
        placed.append(post_id)

    for post_id in post_ids:
        while True:
            ready = next((waiter for waiter in waiting if fits(waiter)), None)
            if ready is None:
                break
            waiting.remove(ready)
            place(ready)
        if fits(post_id):
            place(post_id)
        else:
            waiting.append(post_id)
    if complete:
        placed.extend(waiting)  # too few other authors: the rest at the end, in order
    return placed


async def ranked_post_ids(
    state: AppState,
    sessions: ShardSessions,
    visibility: Visibility,
    viewer_id: int,
    *,
    wanted: int = CANDIDATES_PER_USER,
) -> list[int]:
    """The viewer's Explore, best first, at least ``wanted`` long where there are that
    many: their candidates, then trending (all of it for someone without candidates),
    minus what they interacted with and what is not discoverable to them. Only as many
    candidates as the page needs are read, a few times over for what the filters drop."""
    rows = await _ranked_rows(state, sessions, visibility, viewer_id, wanted=wanted)
    return [row.id for row in rows]


async def _trending(
    state: AppState, sessions: ShardSessions, stored: list[int] | None
) -> list[int]:
    return stored if stored is not None else await refresh_trending(state, sessions)


async def _ranked_rows(
    state: AppState, sessions: ShardSessions, visibility: Visibility, viewer_id: int, *, wanted: int
) -> list[PostRecord]:
    mine, stored_trending = await state.of(ExploreStore).candidates(viewer_id)
    trending = await _trending(state, sessions, stored_trending)
    candidates = list(dict.fromkeys([*(mine or []), *trending]))
    async with sessions.for_id(viewer_id) as session:
        interacted = await explore_repo.items_of(session, viewer_id)
    candidates = [post_id for post_id in candidates if post_id not in interacted]
    window = max(4 * wanted, 16)
    rows: list[PostRecord] = []
    checked = 0
    while True:
        # The rule is per post: a wider window only checks what the last one did not.
        rows += await visibility.discoverable(candidates[checked:window])
        checked = window
        complete = window >= len(candidates)
        by_id = {row.id: row for row in rows}
        ranked = spread_authors(
            list(by_id), {row.id: row.author_id for row in rows}, complete=complete
        )
        if complete or len(ranked) >= wanted:
            return [by_id[post_id] for post_id in ranked]
        window *= 2


async def recent_log(sessions: ShardSessions, *, since: datetime) -> list[InteractionRow]:
    """Every shard's log since ``since``: what training and trending learn from."""
    per_shard = await sessions.scatter_all(lambda session: explore_repo.since(session, after=since))
    return [row for rows in per_shard.values() for row in rows]


async def refresh_trending(state: AppState, sessions: ShardSessions) -> list[int]:
    """Trending from the last days of the log (engagement with time decay), stored for
    everyone without candidates of their own."""
    rows = await recent_log(sessions, since=state.clock() - TRENDING_WINDOW)
    ranked = trending_ids(rows, now=state.clock().timestamp())
    await state.of(ExploreStore).store_trending(ranked)
    return ranked


async def similar_post_ids(
    state: AppState, sessions: ShardSessions, visibility: Visibility, post_id: int
) -> list[int]:
    """ "More like this": the posts nearest to one in the model's item space that the
    viewer may see (theirs and followed accounts' included), best first; trending when
    the model does not know the post yet."""
    await visibility.require_post(post_id)
    model = await state.of(ServedModel).current()
    if model is not None and post_id in model.items:
        ids, _ = model.similar_items(post_id, CANDIDATES_PER_USER)
        ranked = [int(item) for item in ids if int(item) != post_id]
    else:
        _, stored_trending = await state.of(ExploreStore).candidates(visibility.viewer_id or 0)
        trending = await _trending(state, sessions, stored_trending)
        ranked = [item for item in trending if item != post_id]
    return [row.id for row in await visibility.posts(ranked) if row is not None]


async def suggested_account_ids(
    state: AppState, sessions: ShardSessions, visibility: Visibility, viewer_id: int
) -> list[int]:
    """Accounts to follow: the authors of the viewer's Explore, in the order their best
    post ranks there (so the same rules: public, not followed, not blocked, not self)."""
    rows = await _ranked_rows(state, sessions, visibility, viewer_id, wanted=CANDIDATES_PER_USER)
    return list(dict.fromkeys(row.author_id for row in rows))


async def taste_scores(state: AppState, viewer_id: int, item_ids: Sequence[int]) -> list[float]:
    """The model's predicted preference of the viewer for each item, clipped to [0, 1];
    0 for everything when there is no model, or it knows neither viewer nor item."""
    model = await state.of(ServedModel).current()
    if model is None or viewer_id not in model.users:
        return [0.0] * len(item_ids)
    person = model.user_factors[model.users.index_of(viewer_id)]
    positions: list[int] = []
    indices: list[int] = []
    for position, item_id in enumerate(item_ids):
        index = model.items.get(item_id)
        if index is not None:
            positions.append(position)
            indices.append(index)
    scores = np.zeros(len(item_ids), dtype=np.float32)
    if indices:
        scores[positions] = model.item_factors[indices] @ person
    return [float(score) for score in np.clip(scores, 0.0, 1.0)]
