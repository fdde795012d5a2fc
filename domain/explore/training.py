"""A training run: the interaction log (fed by events after commit) → the weight matrix →
ALS → a versioned artifact in object storage → every active person's candidates and the
trending list in Redis. ``aperture train`` and the periodic job both run this."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from db.explore.store import ExploreStore
from db.session import ShardSessions
from domain.explore.explore import (
    CANDIDATES_PER_USER,
    TRENDING_WINDOW,
    as_interactions,
    post_items,
    recent_log,
    trending_ids,
)
from domain.explore.models import ServedModel
from domain.state import AppState
from recommender.interactions import CSRMatrix, build_matrix
from recommender.model import ALSConfig, ALSRecommender, ProgressCallback, TrainingReport

log = logging.getLogger(__name__)

# What training learns from (trending ranks the last TRENDING_WINDOW of it).
TRAINING_WINDOW = timedelta(days=180)
# Scored per batch of people, so memory stays flat however many are active.
SCORING_BATCH = 1024
# Fewer interactions than this in all: too little to learn from, trending serves alone.
MINIMUM_INTERACTIONS = 10


@dataclass(frozen=True)
class TrainingRun:
    version: str
    users: int
    items: int
    interactions: int
    device: str
    report: TrainingReport


def _candidates(
    model: ALSRecommender, weights: CSRMatrix, story_items: set[int]
) -> dict[int, list[int]]:
    """Each person's top posts, their own interactions left out, in batches."""
    user_ids = np.asarray(model.users.ids, dtype=np.int64)
    ranked: dict[int, list[int]] = {}
    for start in range(0, len(user_ids), SCORING_BATCH):
        batch = user_ids[start : start + SCORING_BATCH]
        ids, _ = model.recommend(
            batch,
            CANDIDATES_PER_USER + min(len(story_items), CANDIDATES_PER_USER),
            exclude=weights[start : start + SCORING_BATCH],
        )
        for user_id, row in zip(batch, ids, strict=True):
            ranked[int(user_id)] = [
                int(item) for item in row if item >= 0 and int(item) not in story_items
            ][:CANDIDATES_PER_USER]
    return ranked


async def train(
    state: AppState,
    *,
    config: ALSConfig | None = None,
    use_gpu: bool | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingRun | None:
    """Train on the log and publish the model; None when there is too little to learn
    from (trending is refreshed either way)."""
    sessions = ShardSessions(state.runtime.databases)
    now = state.clock()
    rows = await recent_log(sessions, since=now - TRAINING_WINDOW)
    trending = trending_ids(
        [row for row in rows if row[4] >= now - TRENDING_WINDOW], now=now.timestamp()
    )
    await state.of(ExploreStore).store_trending(trending)
    if len(rows) < MINIMUM_INTERACTIONS:
        log.info("explore: %d interactions, too few to train; trending only", len(rows))
        return None
    story_items = {row[1] for row in rows} - post_items(rows)
    matrix = build_matrix(as_interactions(rows), now=now.timestamp())
    model, report = await asyncio.to_thread(
        lambda: ALSRecommender.train(matrix, config, use_gpu=use_gpu, progress=progress),
    )
    artifact = await asyncio.to_thread(model.to_bytes)
    candidates = await asyncio.to_thread(_candidates, model, matrix.matrix, story_items)
    await state.of(ExploreStore).store_candidates(candidates)
    # The pointer moves last: a process that sees the new version finds it whole.
    await state.of(ExploreStore).save_model(model.version, artifact)
    state.of(ServedModel).forget_check()
    log.info(
        "explore: trained %s on %d interactions (%d people, %d items) on the %s",
        model.version,
        matrix.nnz,
        len(model.users),
        len(model.items),
        report.device,
    )
    return TrainingRun(
        version=model.version,
        users=len(model.users),
        items=len(model.items),
        interactions=matrix.nnz,
        device=report.device,
        report=report,
    )
