"""Durable events after commit: a transactional outbox.

A write that has side effects beyond its own rows (a post reaching followers' feeds, and
soon notifications, realtime delivery and the recommender's interaction log) does not
call the features concerned. It **emits** an event in its own shard transaction: one
outbox row per registered handler, committed with the change or not at all. After the
commit it **relays** them: each row becomes a job on its handler's queue (or, for a
handler marked ``inline``, runs at once in the writer's process, with the queue as the
fallback). The job runs the handler and then deletes the row.

A crash between commit and enqueue, a killed worker or a Redis that lost its queue
leaves the row in place, and the **sweeper** queues it again once it is older than
``event_sweep_grace_seconds``. So every handler runs at least once per event, and each
must be idempotent: running it twice, or resuming it half-way, changes nothing more.

Topics belong to the feature that emits them (``domain/posts/events.py``); handlers to
the feature that reacts (``domain/feed/jobs.py``), registered with ``@handles``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from db.errors import is_unavailable
from db.events import repository as events_repo
from db.events.repository import Delivery as Delivery  # re-exported: what emit returns
from db.ids import lowest_id_at
from db.session import ShardSessions
from domain.jobs import (
    DEFAULT_QUEUE,
    DEFAULT_RETRY,
    RetryPolicy,
    enqueue,
    job,
    load_features,
    periodic,
)
from domain.state import AppState

log = logging.getLogger(__name__)

P = TypeVar("P")

SWEEP_BATCH = 500


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A kind of event and the dataclass its payload is."""

    name: str
    payload: type[P]


@dataclass(frozen=True)
class Handler:
    name: str
    topic: str
    queue: str
    inline: bool
    run: Callable[[AppState, ShardSessions, Any], Awaitable[None]]
    decode: Callable[[dict[str, Any]], Any]


_handlers: dict[str, Handler] = {}


def handlers_of(topic: str) -> list[Handler]:
    load_features()
    return [handler for handler in _handlers.values() if handler.topic == topic]


def handles(
    topic: Topic[P],
    *,
    name: str,
    queue: str = DEFAULT_QUEUE,
    inline: bool = False,
    timeout_seconds: int = 600,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Callable[
    [Callable[[AppState, ShardSessions, P], Awaitable[None]]],
    Callable[[AppState, ShardSessions, P], Awaitable[None]],
]:
    """Register ``async def run(state, sessions, payload)`` for every event of ``topic``.

    ``inline`` handlers run right after the writer's commit, in its process, so that the
    writer sees their effect at once (a follow's backfilled feed); they must be cheap.
    A failed delivery runs again on a worker as ``retry`` says; once those runs are spent,
    its row is still owed and the sweeper queues it again.
    """

    def register(
        run: Callable[[AppState, ShardSessions, P], Awaitable[None]],
    ) -> Callable[[AppState, ShardSessions, P], Awaitable[None]]:
        if name in _handlers:
            raise ValueError(f"two event handlers are named {name!r}")
        handler = Handler(
            name=name,
            topic=topic.name,
            queue=queue,
            inline=inline,
            run=run,
            decode=lambda payload: topic.payload(**payload),
        )
        _handlers[name] = handler

        async def deliver_job(state: AppState, *, delivery_id: int) -> bool:
            return await deliver(state, ShardSessions(state.runtime.databases), delivery_id)

        job(name, queue=queue, timeout_seconds=timeout_seconds, retry=retry)(deliver_job)
        return run

    return register


async def emit(session: AsyncSession, topic: Topic[P], payload: P) -> list[Delivery]:
    """Record ``payload`` for every handler of ``topic`` in ``session``'s transaction.

    Call ``relay`` with the result after that transaction has committed.
    """
    names = [handler.name for handler in handlers_of(topic.name)]
    if not names:
        return []  # nobody listens: no row, no statement
    return await events_repo.insert_deliveries(
        session,
        topic=topic.name,
        handlers=names,
        payload=dataclasses.asdict(payload),  # type: ignore[call-overload]
    )


async def owed_count(
    session: AsyncSession, *, handler: str, payload_contains: dict[str, Any] | None = None
) -> int:
    """Deliveries to ``handler`` not done yet in ``session``'s shard (of events whose
    payload holds ``payload_contains``)."""
    return await events_repo.count_owed(session, handler=handler, payload_contains=payload_contains)


async def relay(state: AppState, sessions: ShardSessions, deliveries: Sequence[Delivery]) -> None:
    """After the commit: run inline handlers now and queue the rest. Never raises: the
    change is committed, and what fails here the sweeper finishes."""
    done: list[int] = []
    for delivery in deliveries:
        handler = _handlers[delivery.handler]
        if handler.inline:
            try:
                if await _run(state, sessions, delivery):
                    done.append(delivery.id)
                continue
            except Exception as error:
                _log_failure(delivery, error, "will retry on a worker")
        await enqueue(state, handler.name, key=f"{delivery.id}:first", delivery_id=delivery.id)
    # One statement for all of them (one event's deliveries share its shard).
    for shard, delivery_ids in sessions.group_by_shard(done).items():
        try:
            async with sessions.shard(shard) as session:
                await events_repo.delete_deliveries(session, delivery_ids)
        except Exception as error:
            # Their handlers ran; the sweeper runs them again (they are idempotent).
            log.warning("handled events %s not cleared: %s", delivery_ids, error)


async def deliver(
    state: AppState,
    sessions: ShardSessions,
    delivery_id: int,
) -> bool:
    """Run one delivery's handler, then delete its row; False if it was already done."""
    async with sessions.for_id(delivery_id) as session:
        delivery = await events_repo.get_delivery(session, delivery_id)
    if delivery is None or not await _run(state, sessions, delivery):
        return False
    async with sessions.for_id(delivery.id) as session:
        await events_repo.delete_deliveries(session, [delivery.id])
    return True


async def _run(state: AppState, sessions: ShardSessions, delivery: Delivery) -> bool:
    handler = _handlers.get(delivery.handler)
    if handler is None:
        # Its code is gone (renamed or removed): keep the row for whoever knows it.
        log.warning(
            "no handler %r for owed event %s; left in the outbox", delivery.handler, delivery.id
        )
        return False
    await handler.run(state, sessions, handler.decode(delivery.payload))
    return True


def _log_failure(delivery: Delivery, error: Exception, then: str) -> None:
    if isinstance(error, RedisError) or is_unavailable(error):
        # A dependency is down; the outage is logged once by its breaker.
        log.warning("event %s (%s) not handled: %s; %s", delivery.id, delivery.handler, error, then)
    else:
        log.exception("event %s (%s) failed; %s", delivery.id, delivery.handler, then)


@periodic("events.sweep", interval=lambda settings: settings.event_sweep_interval_seconds)
async def sweep(state: AppState) -> int:
    """Queue again every delivery owed for longer than the grace period; how many."""
    try:
        await state.runtime.redis.ping()  # while Redis is down, the breaker's probe
    except RedisError:
        return 0  # nothing can be queued now; the breaker logged the outage
    sessions = ShardSessions(state.runtime.databases)
    grace = state.runtime.settings.event_sweep_grace_seconds
    older_than = lowest_id_at(datetime.now(UTC) - timedelta(seconds=grace))
    per_shard = await sessions.scatter_all(
        lambda session: events_repo.owed_deliveries(
            session, older_than_id=older_than, limit=SWEEP_BATCH
        )
    )
    # saq refuses a key whose job is still unfinished, and the job of a killed worker
    # stays "active" until saq's own sweep gives up on it; a key per grace window gets
    # past it while still de-duplicating the sweeps within one window.
    attempt = f"sweep-{int(time.time() // max(grace, 1.0))}"
    queued = 0
    for deliveries in per_shard.values():
        for delivery in deliveries:
            if delivery.handler not in _handlers:
                continue
            queued += await enqueue(
                state, delivery.handler, key=f"{delivery.id}:{attempt}", delivery_id=delivery.id
            )
    if queued:
        log.info("sweeper queued %d owed events again", queued)
    return queued
