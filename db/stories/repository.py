"""Every SQL statement about stories, their views and close friends. Sessions are bound
to the author's (or list owner's) shard, except ``recent_views_by``, asked of every shard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.stories.models import CloseFriend, Story, StoryView
from db.stories.records import StoryRecord, story_record


async def insert_story(
    session: AsyncSession,
    *,
    author_id: int,
    media_id: int,
    audience: str,
    created_at: datetime,
    expires_at: datetime,
) -> Story:
    story: Story | None = await session.scalar(
        insert(Story)
        .values(
            author_id=author_id,
            media_id=media_id,
            audience=audience,
            created_at=created_at,
            expires_at=expires_at,
        )
        .returning(Story)
    )
    assert story is not None
    return story


async def lock_and_count_recent(
    session: AsyncSession, author_id: int, *, since: datetime
) -> tuple[int, datetime | None]:
    """How many stories ``author_id`` posted since ``since`` and when the oldest of them was,
    holding the author's lock for the rest of the transaction so that concurrent posts
    count each other."""
    await session.execute(select(func.pg_advisory_xact_lock(author_id)))
    row = (
        await session.execute(
            select(func.count(), func.min(Story.created_at)).where(
                Story.author_id == author_id, Story.created_at > since
            )
        )
    ).one()
    return int(row[0]), row[1]


async def get_stories(session: AsyncSession, ids: Sequence[int]) -> list[Story]:
    if not ids:
        return []
    return list(await session.scalars(select(Story).where(Story.id.in_(ids))))


async def live_stories_of(
    session: AsyncSession, author_ids: Sequence[int], *, now: datetime
) -> list[StoryRecord]:
    """The authors' stories that have not expired, oldest first."""
    if not author_ids:
        return []
    result = await session.scalars(
        select(Story)
        .where(Story.author_id.in_(author_ids), Story.expires_at > now)
        .order_by(Story.author_id, Story.created_at)
    )
    return [story_record(row) for row in result]


async def delete_story(session: AsyncSession, story_id: int) -> Story | None:
    story: Story | None = await session.scalar(
        delete(Story).where(Story.id == story_id).returning(Story)
    )
    if story is not None:
        await session.execute(delete(StoryView).where(StoryView.story_id == story_id))
    return story


async def purge_expired(
    session: AsyncSession, *, before: datetime, limit: int
) -> list[StoryRecord]:
    """Delete stories that expired before ``before``, with their views; returns them."""
    doomed = (
        select(Story.id).where(Story.expires_at < before).order_by(Story.expires_at).limit(limit)
    )
    result = await session.scalars(delete(Story).where(Story.id.in_(doomed)).returning(Story))
    stories = [story_record(row) for row in result]
    if stories:
        await session.execute(
            delete(StoryView).where(StoryView.story_id.in_([story.id for story in stories]))
        )
    return stories


async def add_view(
    session: AsyncSession, *, story_id: int, viewer_id: int, viewed_at: datetime
) -> bool:
    result = await session.execute(
        insert(StoryView)
        .values(story_id=story_id, viewer_id=viewer_id, viewed_at=viewed_at)
        .on_conflict_do_nothing()
        .returning(StoryView.story_id)
    )
    return result.first() is not None


async def viewers_of(
    session: AsyncSession, story_id: int, *, after: tuple[float, int] | None, limit: int
) -> list[tuple[float, int]]:
    """(viewed_at as epoch seconds, viewer id), most recent first."""
    viewed_at = func.extract("epoch", StoryView.viewed_at)
    query = select(viewed_at, StoryView.viewer_id).where(StoryView.story_id == story_id)
    if after is not None:
        query = query.where(func.row(viewed_at, StoryView.viewer_id) < func.row(*after))
    query = query.order_by(StoryView.viewed_at.desc(), StoryView.viewer_id.desc()).limit(limit)
    return [(float(at), viewer) for at, viewer in (await session.execute(query)).all()]


async def view_counts(session: AsyncSession, story_ids: Sequence[int]) -> dict[int, int]:
    result = await session.execute(
        select(StoryView.story_id, func.count())
        .where(StoryView.story_id.in_(story_ids))
        .group_by(StoryView.story_id)
    )
    counts = dict.fromkeys(story_ids, 0)
    counts.update({story_id: count for story_id, count in result.all()})
    return counts


async def recent_views_by(session: AsyncSession, viewer_id: int, *, since: datetime) -> list[int]:
    """Stories of this shard the viewer saw since ``since``: their seen set, rebuilt."""
    result = await session.scalars(
        select(StoryView.story_id).where(
            StoryView.viewer_id == viewer_id, StoryView.viewed_at >= since
        )
    )
    return list(result)


async def close_friends_of(session: AsyncSession, user_id: int) -> list[int]:
    result = await session.scalars(
        select(CloseFriend.friend_id).where(CloseFriend.user_id == user_id)
    )
    return list(result)


async def set_close_friends(
    session: AsyncSession, user_id: int, *, add: Sequence[int], remove: Sequence[int]
) -> None:
    if add:
        await session.execute(
            insert(CloseFriend)
            .values([{"user_id": user_id, "friend_id": friend} for friend in add])
            .on_conflict_do_nothing()
        )
    if remove:
        await session.execute(
            delete(CloseFriend).where(
                CloseFriend.user_id == user_id, CloseFriend.friend_id.in_(remove)
            )
        )
