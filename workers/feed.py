"""Fan-out on write: push a new post into every active follower's precomputed feed.

Durability comes from PostgreSQL, not the queue. A post is committed with
``fanout_state = 'pending'``; a job (saq, on Redis) walks the author's followers in
batches, each pushed to every follower's feed by one script call (ZADD and trim inside
Redis); only then does it mark the post ``done``. Every step is idempotent (ZADD of a
member that is there changes nothing), so a job that runs twice, or is killed half-way
and rerun, converges. A sweeper re-enqueues posts left pending, which covers a killed
worker, a failed enqueue and a Redis that lost its queue.

While Redis is down (``db/redis.py``) a new post is still created: its job is queued by
the same process once Redis answers again (the sweeper covers a process that exits
first); the sweeper skips its round; the worker waits between failed dequeues instead
of retrying in a busy loop, and saq's tracebacks for the unreachable server are dropped
(the breaker logs the outage once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from saq import Job, Queue, Worker
from saq.types import Context

from db.accounts import repository as accounts_repo
from db.feed import repository as feed_repo
from db.ids import lowest_id_at
from db.redis import health_of, redis_available
from db.session import ShardSessions
from graphql_api.state import AppState

log = logging.getLogger(__name__)

FAN_OUT_JOB = "fan_out_post"
JOB_TIMEOUT_SECONDS = 600
SWEEP_BATCH = 500
# An enqueue (on saq's own Redis client, which has no socket timeout) may take this long.
ENQUEUE_TIMEOUT_SECONDS = 1.0
# After a failed dequeue (Redis down) a worker slot waits this long before the next.
DEQUEUE_RETRY_SECONDS = 1.0
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


@dataclass(frozen=True)
class FanOutResult:
    post_id: int
    feeds_written: int
    skipped_inactive: int
    merged_at_read_time: bool


async def enqueue_fan_out(
    queue: Queue, post_id: int, *, attempt: str = "first", redis: Redis | None = None
) -> bool:
    """Queue a post's fan-out. A failure is only logged: the sweeper finds pending posts.

    With ``redis`` (the API's client and its breaker): while Redis is down nothing is
    tried, and a job that could not be queued is queued again once Redis answers.
    """
    if redis is not None and not redis_available(redis):
        _enqueue_after_recovery(queue, redis, post_id, attempt)
        return False
    try:
        try:
            job = await _enqueue(queue, post_id, attempt)
        except RedisConnectionError:
            # A connection saq pooled before a Redis restart fails once; a new one may not.
            job = await _enqueue(queue, post_id, attempt)
    except (RedisError, OSError, TimeoutError) as error:
        if redis is not None and isinstance(error, _UNREACHABLE):
            # Same server as the caches: the breaker takes it from here (one WARNING).
            health_of(redis).failed(error)
            _enqueue_after_recovery(queue, redis, post_id, attempt)
            return False
        log.warning("could not enqueue fan-out of post %s (%s); the sweeper will", post_id, error)
        return False
    return job is not None


async def _enqueue(queue: Queue, post_id: int, attempt: str) -> Job | None:
    return await asyncio.wait_for(
        queue.enqueue(
            FAN_OUT_JOB,
            post_id=post_id,
            key=f"fanout:{post_id}:{attempt}",
            timeout=JOB_TIMEOUT_SECONDS,
            retries=3,
        ),
        ENQUEUE_TIMEOUT_SECONDS,
    )


def _enqueue_after_recovery(queue: Queue, redis: Redis, post_id: int, attempt: str) -> None:
    # One try once Redis is back (without ``redis``: no second deferral); then the sweeper.
    health_of(redis).after_recovery(
        f"fan-out:{post_id}", lambda: enqueue_fan_out(queue, post_id, attempt=attempt)
    )


async def large_account_ids(state: AppState, sessions: ShardSessions) -> set[int]:
    threshold = state.runtime.settings.fanout_follower_threshold

    async def load() -> list[int]:
        per_shard = await sessions.scatter_all(
            lambda session: feed_repo.large_account_ids(session, threshold=threshold)
        )
        return [user_id for ids in per_shard.values() for user_id in ids]

    return await state.large_accounts.members(0, load=load)


async def note_follower_count(
    state: AppState, sessions: ShardSessions, user_id: int, follower_count: int
) -> None:
    """Keep the large-account set right when an account crosses the threshold."""
    is_large = follower_count > state.runtime.settings.fanout_follower_threshold
    if (user_id in await large_account_ids(state, sessions)) != is_large:
        await state.large_accounts.changed(0)


async def fan_out(state: AppState, sessions: ShardSessions, post_id: int) -> FanOutResult:
    settings = state.runtime.settings
    async with sessions.for_id(post_id) as session:
        post = await feed_repo.get_post_for_fanout(session, post_id)
        author = await accounts_repo.get_user(session, post.author_id) if post else None
    if post is None or post.fanout_state == "done":
        return FanOutResult(post_id, 0, 0, merged_at_read_time=False)
    if post.deleted_at is not None or author is None:
        async with sessions.for_id(post_id) as session:
            await feed_repo.mark_fanout_done(session, post_id)
        return FanOutResult(post_id, 0, 0, merged_at_read_time=False)

    feeds = state.feeds
    # The author sees their own post at once, whatever their audience.
    written = await feeds.push([author.id], [post_id])
    if author.follower_count > settings.fanout_follower_threshold:
        # A large account's posts are merged into feeds at read time (workers would take
        # minutes per post otherwise); make sure readers know it is large.
        await note_follower_count(state, sessions, author.id, author.follower_count)
        async with sessions.for_id(post_id) as session:
            await feed_repo.mark_fanout_done(session, post_id)
        return FanOutResult(post_id, written, 0, merged_at_read_time=True)

    active_since = time.time() - settings.feed_active_days * 86400
    cursor = post.fanout_cursor
    skipped = 0
    while True:
        async with sessions.for_id(author.id) as session:
            followers = await accounts_repo.follower_ids_page(
                session, author.id, after_follower_id=cursor, limit=settings.fanout_batch_size
            )
        if not followers:
            break
        active = await feeds.active_since(followers, active_since)
        skipped += len(followers) - len(active)
        written += await feeds.push(active, [post_id])
        cursor = followers[-1]
        async with sessions.for_id(post_id) as session:
            await feed_repo.save_fanout_cursor(session, post_id, cursor)
    async with sessions.for_id(post_id) as session:
        await feed_repo.mark_fanout_done(session, post_id)
    return FanOutResult(post_id, written, skipped, merged_at_read_time=False)


async def sweep_pending(state: AppState, sessions: ShardSessions) -> int:
    """Re-enqueue fan-outs pending longer than the grace period; returns how many."""
    try:
        await state.runtime.redis.ping()  # while Redis is down, the breaker's probe
    except RedisError:
        return 0  # nothing can be queued now; the breaker logged the outage
    grace = state.runtime.settings.fanout_sweep_grace_seconds
    older_than = lowest_id_at(datetime.now(UTC) - timedelta(seconds=grace))
    per_shard = await sessions.scatter_all(
        lambda session: feed_repo.pending_fanouts(
            session, older_than_id=older_than, limit=SWEEP_BATCH
        )
    )
    # saq refuses a key whose job is still unfinished, and the job of a killed worker stays
    # "active" until saq's own sweep gives up on it; a key per grace window gets past it
    # while still de-duplicating the sweeps within one window.
    attempt = f"sweep-{int(time.time() // max(grace, 1.0))}"
    count = 0
    for post_ids in per_shard.values():
        for post_id in post_ids:
            count += await enqueue_fan_out(state.runtime.queue, post_id, attempt=attempt)
    return count


def build_worker(state: AppState, *, handle_signals: bool, burst: bool = False) -> Worker[Context]:
    async def fan_out_post(ctx: Context, *, post_id: int) -> dict[str, int]:
        result = await fan_out(state, ShardSessions(state.runtime.databases), post_id)
        return {"feeds_written": result.feeds_written, "skipped_inactive": result.skipped_inactive}

    worker = Worker(
        state.runtime.queue,
        functions=[(FAN_OUT_JOB, fan_out_post)],
        concurrency=state.runtime.settings.worker_concurrency,
        burst=burst,
        dequeue_timeout=0.5 if burst else 0.0,
    )
    if not handle_signals:
        # Inside `serve`, uvicorn owns SIGINT/SIGTERM; saq must not take them over.
        worker.SIGNALS = []
    _back_off_when_unreachable(state.runtime.queue)
    return worker


class _DropUnreachableTracebacks(logging.Filter):
    """saq logs a traceback for every failed upkeep round (several a second) while Redis
    is unreachable; the breaker has already said so once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _UNREACHABLE))


_SAQ_LOG_FILTER = _DropUnreachableTracebacks()


def _back_off_when_unreachable(queue: Queue) -> None:
    """saq's worker retries a failed dequeue at once: while Redis is down that is a busy
    loop of connection attempts in every worker slot (over ten thousand a second, in the
    API's own process under ``serve``). Each failure now waits a little first."""
    logging.getLogger("saq").addFilter(_SAQ_LOG_FILTER)  # idempotent
    if getattr(queue, "_aperture_patient_dequeue", False):
        return
    dequeue = queue.dequeue

    async def patient_dequeue(*args: Any, **kwargs: Any) -> Job | None:
        try:
            return await dequeue(*args, **kwargs)
        except _UNREACHABLE:
            await asyncio.sleep(DEQUEUE_RETRY_SECONDS)
            raise

    queue.dequeue = patient_dequeue  # type: ignore[method-assign]
    queue._aperture_patient_dequeue = True  # type: ignore[attr-defined]


async def run_sweeper(state: AppState, stop: asyncio.Event) -> None:
    interval = state.runtime.settings.fanout_sweep_interval_seconds
    while not stop.is_set():
        try:
            requeued = await sweep_pending(state, ShardSessions(state.runtime.databases))
            if requeued:
                log.info("sweeper re-enqueued %d pending fan-outs", requeued)
        except Exception:
            log.exception("fan-out sweep failed; retrying in %.0fs", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_workers(
    state: AppState,
    stop: asyncio.Event,
    *,
    handle_signals: bool,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Fan-out workers plus the sweeper until ``stop`` is set (or a signal arrives)."""
    worker = build_worker(state, handle_signals=handle_signals)
    worker_task = asyncio.create_task(worker.start())
    sweeper_task = asyncio.create_task(run_sweeper(state, stop))
    if on_ready is not None:
        await on_ready()
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait([worker_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    await worker.stop()
    await asyncio.gather(worker_task, sweeper_task, return_exceptions=True)
    stop_task.cancel()


async def drain_jobs(state: AppState) -> None:
    """Run queued jobs to completion and return, for callers that need fan-out finished
    before they go on (the tests)."""
    worker = build_worker(state, handle_signals=False, burst=True)
    await worker.start()
