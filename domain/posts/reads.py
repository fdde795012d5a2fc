"""Post reads that other features and the visibility policy build on: rows by id and the
recent reels. Kept apart from the rules in ``posts.py`` and ``comments.py``, which use the
policy themselves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from db.posts import repository as posts_repo
from db.posts.caches import PostCaches
from db.posts.records import CommentRecord, PostRecord
from db.session import ShardSessions
from domain.state import AppState


async def load_posts(
    state: AppState, sessions: ShardSessions, post_ids: Sequence[int]
) -> list[PostRecord | None]:
    """Live posts by id, whoever may see them: callers pass them through Visibility."""
    return await state.of(PostCaches).post_cache.load(
        post_ids, sessions=sessions, fetch=posts_repo.get_posts
    )


async def load_comments(
    state: AppState, sessions: ShardSessions, comment_ids: Sequence[int]
) -> list[CommentRecord | None]:
    """Live comments by id, whoever may see them: callers pass them through Visibility."""
    return await state.of(PostCaches).comment_cache.load(
        comment_ids, sessions=sessions, fetch=posts_repo.get_comments
    )


async def recent_reels(
    sessions: ShardSessions, *, since: datetime, limit_per_shard: int
) -> list[tuple[int, datetime]]:
    """(post id, created at) of live reels posted since ``since``: each shard's newest
    ``limit_per_shard``, in no particular order across shards."""
    found = await sessions.scatter_all(
        lambda session: posts_repo.recent_reels(session, since=since, limit=limit_per_shard)
    )
    return [reel for reels in found.values() for reel in reels]
