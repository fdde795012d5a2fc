"""Every SQL statement about the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.events.models import OutboxEvent


@dataclass(frozen=True)
class Delivery:
    """One event for one handler, as stored."""

    id: int
    topic: str
    handler: str
    payload: dict[str, Any]


async def insert_deliveries(
    session: AsyncSession, *, topic: str, handlers: Sequence[str], payload: dict[str, Any]
) -> list[Delivery]:
    if not handlers:
        return []
    rows = await session.execute(
        insert(OutboxEvent)
        .values([{"topic": topic, "handler": handler, "payload": payload} for handler in handlers])
        .returning(OutboxEvent.id, OutboxEvent.handler)
    )
    return [
        Delivery(id=event_id, topic=topic, handler=handler, payload=payload)
        for event_id, handler in rows
    ]


async def get_delivery(session: AsyncSession, delivery_id: int) -> Delivery | None:
    row = await session.scalar(select(OutboxEvent).where(OutboxEvent.id == delivery_id))
    if row is None:
        return None
    return Delivery(id=row.id, topic=row.topic, handler=row.handler, payload=row.payload)


async def delete_deliveries(session: AsyncSession, delivery_ids: Sequence[int]) -> None:
    await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(delivery_ids)))


async def note_attempt(session: AsyncSession, delivery_id: int) -> None:
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == delivery_id)
        .values(attempts=OutboxEvent.attempts + 1)
    )


async def owed_deliveries(
    session: AsyncSession, *, older_than_id: int, limit: int
) -> list[Delivery]:
    """Deliveries created before ``older_than_id``'s time and not finished, oldest first."""
    rows = await session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.id < older_than_id)
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    return [
        Delivery(id=row.id, topic=row.topic, handler=row.handler, payload=row.payload)
        for row in rows
    ]


async def count_owed(
    session: AsyncSession, *, handler: str, payload_contains: dict[str, Any] | None = None
) -> int:
    """Deliveries still owed to ``handler`` (whose payload holds ``payload_contains``)."""
    query = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.handler == handler)
    if payload_contains is not None:
        query = query.where(OutboxEvent.payload.contains(payload_contains))
    return int(await session.scalar(query) or 0)
