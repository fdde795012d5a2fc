"""Comments: one level of replies, the first page of each thread cached, counts kept hot."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from sqlalchemy.ext.asyncio import AsyncSession

from db.id_lists import IdListCache
from db.posts import repository as posts_repo
from db.posts.caches import CACHED_LIST_LENGTH, PostCaches
from db.posts.records import CommentRecord
from db.redis import read_epoch
from db.session import ShardSessions
from domain import events
from domain.errors import Forbidden, NotFound
from domain.posts.events import COMMENT_ADDED, CommentAdded
from domain.posts.text import validate_comment
from domain.state import AppState
from domain.visibility import direct, visible_comment_count


async def comment_counts(
    state: AppState, sessions: ShardSessions, post_ids: Sequence[int]
) -> list[int]:
    return await state.of(PostCaches).post_comments.get_many(
        post_ids, sessions=sessions, count=posts_repo.comment_counts
    )


async def visible_comment_counts(
    state: AppState, sessions: ShardSessions, post_ids: Sequence[int], *, blocked: AbstractSet[int]
) -> list[int]:
    """Each post's comment count as a viewer with this block set sees it: a viewer who
    blocked no one (or was blocked by no one) pays nothing more than the cached totals."""
    totals = await comment_counts(state, sessions, post_ids)
    if not blocked:
        return totals
    by_commenter = await state.of(PostCaches).post_commenters.get_many(
        post_ids, sorted(blocked), sessions=sessions, count=posts_repo.commenter_counts
    )
    return [
        visible_comment_count(
            total, blocked=blocked, comments_by_commenter=by_commenter.get(post_id, {})
        )
        for post_id, total in zip(post_ids, totals, strict=True)
    ]


async def refresh_comment_lists(
    state: AppState, sessions: ShardSessions, *, post_id: int, parent_id: int | None
) -> None:
    async with sessions.for_id(post_id) as session:
        if parent_id is None:
            rows = await posts_repo.first_comment_ids(
                session, post_ids=[post_id], after_id=None, limit=CACHED_LIST_LENGTH
            )
            await state.of(PostCaches).top_comments.store(post_id, [comment for _, comment in rows])
        else:
            rows = await posts_repo.first_comment_ids(
                session, parent_ids=[parent_id], after_id=None, limit=CACHED_LIST_LENGTH
            )
            await state.of(PostCaches).comment_replies.store(
                parent_id, [comment for _, comment in rows]
            )


async def add_comment(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    post_id: int,
    *,
    body: str,
    reply_to: int | None,
) -> CommentRecord:
    body = validate_comment(body)
    visibility = direct(state, sessions, viewer_id)
    await visibility.require_post(post_id)
    parent_id: int | None = None
    if reply_to is not None:
        parent = await visibility.require_comment(reply_to)
        if parent.post_id != post_id:
            raise NotFound("The comment you reply to does not exist on this post")
        # One level of replies: a reply to a reply joins its thread.
        parent_id = parent.parent_id or parent.id
    async with sessions.for_id(post_id) as session:
        comment = await posts_repo.insert_comment(
            session, post_id=post_id, author_id=viewer_id, parent_id=parent_id, body=body
        )
        owed = await events.emit(
            session,
            COMMENT_ADDED,
            CommentAdded(comment_id=comment.id, post_id=post_id, author_id=viewer_id),
        )
    await events.relay(state, sessions, owed)
    await state.of(PostCaches).comment_cache.store(comment.id, comment)
    await state.of(PostCaches).post_comments.adjust(post_id, 1)
    await state.of(PostCaches).post_commenters.adjust(post_id, viewer_id, 1)
    await refresh_comment_lists(state, sessions, post_id=post_id, parent_id=parent_id)
    return state.of(PostCaches).comment_cache.record_of(comment)


async def delete_comment(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_id: int
) -> CommentRecord:
    visibility = direct(state, sessions, viewer_id)
    comment = await visibility.require_comment(comment_id)
    post = await visibility.require_post(comment.post_id)
    if viewer_id not in (comment.author_id, post.author_id):
        raise Forbidden("Only the comment's author or the post's author can delete it")
    async with sessions.for_id(comment_id) as session:
        deleted = await posts_repo.mark_comment_deleted(session, comment_id)
    if deleted is None:
        raise NotFound("No such comment")
    await state.of(PostCaches).comment_cache.store(comment_id, None)
    await state.of(PostCaches).post_comments.adjust(comment.post_id, -1)
    await state.of(PostCaches).post_commenters.adjust(comment.post_id, comment.author_id, -1)
    await refresh_comment_lists(
        state, sessions, post_id=comment.post_id, parent_id=comment.parent_id
    )
    return comment


# Threads -------------------------------------------------------------------------------

# (owner id, how many): a post's first top-level comments, or a comment's first replies.
ThreadKey = tuple[int, int]


async def first_comment_ids(
    state: AppState, sessions: ShardSessions, keys: Sequence[ThreadKey], *, replies: bool
) -> list[list[int]]:
    """The first ids of many threads: one MGET, then one statement per shard for misses."""
    cache: IdListCache = (
        state.of(PostCaches).comment_replies if replies else state.of(PostCaches).top_comments
    )
    owners = list(dict.fromkeys(owner for owner, _ in keys))
    epoch = read_epoch(state.runtime.redis)
    cached = await cache.get_many(owners)
    misses = [owner for owner in owners if owner not in cached]
    if misses:

        async def per_shard(
            session: AsyncSession, shard_owners: list[int]
        ) -> list[tuple[int, int]]:
            if replies:
                return await posts_repo.first_comment_ids(
                    session, parent_ids=shard_owners, after_id=None, limit=cache.capacity
                )
            return await posts_repo.first_comment_ids(
                session, post_ids=shard_owners, after_id=None, limit=cache.capacity
            )

        loaded: dict[int, list[int]] = {owner: [] for owner in misses}
        for owner, comment_id in await sessions.scatter_ids(misses, per_shard):
            loaded[owner].append(comment_id)
        await cache.fill(loaded, epoch=epoch)
        cached.update(loaded)
    return [cached[owner][:count] for owner, count in keys]


async def comment_page_ids(
    state: AppState,
    sessions: ShardSessions,
    *,
    owner_id: int,
    replies: bool,
    after_id: int | None,
    limit: int,
) -> list[int]:
    """A page of a thread (a post's comments or a comment's replies), oldest first."""
    if after_id is None and limit <= CACHED_LIST_LENGTH:
        (ids,) = await first_comment_ids(state, sessions, [(owner_id, limit)], replies=replies)
        return ids
    # Deep pages are rare and not worth caching: straight to the owner's shard.
    async with sessions.for_id(owner_id) as session:
        rows = await posts_repo.first_comment_ids(
            session,
            post_ids=() if replies else [owner_id],
            parent_ids=[owner_id] if replies else (),
            after_id=after_id,
            limit=limit,
        )
    return [comment_id for _, comment_id in rows]
