"""Every SQL statement about posts, hashtags, mentions, comments and likes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts.repository import adjust_counter
from db.posts.models import (
    Comment,
    CommentLike,
    HashtagPost,
    Post,
    PostHashtag,
    PostLike,
    PostMention,
    SavedPost,
)


async def get_posts(session: AsyncSession, ids: Sequence[int]) -> list[Post]:
    if not ids:
        return []
    result = await session.scalars(select(Post).where(Post.id.in_(ids), Post.deleted_at.is_(None)))
    return list(result)


async def insert_post(
    session: AsyncSession,
    *,
    author_id: int,
    caption: str,
    hashtags: Sequence[str],
    mention_ids: Sequence[int],
    media_ids: Sequence[int] = (),
    is_reel: bool = False,
) -> Post:
    post: Post | None = await session.scalar(
        insert(Post)
        .values(author_id=author_id, caption=caption, media_ids=list(media_ids), is_reel=is_reel)
        .returning(Post)
    )
    assert post is not None
    await _replace_tags(session, post.id, hashtags, mention_ids)
    await adjust_counter(session, author_id, "post_count", 1)
    return post


async def _replace_tags(
    session: AsyncSession, post_id: int, hashtags: Sequence[str], mention_ids: Sequence[int]
) -> None:
    await session.execute(delete(PostHashtag).where(PostHashtag.post_id == post_id))
    await session.execute(delete(PostMention).where(PostMention.post_id == post_id))
    if hashtags:
        await session.execute(
            insert(PostHashtag), [{"post_id": post_id, "tag": tag} for tag in hashtags]
        )
    if mention_ids:
        await session.execute(
            insert(PostMention), [{"post_id": post_id, "user_id": uid} for uid in mention_ids]
        )


async def update_caption(
    session: AsyncSession,
    post_id: int,
    *,
    caption: str,
    hashtags: Sequence[str],
    mention_ids: Sequence[int],
) -> Post | None:
    post = await session.scalar(
        update(Post)
        .where(Post.id == post_id, Post.deleted_at.is_(None))
        .values(caption=caption, updated_at=func.now())
        .returning(Post)
    )
    if post is not None:
        await _replace_tags(session, post_id, hashtags, mention_ids)
    return post


async def mark_post_deleted(session: AsyncSession, post_id: int) -> Post | None:
    post = await session.scalar(
        update(Post)
        .where(Post.id == post_id, Post.deleted_at.is_(None))
        .values(deleted_at=func.now())
        .returning(Post)
    )
    if post is not None:
        await adjust_counter(session, post.author_id, "post_count", -1)
    return post


async def hashtags_of(session: AsyncSession, post_ids: Sequence[int]) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(PostHashtag.post_id, PostHashtag.tag)
        .where(PostHashtag.post_id.in_(post_ids))
        .order_by(PostHashtag.tag)
    )
    return [(post_id, tag) for post_id, tag in rows]


async def mentions_of(session: AsyncSession, post_ids: Sequence[int]) -> list[tuple[int, int]]:
    rows = await session.execute(
        select(PostMention.post_id, PostMention.user_id).where(PostMention.post_id.in_(post_ids))
    )
    return [(post_id, user_id) for post_id, user_id in rows]


async def author_post_ids(
    session: AsyncSession, author_id: int, *, before_id: int | None, limit: int
) -> list[int]:
    """Keyset page of an author's live posts, newest first (index ``posts_by_author``)."""
    query = select(Post.id).where(Post.author_id == author_id, Post.deleted_at.is_(None))
    if before_id is not None:
        query = query.where(Post.id < before_id)
    result = await session.scalars(query.order_by(Post.id.desc()).limit(limit))
    return list(result)


# Hashtag index (in the tag's shard) ---------------------------------------------------


async def index_hashtags(session: AsyncSession, post_id: int, tags: Sequence[str]) -> None:
    if tags:
        await session.execute(
            insert(HashtagPost).on_conflict_do_nothing(),
            [{"tag": tag, "post_id": post_id} for tag in tags],
        )


async def unindex_hashtags(session: AsyncSession, post_id: int, tags: Sequence[str]) -> None:
    if tags:
        await session.execute(
            delete(HashtagPost).where(HashtagPost.post_id == post_id, HashtagPost.tag.in_(tags))
        )


async def hashtag_post_ids(
    session: AsyncSession, tag: str, *, before_id: int | None, limit: int
) -> list[int]:
    query = select(HashtagPost.post_id).where(HashtagPost.tag == tag)
    if before_id is not None:
        query = query.where(HashtagPost.post_id < before_id)
    result = await session.scalars(query.order_by(HashtagPost.post_id.desc()).limit(limit))
    return list(result)


# The hashtag index's repair (domain/posts/repairs.py) ---------------------------------

TagPair = tuple[str, int]  # (tag, post id)


async def live_post_tags_page(
    session: AsyncSession, *, after: tuple[int, str] | None, limit: int
) -> list[tuple[int, str]]:
    """A keyset page of this shard's ``post_hashtags`` of live posts, (post id, tag) in key
    order after ``after``."""
    query = (
        select(PostHashtag.post_id, PostHashtag.tag)
        .join(Post, Post.id == PostHashtag.post_id)
        .where(Post.deleted_at.is_(None))
    )
    if after is not None:
        query = query.where(tuple_(PostHashtag.post_id, PostHashtag.tag) > tuple_(*after))
    rows = await session.execute(query.order_by(PostHashtag.post_id, PostHashtag.tag).limit(limit))
    return [(post_id, tag) for post_id, tag in rows]


async def live_post_tags_among(session: AsyncSession, pairs: Sequence[TagPair]) -> set[TagPair]:
    """Which of these (tag, post id) pairs a live post of this shard has."""
    if not pairs:
        return set()
    rows = await session.execute(
        select(PostHashtag.tag, PostHashtag.post_id)
        .join(Post, Post.id == PostHashtag.post_id)
        .where(tuple_(PostHashtag.tag, PostHashtag.post_id).in_(pairs), Post.deleted_at.is_(None))
    )
    return {(tag, post_id) for tag, post_id in rows}


async def hashtag_index_page(
    session: AsyncSession, *, after: TagPair | None, limit: int
) -> list[TagPair]:
    """A keyset page of this shard's ``hashtag_posts``, in key order after ``after``."""
    query = select(HashtagPost.tag, HashtagPost.post_id)
    if after is not None:
        query = query.where(tuple_(HashtagPost.tag, HashtagPost.post_id) > tuple_(*after))
    rows = await session.execute(query.order_by(HashtagPost.tag, HashtagPost.post_id).limit(limit))
    return [(tag, post_id) for tag, post_id in rows]


async def indexed_among(session: AsyncSession, pairs: Sequence[TagPair]) -> set[TagPair]:
    """Which of these (tag, post id) pairs this shard's ``hashtag_posts`` holds."""
    if not pairs:
        return set()
    rows = await session.execute(
        select(HashtagPost.tag, HashtagPost.post_id).where(
            tuple_(HashtagPost.tag, HashtagPost.post_id).in_(pairs)
        )
    )
    return {(tag, post_id) for tag, post_id in rows}


async def index_pairs(session: AsyncSession, pairs: Sequence[TagPair]) -> list[TagPair]:
    """Add (tag, post id) pairs to this shard's index; returns those that were missing."""
    if not pairs:
        return []
    rows = await session.execute(
        insert(HashtagPost)
        .values([{"tag": tag, "post_id": post_id} for tag, post_id in pairs])
        .on_conflict_do_nothing()
        .returning(HashtagPost.tag, HashtagPost.post_id)
    )
    return [(tag, post_id) for tag, post_id in rows]


async def unindex_pairs(session: AsyncSession, pairs: Sequence[TagPair]) -> list[TagPair]:
    """Remove (tag, post id) pairs from this shard's index; returns those it held."""
    if not pairs:
        return []
    rows = await session.execute(
        delete(HashtagPost)
        .where(tuple_(HashtagPost.tag, HashtagPost.post_id).in_(pairs))
        .returning(HashtagPost.tag, HashtagPost.post_id)
    )
    return [(tag, post_id) for tag, post_id in rows]


# Comments -----------------------------------------------------------------------------


async def insert_comment(
    session: AsyncSession, *, post_id: int, author_id: int, parent_id: int | None, body: str
) -> Comment:
    comment: Comment | None = await session.scalar(
        insert(Comment)
        .values(post_id=post_id, author_id=author_id, parent_id=parent_id, body=body)
        .returning(Comment)
    )
    assert comment is not None
    return comment


async def get_comments(session: AsyncSession, ids: Sequence[int]) -> list[Comment]:
    if not ids:
        return []
    result = await session.scalars(
        select(Comment).where(Comment.id.in_(ids), Comment.deleted_at.is_(None))
    )
    return list(result)


async def mark_comment_deleted(session: AsyncSession, comment_id: int) -> Comment | None:
    return await session.scalar(
        update(Comment)
        .where(Comment.id == comment_id, Comment.deleted_at.is_(None))
        .values(deleted_at=func.now())
        .returning(Comment)
    )


async def first_comment_ids(
    session: AsyncSession,
    *,
    post_ids: Sequence[int] = (),
    parent_ids: Sequence[int] = (),
    after_id: int | None,
    limit: int,
) -> list[tuple[int, int]]:
    """(owner id, comment id) for the first ``limit`` comments of each post or parent,
    oldest first, in one statement for any number of owners (a window per owner)."""
    owner = Comment.post_id if post_ids else Comment.parent_id
    owner_ids = post_ids or parent_ids
    conditions: list[ColumnElement[bool]] = [owner.in_(owner_ids), Comment.deleted_at.is_(None)]
    if post_ids:
        conditions.append(Comment.parent_id.is_(None))
    if after_id is not None:
        conditions.append(Comment.id > after_id)
    ranked = (
        select(
            owner.label("owner_id"),
            Comment.id.label("comment_id"),
            func.row_number().over(partition_by=owner, order_by=Comment.id).label("position"),
        )
        .where(*conditions)
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.owner_id, ranked.c.comment_id)
        .where(ranked.c.position <= limit)
        .order_by(ranked.c.owner_id, ranked.c.comment_id)
    )
    return [(owner_id, comment_id) for owner_id, comment_id in rows]


async def comment_counts(session: AsyncSession, post_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(Comment.post_id, func.count())
        .where(Comment.post_id.in_(post_ids), Comment.deleted_at.is_(None))
        .group_by(Comment.post_id)
    )
    counts = dict.fromkeys(post_ids, 0)
    counts.update({post_id: count for post_id, count in rows})
    return counts


async def commenter_counts(
    session: AsyncSession, post_ids: Sequence[int]
) -> list[tuple[int, int, int]]:
    """(post id, commenter id, live comments) for every commenter of these posts."""
    rows = await session.execute(
        select(Comment.post_id, Comment.author_id, func.count())
        .where(Comment.post_id.in_(post_ids), Comment.deleted_at.is_(None))
        .group_by(Comment.post_id, Comment.author_id)
    )
    return [(post_id, author_id, count) for post_id, author_id, count in rows]


# Likes --------------------------------------------------------------------------------


async def add_post_like(session: AsyncSession, *, post_id: int, user_id: int) -> bool:
    inserted = await session.scalar(
        insert(PostLike)
        .values(post_id=post_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(PostLike.user_id)
    )
    return inserted is not None


async def remove_post_like(session: AsyncSession, *, post_id: int, user_id: int) -> bool:
    removed = await session.scalar(
        delete(PostLike)
        .where(PostLike.post_id == post_id, PostLike.user_id == user_id)
        .returning(PostLike.user_id)
    )
    return removed is not None


async def add_comment_like(session: AsyncSession, *, comment_id: int, user_id: int) -> bool:
    inserted = await session.scalar(
        insert(CommentLike)
        .values(comment_id=comment_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(CommentLike.user_id)
    )
    return inserted is not None


async def remove_comment_like(session: AsyncSession, *, comment_id: int, user_id: int) -> bool:
    removed = await session.scalar(
        delete(CommentLike)
        .where(CommentLike.comment_id == comment_id, CommentLike.user_id == user_id)
        .returning(CommentLike.user_id)
    )
    return removed is not None


async def post_like_counts(session: AsyncSession, post_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(PostLike.post_id, func.count())
        .where(PostLike.post_id.in_(post_ids))
        .group_by(PostLike.post_id)
    )
    counts = dict.fromkeys(post_ids, 0)
    counts.update({post_id: count for post_id, count in rows})
    return counts


async def comment_like_counts(session: AsyncSession, comment_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(CommentLike.comment_id, func.count())
        .where(CommentLike.comment_id.in_(comment_ids))
        .group_by(CommentLike.comment_id)
    )
    counts = dict.fromkeys(comment_ids, 0)
    counts.update({comment_id: count for comment_id, count in rows})
    return counts


async def liked_posts(session: AsyncSession, user_id: int, post_ids: Sequence[int]) -> set[int]:
    result = await session.scalars(
        select(PostLike.post_id).where(PostLike.user_id == user_id, PostLike.post_id.in_(post_ids))
    )
    return set(result)


async def liked_comments(
    session: AsyncSession, user_id: int, comment_ids: Sequence[int]
) -> set[int]:
    result = await session.scalars(
        select(CommentLike.comment_id).where(
            CommentLike.user_id == user_id, CommentLike.comment_id.in_(comment_ids)
        )
    )
    return set(result)


# Saved posts (in the saver's shard) ----------------------------------------------------


async def save_post(session: AsyncSession, *, user_id: int, post_id: int) -> bool:
    result = await session.execute(
        insert(SavedPost)
        .values(user_id=user_id, post_id=post_id)
        .on_conflict_do_nothing()
        .returning(SavedPost.post_id)
    )
    return result.first() is not None


async def unsave_post(session: AsyncSession, *, user_id: int, post_id: int) -> bool:
    result = await session.execute(
        delete(SavedPost)
        .where(SavedPost.user_id == user_id, SavedPost.post_id == post_id)
        .returning(SavedPost.post_id)
    )
    return result.first() is not None


async def saved_post_ids(
    session: AsyncSession, user_id: int, *, after: tuple[float, int] | None, limit: int
) -> list[tuple[float, int]]:
    """(saved_at as epoch seconds, post id), newest saved first, after a position."""
    saved_at = func.extract("epoch", SavedPost.saved_at)
    query = select(saved_at, SavedPost.post_id).where(SavedPost.user_id == user_id)
    if after is not None:
        query = query.where(func.row(saved_at, SavedPost.post_id) < func.row(after[0], after[1]))
    query = query.order_by(SavedPost.saved_at.desc(), SavedPost.post_id.desc()).limit(limit)
    return [(float(at), post_id) for at, post_id in (await session.execute(query)).all()]


async def saved_posts(session: AsyncSession, user_id: int, post_ids: Sequence[int]) -> set[int]:
    if not post_ids:
        return set()
    result = await session.scalars(
        select(SavedPost.post_id).where(
            SavedPost.user_id == user_id, SavedPost.post_id.in_(post_ids)
        )
    )
    return set(result)


async def recent_reels(
    session: AsyncSession, *, since: datetime, limit: int
) -> list[tuple[int, datetime]]:
    """A shard's newest live reels: what the reels index is rebuilt from."""
    result = await session.execute(
        select(Post.id, Post.created_at)
        .where(Post.is_reel, Post.deleted_at.is_(None), Post.created_at >= since)
        .order_by(Post.created_at.desc())
        .limit(limit)
    )
    return [(post_id, created_at) for post_id, created_at in result.all()]
