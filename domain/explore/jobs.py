"""Explore's reactions to other features' events: each interaction goes into the log
after its own commit (and folds a new person in), and a periodic retrain. Registered
here, found by ``domain.jobs.load_features``."""

from __future__ import annotations

import logging

from db.claims import claim_round
from db.session import ShardSessions
from domain.events import handles
from domain.jobs import periodic
from domain.posts.events import (
    COMMENT_ADDED,
    POST_LIKED,
    POST_SAVED,
    CommentAdded,
    PostLiked,
    PostSaved,
)
from domain.posts.reads import load_posts
from domain.reels.events import REEL_VIEWED, ReelViewed
from domain.state import AppState
from domain.stories.events import STORY_VIEWED, StoryViewed
from recommender.signals import Signal

log = logging.getLogger(__name__)

EXPLORE_QUEUE = "explore"


async def _record(
    state: AppState,
    sessions: ShardSessions,
    *,
    user_id: int,
    item_id: int,
    author_id: int,
    signal: Signal,
) -> None:
    # Imported here, not at the top: the recommender's numeric stack (numpy, scipy,
    # implicit: some 60 MiB) stays out of every process that loads this registry but never
    # runs Explore's work, such as a media worker (docs/benchmarks.md, worker memory).
    from domain.explore import explore  # noqa: PLC0415

    await explore.record(
        state, sessions, user_id=user_id, item_id=item_id, author_id=author_id, signal=signal
    )


async def _on_post(
    state: AppState, sessions: ShardSessions, *, user_id: int, post_id: int, signal: Signal
) -> None:
    (post,) = await load_posts(state, sessions, [post_id])
    if post is None or post.author_id == user_id:
        return  # gone since, or one's own: nothing to learn
    await _record(
        state, sessions, user_id=user_id, item_id=post_id, author_id=post.author_id, signal=signal
    )


@handles(POST_LIKED, name="explore.like", queue=EXPLORE_QUEUE, inline=True)
async def post_liked(state: AppState, sessions: ShardSessions, event: PostLiked) -> None:
    await _on_post(
        state, sessions, user_id=event.user_id, post_id=event.post_id, signal=Signal.LIKE
    )


@handles(COMMENT_ADDED, name="explore.comment", queue=EXPLORE_QUEUE, inline=True)
async def comment_added(state: AppState, sessions: ShardSessions, event: CommentAdded) -> None:
    await _on_post(
        state, sessions, user_id=event.author_id, post_id=event.post_id, signal=Signal.COMMENT
    )


@handles(POST_SAVED, name="explore.save", queue=EXPLORE_QUEUE, inline=True)
async def post_saved(state: AppState, sessions: ShardSessions, event: PostSaved) -> None:
    await _on_post(
        state, sessions, user_id=event.user_id, post_id=event.post_id, signal=Signal.SAVE
    )


@handles(REEL_VIEWED, name="explore.reel_view", queue=EXPLORE_QUEUE, inline=True)
async def reel_viewed(state: AppState, sessions: ShardSessions, event: ReelViewed) -> None:
    await _on_post(
        state, sessions, user_id=event.viewer_id, post_id=event.post_id, signal=Signal.REEL_VIEW
    )


@handles(STORY_VIEWED, name="explore.story_view", queue=EXPLORE_QUEUE, inline=True)
async def story_viewed(state: AppState, sessions: ShardSessions, event: StoryViewed) -> None:
    await _record(
        state,
        sessions,
        user_id=event.viewer_id,
        item_id=event.story_id,
        author_id=event.author_id,
        signal=Signal.STORY_VIEW,
    )


@periodic(
    "explore.retrain",
    queue=EXPLORE_QUEUE,
    interval=lambda settings: settings.explore_retrain_interval_seconds,
)
async def retrain(state: AppState) -> None:
    interval = state.runtime.settings.explore_retrain_interval_seconds
    if await claim_round(state.runtime.redis, "explore.retrain", seconds=interval * 0.9):
        from domain.explore.training import train  # noqa: PLC0415  (see _record)

        await train(state)
