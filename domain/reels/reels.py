"""Reels: posts of one video. Their views are rows (one per viewer) counted in a hot
counter, like likes; ``reelsFeed`` ranks recent reels from accounts the viewer follows
and from others, by engagement and recency.

The candidates come from one global index of recent reels (``reels:0``, scored by
creation time in ms, rebuilt from every shard when missing). Explore's recommender will
replace how candidates are found and scored; the query stays the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db.posts.caches import PostCaches
from db.redis import read_epoch, read_together
from db.reels import repository as reels_repo
from db.reels.caches import ReelCaches
from db.scored_sets import score_ms
from db.session import ShardSessions
from domain import events
from domain.errors import BadUserInput
from domain.posts.comments import comment_counts
from domain.posts.likes import like_counts
from domain.posts.reads import load_posts
from domain.posts.reads import recent_reels as recent_post_reels
from domain.reels.events import REEL_VIEWED, ReelViewed
from domain.state import AppState
from domain.visibility import Visibility, direct

# How far back reels are ranked, and how many of the newest at most.
REEL_WINDOW = timedelta(days=30)
CANDIDATES = 500
GLOBAL_INDEX = 0
FOLLOWED_BOOST = 1.5
# A reel the model says the viewer will love (taste 1) ranks as if 5x as engaging.
TASTE_WEIGHT = 4.0


async def counted_views(session: AsyncSession, post_ids: list[int]) -> dict[int, int]:
    """Reels' views counted from their rows in ``session``'s shard: what the cached view
    counters are filled from, and checked against."""
    return await reels_repo.view_counts(session, post_ids)


async def view_counts(
    state: AppState, sessions: ShardSessions, post_ids: Sequence[int]
) -> list[int]:
    return await state.of(PostCaches).post_views.get_many(
        post_ids, sessions=sessions, count=counted_views
    )


async def record_view(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int
) -> int:
    """Count the viewer once per reel (views count people, not replays); returns the
    reel's view count."""
    post = await direct(state, sessions, viewer_id).require_post(post_id)
    if not post.is_reel:
        raise BadUserInput("Only reels (posts of one video) count views", field="postId")
    owed = []
    async with sessions.for_id(post_id) as session:
        added = await reels_repo.add_view(session, post_id=post_id, viewer_id=viewer_id)
        if added:
            owed = await events.emit(
                session, REEL_VIEWED, ReelViewed(post_id=post_id, viewer_id=viewer_id)
            )
    await events.relay(state, sessions, owed)
    if added:
        await state.of(PostCaches).post_views.adjust(post_id, 1)
    (count,) = await view_counts(state, sessions, [post_id])
    return count


async def index_reel(state: AppState, sessions: ShardSessions, post_id: int) -> None:
    """A new post: if it is a reel, it becomes a candidate of every reels feed."""
    (post,) = await load_posts(state, sessions, [post_id])
    if post is None or not post.is_reel:
        return
    await state.of(ReelCaches).reels_index.add(
        GLOBAL_INDEX,
        str(post.id),
        score_ms(post.created_at),
        drop_below=score_ms(state.clock() - REEL_WINDOW),
    )


async def recent_reels(state: AppState, sessions: ShardSessions) -> list[tuple[int, float]]:
    """(post id, created ms) of recent reels, newest first, at most ``CANDIDATES``."""
    since = state.clock() - REEL_WINDOW
    epoch = read_epoch(state.runtime.redis)
    replies = await read_together(
        state.runtime.redis, [state.of(ReelCaches).reels_index.plan_read([GLOBAL_INDEX])]
    )
    cached, version = replies[0][GLOBAL_INDEX] if replies is not None else (None, "0")
    if cached is None:
        found = await recent_post_reels(sessions, since=since, limit_per_shard=CANDIDATES)
        cached = {str(post_id): score_ms(created_at) for post_id, created_at in found}
        if replies is not None:
            await state.of(ReelCaches).reels_index.fill(
                GLOBAL_INDEX, cached, version=version, epoch=epoch
            )
    floor = score_ms(since)
    newest = sorted(
        ((int(member), score) for member, score in cached.items() if score >= floor),
        key=lambda pair: (-pair[1], -pair[0]),
    )
    return newest[:CANDIDATES]


def engagement_score(
    *, likes: int, comments: int, views: int, age_hours: float, followed: bool
) -> float:
    """Engagement per unit of age, with gravity (Hacker News' 1.5 exponent), so a fresh
    reel with a few likes outranks an old one with many; followed accounts get a boost."""
    engagement = 1 + likes + 2 * comments + 0.2 * views
    score = engagement / math.pow(max(age_hours, 0.0) + 2, 1.5)
    return score * (FOLLOWED_BOOST if followed else 1.0)


async def ranked_reel_ids(
    state: AppState, sessions: ShardSessions, visibility: Visibility
) -> list[int]:
    """Every visible recent reel except the viewer's own, best first."""
    candidates = await recent_reels(state, sessions)
    rows = [row for row in await visibility.posts([post_id for post_id, _ in candidates]) if row]
    rows = [row for row in rows if row.author_id != visibility.viewer_id]
    if not rows:
        return []
    ids = [row.id for row in rows]
    authors = list(dict.fromkeys(row.author_id for row in rows))
    likes = await like_counts(state, sessions, ids)
    comments = await comment_counts(state, sessions, ids)
    views = await view_counts(state, sessions, ids)
    followed = dict(zip(authors, await visibility.facts.follows(authors), strict=True))
    # Explore's model, once trained, lifts the reels this viewer's taste predicts. Imported
    # here so that a worker indexing reels does not load numpy with Explore.
    from domain.explore.explore import taste_scores  # noqa: PLC0415

    taste = await taste_scores(state, visibility.viewer_id or 0, ids)
    now = state.clock()
    scored = [
        (
            engagement_score(
                likes=likes[index],
                comments=comments[index],
                views=views[index],
                age_hours=(now - row.created_at).total_seconds() / 3600,
                followed=followed.get(row.author_id, False),
            )
            * (1 + TASTE_WEIGHT * taste[index]),
            row.id,
        )
        for index, row in enumerate(rows)
    ]
    scored.sort(key=lambda pair: (-pair[0], -pair[1]))
    return [post_id for _, post_id in scored]
