"""Every SQL statement about reel views; sessions are bound to the reel's shard."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.reels.models import PostView


async def add_view(session: AsyncSession, *, post_id: int, viewer_id: int) -> bool:
    """True when this viewer had not seen the reel before: views count people, not plays."""
    result = await session.execute(
        insert(PostView)
        .values(post_id=post_id, viewer_id=viewer_id)
        .on_conflict_do_nothing()
        .returning(PostView.post_id)
    )
    return result.first() is not None


async def view_counts(session: AsyncSession, post_ids: Sequence[int]) -> dict[int, int]:
    result = await session.execute(
        select(PostView.post_id, func.count())
        .where(PostView.post_id.in_(post_ids))
        .group_by(PostView.post_id)
    )
    counts = dict.fromkeys(post_ids, 0)
    counts.update({post_id: count for post_id, count in result.all()})
    return counts
