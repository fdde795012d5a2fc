"""Every SQL statement of Explore's interaction log; sessions are bound to the shard of
the person who acted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.explore.models import ExploreInteraction


async def record(
    session: AsyncSession,
    *,
    user_id: int,
    item_id: int,
    signal: str,
    author_id: int,
    occurred_at: datetime,
) -> None:
    """Idempotent: the same act again only moves its time forward."""
    statement = insert(ExploreInteraction).values(
        user_id=user_id,
        item_id=item_id,
        signal=signal,
        author_id=author_id,
        occurred_at=occurred_at,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[
                ExploreInteraction.user_id,
                ExploreInteraction.item_id,
                ExploreInteraction.signal,
            ],
            set_={"occurred_at": statement.excluded.occurred_at},
        )
    )


async def forget_item(session: AsyncSession, item_id: int) -> None:
    """A deleted post leaves the log (its rows may sit in any shard)."""
    await session.execute(delete(ExploreInteraction).where(ExploreInteraction.item_id == item_id))


InteractionRow = tuple[int, int, str, int, datetime]  # user, item, signal, author, when


async def _rows(session: AsyncSession, condition: ColumnElement[bool]) -> list[InteractionRow]:
    result = await session.execute(
        select(
            ExploreInteraction.user_id,
            ExploreInteraction.item_id,
            ExploreInteraction.signal,
            ExploreInteraction.author_id,
            ExploreInteraction.occurred_at,
        ).where(condition)
    )
    return [tuple(row) for row in result.all()]  # type: ignore[misc]


async def since(session: AsyncSession, *, after: datetime) -> list[InteractionRow]:
    """The shard's log from ``after`` on, for training."""
    return await _rows(session, ExploreInteraction.occurred_at >= after)


async def of_user(session: AsyncSession, user_id: int) -> list[InteractionRow]:
    """One person's log: what Explore leaves out for them, and what folds them in."""
    return await _rows(session, ExploreInteraction.user_id == user_id)


async def items_of(session: AsyncSession, user_id: int) -> set[int]:
    """What one person interacted with: Explore leaves it out for them."""
    result = await session.scalars(
        select(ExploreInteraction.item_id).where(ExploreInteraction.user_id == user_id)
    )
    return set(result)
