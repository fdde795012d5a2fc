"""Every SQL statement of the demo seeder (``aperture/seed.py`` decides what to write).

Each function takes a session already bound to one shard, as the repositories do. Every
write is safe to repeat, so seeding the same network twice adds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts.models import Follower, Following, UniqueKey, User
from db.explore.models import ExploreInteraction
from db.media.models import Media
from db.posts.models import Comment, HashtagPost, Post, PostHashtag, PostLike
from db.reels.models import PostView
from db.stories.models import Story

Row = Mapping[str, object]


async def upsert_users(session: AsyncSession, rows: Sequence[Row]) -> tuple[dict[str, int], int]:
    """Ids by ``username_lower`` for every row, and how many of them were inserted now.

    A name already taken keeps its row (a soft-deleted one comes back), so a second run
    finds the users of the first."""
    if not rows:
        return {}, 0
    inserted = await session.execute(
        insert(User)
        .on_conflict_do_nothing(index_elements=[User.username_lower])
        .returning(User.username_lower, User.id),
        list(rows),
    )
    ids = {name: user_id for name, user_id in inserted}
    added = len(ids)
    existing = [str(row["username_lower"]) for row in rows if row["username_lower"] not in ids]
    if existing:
        await session.execute(
            update(User)
            .where(User.username_lower.in_(existing), User.deleted_at.is_not(None))
            .values(deleted_at=None)
        )
        found = await session.execute(
            select(User.username_lower, User.id).where(User.username_lower.in_(existing))
        )
        ids.update({name: user_id for name, user_id in found})
    return ids, added


async def claim_emails(session: AsyncSession, rows: Sequence[Row]) -> None:
    """``unique_keys`` rows of kind ``email``, in the shard their key hashes to."""
    if rows:
        await session.execute(insert(UniqueKey).on_conflict_do_nothing(), list(rows))


async def insert_following(session: AsyncSession, rows: Sequence[Row]) -> int:
    """Rows of the follower's shard; returns how many were new."""
    if not rows:
        return 0
    result = await session.execute(
        insert(Following).on_conflict_do_nothing().returning(Following.follower_id), list(rows)
    )
    return len(result.all())


async def insert_followers(session: AsyncSession, rows: Sequence[Row]) -> int:
    """The mirror rows, in the followee's shard; returns how many were new."""
    if not rows:
        return 0
    result = await session.execute(
        insert(Follower).on_conflict_do_nothing().returning(Follower.followee_id), list(rows)
    )
    return len(result.all())


async def live_post_counts(session: AsyncSession, author_ids: Sequence[int]) -> dict[int, int]:
    """Posts not deleted, per author (authors with none are absent)."""
    if not author_ids:
        return {}
    result = await session.execute(
        select(Post.author_id, func.count())
        .where(Post.author_id.in_(author_ids), Post.deleted_at.is_(None))
        .group_by(Post.author_id)
    )
    return {author_id: count for author_id, count in result}


async def insert_posts(session: AsyncSession, rows: Sequence[Row]) -> list[tuple[int, str]]:
    """New posts; returns ``(id, caption)`` of each."""
    if not rows:
        return []
    result = await session.execute(insert(Post).returning(Post.id, Post.caption), list(rows))
    return [(post_id, caption) for post_id, caption in result]


async def tag_posts(session: AsyncSession, rows: Sequence[Row]) -> None:
    """``post_hashtags`` rows, in the post's shard."""
    if rows:
        await session.execute(insert(PostHashtag).on_conflict_do_nothing(), list(rows))


async def index_hashtags(session: AsyncSession, rows: Sequence[Row]) -> None:
    """``hashtag_posts`` rows, in the shard the tag hashes to."""
    if rows:
        await session.execute(insert(HashtagPost).on_conflict_do_nothing(), list(rows))


async def recount_users(session: AsyncSession) -> int:
    """Recompute every user's denormalised counts from the rows of this shard; returns
    how many users had a wrong count (none, when a second run added nothing)."""

    def count_of(*conditions: Any) -> Any:
        return select(func.count()).where(*conditions).scalar_subquery()

    following = count_of(Following.follower_id == User.id)
    followers = count_of(Follower.followee_id == User.id)
    posts = count_of(Post.author_id == User.id, Post.deleted_at.is_(None))
    result = await session.execute(
        update(User)
        .where(
            tuple_(User.following_count, User.follower_count, User.post_count).is_distinct_from(
                tuple_(following, followers, posts)
            )
        )
        .values(following_count=following, follower_count=followers, post_count=posts)
        .returning(User.id)
    )
    return len(result.all())


# Media, stories, likes, comments and views of the demo ----------------------------------


async def posts_without_media(
    session: AsyncSession, author_ids: Sequence[int]
) -> list[tuple[int, int]]:
    """(post id, author id) of the authors' live posts that carry no media yet."""
    if not author_ids:
        return []
    result = await session.execute(
        select(Post.id, Post.author_id)
        .where(
            Post.author_id.in_(author_ids),
            Post.deleted_at.is_(None),
            func.cardinality(Post.media_ids) == 0,
        )
        .order_by(Post.id)
    )
    return [(post_id, author_id) for post_id, author_id in result]


async def insert_media(session: AsyncSession, rows: Sequence[Row]) -> list[int]:
    """Ready media rows; returns their ids in order."""
    if not rows:
        return []
    result = await session.execute(insert(Media).returning(Media.id), list(rows))
    return [media_id for (media_id,) in result]


async def set_post_media(session: AsyncSession, rows: Sequence[Row]) -> None:
    """``{"post_id", "media_ids", "is_reel"}`` for each post."""
    for row in rows:
        await session.execute(
            update(Post)
            .where(Post.id == row["post_id"])
            .values(media_ids=row["media_ids"], is_reel=row["is_reel"])
        )


async def authors_with_live_stories(
    session: AsyncSession, author_ids: Sequence[int], *, now: datetime
) -> set[int]:
    if not author_ids:
        return set()
    result = await session.scalars(
        select(Story.author_id).where(Story.author_id.in_(author_ids), Story.expires_at > now)
    )
    return set(result)


async def insert_stories(session: AsyncSession, rows: Sequence[Row]) -> list[int]:
    if not rows:
        return []
    result = await session.execute(insert(Story).returning(Story.id), list(rows))
    return [story_id for (story_id,) in result]


async def insert_post_likes(session: AsyncSession, rows: Sequence[Row]) -> int:
    if not rows:
        return 0
    result = await session.execute(
        insert(PostLike).on_conflict_do_nothing().returning(PostLike.post_id), list(rows)
    )
    return len(result.all())


async def insert_explore_interactions(session: AsyncSession, rows: Sequence[Row]) -> int:
    """Explore's log of seeded likes, comments and views (in the actor's shard), as the
    events of a real like would have written it."""
    if not rows:
        return 0
    result = await session.execute(
        insert(ExploreInteraction).on_conflict_do_nothing().returning(ExploreInteraction.item_id),
        list(rows),
    )
    return len(result.all())


async def posts_with_comments(session: AsyncSession, post_ids: Sequence[int]) -> set[int]:
    if not post_ids:
        return set()
    result = await session.scalars(
        select(Comment.post_id).where(Comment.post_id.in_(post_ids)).distinct()
    )
    return set(result)


async def insert_comments(session: AsyncSession, rows: Sequence[Row]) -> int:
    if not rows:
        return 0
    await session.execute(insert(Comment), list(rows))
    return len(rows)


async def insert_post_views(session: AsyncSession, rows: Sequence[Row]) -> int:
    if not rows:
        return 0
    result = await session.execute(
        insert(PostView).on_conflict_do_nothing().returning(PostView.post_id), list(rows)
    )
    return len(result.all())


async def attach_story_media(session: AsyncSession, *, story_id: int, media_id: int) -> None:
    await session.execute(update(Story).where(Story.id == story_id).values(media_id=media_id))
