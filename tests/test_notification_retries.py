"""A delivery that fails while PostgreSQL is unavailable is tried again later, not at
once: its job backs off (each wait twice the last), so a short outage loses no
notification; and one whose retries run out stays in the outbox for the sweeper."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from saq import Job, Queue
from saq.job import Status
from sqlalchemy import func, select, text

from db.events.models import OutboxEvent
from db.notifications.models import Notification
from db.runtime import Runtime
from db.session import ShardSessions
from db.shards import shard_schema
from domain import events, jobs
from domain.accounts.graph import follow
from domain.accounts.sessions import sign_up
from domain.events import handles
from domain.jobs import RetryPolicy, load_features
from domain.notifications.jobs import NOTIFICATIONS_QUEUE
from domain.state import AppState
from graphql_api.app import create_app
from infra.servers import Servers
from infra.settings import Settings
from tests.test_events import PINGED, Pinged, Recorder
from workers.runner import run_workers

# A statement waiting on the locked table gives up after this long: the outage is felt at
# once, as a refused connection would be.
STATEMENT_TIMEOUT_SECONDS = 0.3
OUTAGE_SECONDS = 2.5


@asynccontextmanager
async def _state_with_short_statements(
    settings: Settings, servers: Servers
) -> AsyncIterator[AppState]:
    tuned = Runtime.connect(
        settings.model_copy(update={"operation_timeout_seconds": STATEMENT_TIMEOUT_SECONDS}),
        servers,
    )
    try:
        state: AppState = create_app(tuned, close_runtime=False).state.aperture
        yield state
    finally:
        await tuned.close()


@asynccontextmanager
async def _worker(state: AppState, queue: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(state, stop, queues=[queue], handle_signals=False))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def _user(state: AppState, sessions: ShardSessions, name: str) -> int:
    signed_in = await sign_up(
        state,
        sessions,
        username=name,
        email=f"{name}@example.com",
        password="password123",
        client_ip="127.0.0.1",
    )
    return signed_in.user.id


async def _notifications_of(sessions: ShardSessions, user_id: int) -> int:
    async with sessions.for_id(user_id) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.recipient_id == user_id)
        )
    return int(count or 0)


async def _owed(sessions: ShardSessions, handler: str) -> list[int]:
    per_shard = await sessions.scatter_all(
        lambda session: session.scalars(
            select(OutboxEvent.id).where(OutboxEvent.handler == handler)
        )
    )
    return [delivery_id for ids in per_shard.values() for delivery_id in ids]


@dataclass
class JobWatch:
    """What a job's record in Redis said while it was watched: its status, and when each
    of its runs began (by run number)."""

    job: Job | None = None
    starts: dict[int, float] = field(default_factory=dict)

    async def until(self, queue: Queue, key: str, *, deadline: float) -> Status | None:
        """Watch until the job has finished or ``deadline`` (monotonic) has passed."""
        while time.monotonic() < deadline:
            self.job = await queue.job(key)
            if self.job is not None and self.job.started:  # 0 again once it is requeued
                self.starts.setdefault(self.job.attempts, self.job.started / 1000)
            if self.job is not None and self.job.status in (Status.FAILED, Status.COMPLETE):
                break
            await asyncio.sleep(0.02)  # a run lasts a statement timeout at least: none missed
        return None if self.job is None else self.job.status


async def test_a_notification_rides_out_a_short_database_outage(
    settings: Settings, servers: Servers, runtime: Runtime
) -> None:
    async with _state_with_short_statements(settings, servers) as state:
        sessions = ShardSessions(state.runtime.databases)
        ana = await _user(state, sessions, "retry.ana")
        ben = await _user(state, sessions, "retry.ben")
        shard = sessions.shard_map.shard_for_id(ana)
        queue = state.runtime.queues.get(NOTIFICATIONS_QUEUE)
        watch = JobWatch()
        async with runtime.databases.engine_for_shard(shard).connect() as outage:
            # Ana's notifications cannot be written: her shard's table is locked, as by a
            # migration or a stalled server, for OUTAGE_SECONDS.
            await outage.execute(
                text(f"LOCK TABLE {shard_schema(shard)}.notifications IN ACCESS EXCLUSIVE MODE")
            )
            outage_began = time.monotonic()
            await follow(state, sessions, ben, ana)  # its inline handler fails: queued
            (delivery_id,) = await _owed(sessions, "notifications.follow")
            key = f"{delivery_id}:first"
            async with _worker(state, NOTIFICATIONS_QUEUE):
                status = await watch.until(queue, key, deadline=outage_began + OUTAGE_SECONDS)
                assert status != Status.FAILED, (
                    f"all {len(watch.starts)} runs spent within "
                    f"{time.monotonic() - outage_began:.2f}s of a {OUTAGE_SECONDS}s outage"
                )
                await outage.rollback()  # the outage ends
                status = await watch.until(queue, key, deadline=time.monotonic() + 30)

        assert status == Status.COMPLETE
        assert await _notifications_of(sessions, ana) == 1
        assert await _owed(sessions, "notifications.follow") == []
        # Each retry waited at least half its step (1 s, then 2 s, ...) after the run that
        # failed: the runs did not follow each other at once.
        policy = load_features().jobs["notifications.follow"].retry
        times = [watch.starts[run] for run in sorted(watch.starts)]
        assert len(times) >= 2
        for run, (before, after) in enumerate(itertools.pairwise(times), 1):
            step = min(policy.max_delay_seconds, policy.first_delay_seconds * 2 ** (run - 1))
            assert after - before >= STATEMENT_TIMEOUT_SECONDS + step / 2 - 0.05, times


async def test_a_delivery_whose_retries_run_out_stays_owed_for_the_sweeper(
    app_state: AppState,
) -> None:
    recorder = Recorder(seen=[], failures_left=2)

    @handles(
        PINGED,
        name="test.exhausted",
        queue="default",
        retry=RetryPolicy(attempts=2, first_delay_seconds=0.1, max_delay_seconds=0.1),
    )
    async def handle(state: AppState, sessions: ShardSessions, event: Pinged) -> None:
        await recorder.handle(event.number)

    sessions = ShardSessions(app_state.runtime.databases)
    queue = app_state.runtime.queues.get("default")
    try:
        async with sessions.shard(0) as session:
            owed = await events.emit(session, PINGED, Pinged(9))
        await events.relay(app_state, sessions, owed)
        watch = JobWatch()
        async with _worker(app_state, "default"):
            status = await watch.until(queue, f"{owed[0].id}:first", deadline=time.monotonic() + 20)
        assert status == Status.FAILED
        assert sorted(watch.starts) == [1, 2]
        assert recorder.seen == []
        assert await _owed(sessions, "test.exhausted") == [owed[0].id], "still owed"

        # The sweeper queues it again, and now it goes through.
        app_state.runtime.settings = app_state.runtime.settings.model_copy(
            update={"event_sweep_grace_seconds": 0}
        )
        assert await events.sweep(app_state) == 1
        async with _worker(app_state, "default"):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not await _owed(sessions, "test.exhausted"):
                    break  # delivered, and its row deleted
                await asyncio.sleep(0.02)
        assert recorder.seen == [9]
        assert await _owed(sessions, "test.exhausted") == []
    finally:
        events._handlers.pop("test.exhausted", None)
        jobs._registry.jobs.pop("test.exhausted", None)
