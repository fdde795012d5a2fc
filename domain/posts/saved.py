"""Saved posts: a private list per viewer, in the viewer's shard. Nobody else, the post's
author included, can see who saved what."""

from __future__ import annotations

from collections.abc import Sequence

from db.posts import repository as posts_repo
from db.posts.caches import PostCaches
from db.redis import read_epoch
from db.session import ShardSessions
from domain import events
from domain.posts.events import POST_SAVED, PostSaved
from domain.state import AppState
from domain.visibility import direct


async def set_saved(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int, *, saved: bool
) -> None:
    if saved:
        # Only what the viewer may see can be saved; unsaving works even after it is gone.
        await direct(state, sessions, viewer_id).require_post(post_id)
    owed = []
    async with sessions.for_id(viewer_id) as session:
        if saved:
            await posts_repo.save_post(session, user_id=viewer_id, post_id=post_id)
            owed = await events.emit(
                session, POST_SAVED, PostSaved(post_id=post_id, user_id=viewer_id)
            )
        else:
            await posts_repo.unsave_post(session, user_id=viewer_id, post_id=post_id)
    await state.of(PostCaches).saved_posts.store(viewer_id, post_id, saved)
    await events.relay(state, sessions, owed)


async def viewer_saved(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_ids: Sequence[int]
) -> list[bool]:
    epoch = read_epoch(state.runtime.redis)
    known = await state.of(PostCaches).saved_posts.get_many(viewer_id, post_ids)
    misses = [post_id for post_id in dict.fromkeys(post_ids) if post_id not in known]
    if misses:
        async with sessions.for_id(viewer_id) as session:
            saved = await posts_repo.saved_posts(session, viewer_id, misses)
        loaded = {post_id: post_id in saved for post_id in misses}
        await state.of(PostCaches).saved_posts.fill(viewer_id, loaded, epoch=epoch)
        known.update(loaded)
    return [known.get(post_id, False) for post_id in post_ids]


def saved_cursor(position: tuple[float, int]) -> str:
    return f"{position[0]!r}:{position[1]}"


def parse_saved_cursor(cursor: str | None) -> tuple[float, int] | None:
    if cursor is None:
        return None
    saved_at, _, post_id = cursor.partition(":")
    return float(saved_at), int(post_id)


async def saved_post_ids(
    sessions: ShardSessions, viewer_id: int, *, after: str | None, limit: int
) -> list[tuple[str, int]]:
    """(cursor, post id) of the viewer's saved posts, newest saved first. Callers pass the
    ids through Visibility: a saved post that was deleted or hidden since drops out."""
    async with sessions.for_id(viewer_id) as session:
        rows = await posts_repo.saved_post_ids(
            session, viewer_id, after=parse_saved_cursor(after), limit=limit
        )
    return [(saved_cursor(position), position[1]) for position in rows]
