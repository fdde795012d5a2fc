"""Likes of posts and comments: idempotent, counted in hot counters, remembered per viewer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from db.flags import ViewerFlags
from db.posts import repository as posts_repo
from db.posts.caches import PostCaches
from db.posts.records import CommentRecord
from db.redis import read_epoch
from db.session import ShardSessions
from domain import events
from domain.posts.events import POST_LIKED, PostLiked
from domain.state import AppState
from domain.visibility import direct


async def like_counts(
    state: AppState, sessions: ShardSessions, post_ids: Sequence[int]
) -> list[int]:
    return await state.of(PostCaches).post_likes.get_many(
        post_ids, sessions=sessions, count=posts_repo.post_like_counts
    )


async def comment_like_counts(
    state: AppState, sessions: ShardSessions, comment_ids: Sequence[int]
) -> list[int]:
    return await state.of(PostCaches).comment_likes.get_many(
        comment_ids, sessions=sessions, count=posts_repo.comment_like_counts
    )


async def _viewer_flags(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    ids: Sequence[int],
    *,
    flags: ViewerFlags,
    query: Callable[[AsyncSession, int, Sequence[int]], Awaitable[set[int]]],
) -> list[bool]:
    epoch = read_epoch(state.runtime.redis)
    known = await flags.get_many(viewer_id, ids)
    misses = [object_id for object_id in dict.fromkeys(ids) if object_id not in known]
    if misses:

        async def per_shard(session: AsyncSession, shard_ids: list[int]) -> list[int]:
            return list(await query(session, viewer_id, shard_ids))

        liked = set(await sessions.scatter_ids(misses, per_shard))
        loaded = {object_id: object_id in liked for object_id in misses}
        await flags.fill(viewer_id, loaded, epoch=epoch)
        known.update(loaded)
    return [known.get(object_id, False) for object_id in ids]


async def viewer_liked_posts(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_ids: Sequence[int]
) -> list[bool]:
    return await _viewer_flags(
        state,
        sessions,
        viewer_id,
        post_ids,
        flags=state.of(PostCaches).liked_posts,
        query=posts_repo.liked_posts,
    )


async def viewer_liked_comments(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_ids: Sequence[int]
) -> list[bool]:
    return await _viewer_flags(
        state,
        sessions,
        viewer_id,
        comment_ids,
        flags=state.of(PostCaches).liked_comments,
        query=posts_repo.liked_comments,
    )


async def set_post_like(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int, *, liked: bool
) -> None:
    await direct(state, sessions, viewer_id).require_post(post_id)
    owed = []
    async with sessions.for_id(post_id) as session:
        if liked:
            changed = await posts_repo.add_post_like(session, post_id=post_id, user_id=viewer_id)
            if changed:
                owed = await events.emit(
                    session, POST_LIKED, PostLiked(post_id=post_id, user_id=viewer_id)
                )
        else:
            changed = await posts_repo.remove_post_like(session, post_id=post_id, user_id=viewer_id)
    await events.relay(state, sessions, owed)
    # Liking twice changes no row, so it changes no counter either.
    if changed:
        await state.of(PostCaches).post_likes.adjust(post_id, 1 if liked else -1)
    await state.of(PostCaches).liked_posts.store(viewer_id, post_id, liked)


async def set_comment_like(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_id: int, *, liked: bool
) -> CommentRecord:
    comment = await direct(state, sessions, viewer_id).require_comment(comment_id)
    async with sessions.for_id(comment_id) as session:
        if liked:
            changed = await posts_repo.add_comment_like(
                session, comment_id=comment_id, user_id=viewer_id
            )
        else:
            changed = await posts_repo.remove_comment_like(
                session, comment_id=comment_id, user_id=viewer_id
            )
    if changed:
        await state.of(PostCaches).comment_likes.adjust(comment_id, 1 if liked else -1)
    await state.of(PostCaches).liked_comments.store(viewer_id, comment_id, liked)
    return comment
