"""SQL for the home feed: fan-out bookkeeping on posts, recent posts per author, and the
fan-out-on-read query used to rebuild feeds (and as the benchmark's baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts.models import User
from db.posts.models import Post


async def get_post_for_fanout(session: AsyncSession, post_id: int) -> Post | None:
    post: Post | None = await session.scalar(select(Post).where(Post.id == post_id))
    return post


async def save_fanout_cursor(session: AsyncSession, post_id: int, cursor: int) -> None:
    await session.execute(update(Post).where(Post.id == post_id).values(fanout_cursor=cursor))


# The fanout_cursor of a post left to the read-time merge because its author was a large
# account: nobody's feed has it (index posts_merged_at_read).
MERGED_AT_READ = -1


async def mark_merged_at_read(session: AsyncSession, post_id: int) -> None:
    await save_fanout_cursor(session, post_id, MERGED_AT_READ)


async def small_authors_with_merged_posts(
    session: AsyncSession, *, threshold: int, after_author_id: int, limit: int
) -> list[int]:
    """Live authors at or below ``threshold`` followers that still have live posts merged
    at read time: they fell back below it since. A keyset page by author id."""
    result = await session.scalars(
        select(Post.author_id)
        .join(User, User.id == Post.author_id)
        .where(
            Post.fanout_cursor < 0,
            Post.deleted_at.is_(None),
            Post.author_id > after_author_id,
            User.follower_count <= threshold,
            User.deleted_at.is_(None),
        )
        .group_by(Post.author_id)
        .order_by(Post.author_id)
        .limit(limit)
    )
    return list(result)


async def newest_posts_merged_at_read(
    session: AsyncSession, author_id: int, *, newest: int
) -> tuple[int | None, list[int]]:
    """(the author's newest live post id, those of its ``newest`` live posts that were
    merged at read time, newest first)."""
    window = (
        select(Post.id, Post.fanout_cursor)
        .where(Post.author_id == author_id, Post.deleted_at.is_(None))
        .order_by(Post.id.desc())
        .limit(newest)
    )
    rows = (await session.execute(window)).all()
    if not rows:
        return None, []
    return rows[0][0], [post_id for post_id, cursor in rows if cursor < 0]


async def clear_merged_at_read(session: AsyncSession, author_id: int, *, through_id: int) -> int:
    """Mark the author's merged posts up to ``through_id`` as delivered; returns how many.
    Posts after it (the author may have grown large again meanwhile) keep their mark."""
    result = await session.execute(
        update(Post)
        .where(
            Post.author_id == author_id,
            Post.fanout_cursor < 0,
            Post.deleted_at.is_(None),
            Post.id <= through_id,
        )
        .values(fanout_cursor=0)
        .returning(Post.id)
    )
    return len(result.all())


async def recent_post_ids_by_authors(
    session: AsyncSession, author_ids: Sequence[int], *, per_author: int
) -> list[tuple[int, int]]:
    """(author id, post id) for each author's newest live posts: one statement per shard."""
    if not author_ids:
        return []
    ranked = (
        select(
            Post.author_id,
            Post.id,
            func.row_number()
            .over(partition_by=Post.author_id, order_by=Post.id.desc())
            .label("position"),
        )
        .where(Post.author_id.in_(author_ids), Post.deleted_at.is_(None))
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.author_id, ranked.c.id).where(ranked.c.position <= per_author)
    )
    return [(author_id, post_id) for author_id, post_id in rows]


async def large_account_ids(session: AsyncSession, *, threshold: int) -> list[int]:
    result = await session.scalars(
        select(User.id).where(User.follower_count > threshold, User.deleted_at.is_(None))
    )
    return list(result)


async def newest_posts_of_authors(
    session: AsyncSession, author_ids: Sequence[int], *, before_id: int | None, limit: int
) -> list[int]:
    """Fan-out on read: the newest posts by any of ``author_ids`` in this shard."""
    if not author_ids:
        return []
    query = select(Post.id).where(Post.author_id.in_(author_ids), Post.deleted_at.is_(None))
    if before_id is not None:
        query = query.where(Post.id < before_id)
    result = await session.scalars(query.order_by(Post.id.desc()).limit(limit))
    return list(result)
