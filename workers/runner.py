"""Runs the registered work (``domain/jobs.py``): a saq worker per queue for its jobs and
event deliveries, and a loop per periodic task.

While Redis is down the workers wait between failed dequeues instead of retrying in a
busy loop, and saq's tracebacks for the unreachable server are dropped (the breaker in
``db/redis.py`` logs the outage once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from saq import Job, Queue, Worker
from saq.types import Context

from db.errors import is_unavailable
from db.queue import UNREACHABLE
from domain.jobs import JobKind, PeriodicTask, Registry, load_features
from domain.state import AppState

log = logging.getLogger(__name__)

# After a failed dequeue (Redis down) a worker slot waits this long before the next.
DEQUEUE_RETRY_SECONDS = 1.0


class UnknownQueue(ValueError):
    pass


def selected_queues(registry: Registry, names: Sequence[str] | None) -> list[str]:
    known = registry.queues()
    if not names:
        return known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise UnknownQueue(
            f"no such queue: {', '.join(unknown)} (the queues are: {', '.join(known)})"
        )
    return list(dict.fromkeys(names))


def _saq_function(state: AppState, kind: JobKind) -> Callable[..., Awaitable[Any]]:
    async def run(ctx: Context, **kwargs: Any) -> Any:
        try:
            return await kind.run(state, **kwargs)
        except Exception as error:
            _back_off(ctx["job"], kind, error)
            raise

    run.__name__ = kind.name
    return run


def _back_off(job: Job, kind: JobKind, error: Exception) -> None:
    """Left to itself, saq runs a failed job again at once: every run spent within a
    moment of an outage. The next run waits instead, longer after each failure (saq
    reads ``retry_delay`` when it queues the job again). A job cut off by a stopping
    worker raises no exception here and is queued again at once."""
    job.retry_delay = kind.retry.delay_after(job.attempts)
    job.retry_backoff = False
    if not is_unavailable(error):
        return  # saq logs it with its traceback: ours to fix
    # A dependency is down (its breaker logs the outage); saq's traceback is dropped.
    if job.retryable:
        log.warning(
            "job %s (%s) failed, run %d of %d: %s; again in %.1fs",
            job.key,
            kind.name,
            job.attempts,
            job.retries,
            error,
            job.retry_delay,
        )
    else:
        log.warning(
            "job %s (%s) failed all %d runs, the last: %s", job.key, kind.name, job.retries, error
        )


def build_worker(
    state: AppState, queue: str, *, handle_signals: bool, burst: bool = False
) -> Worker[Context]:
    registry = load_features()
    saq_queue = state.runtime.queues.get(queue)
    worker = Worker(
        saq_queue,
        functions=[(kind.name, _saq_function(state, kind)) for kind in registry.jobs_on(queue)],
        concurrency=state.runtime.settings.worker_concurrency,
        burst=burst,
        dequeue_timeout=0.5 if burst else 0.0,
    )
    if not handle_signals:
        # Inside `serve`, uvicorn owns SIGINT/SIGTERM; saq must not take them over.
        worker.SIGNALS = []
    _back_off_when_unreachable(saq_queue)
    return worker


async def _run_periodic(state: AppState, task: PeriodicTask, stop: asyncio.Event) -> None:
    interval = task.interval(state.runtime.settings)
    while not stop.is_set():
        try:
            await task.run(state)
        except Exception as error:
            if not is_unavailable(error):
                log.exception("periodic task %s failed; retrying in %.0fs", task.name, interval)
            else:
                # A server it needs is down (an object store, a database): no bug of ours.
                log.warning(
                    "periodic task %s failed: %s; retrying in %.0fs", task.name, error, interval
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_workers(
    state: AppState,
    stop: asyncio.Event,
    *,
    queues: Sequence[str] | None = None,
    handle_signals: bool,
    on_ready: Callable[[list[str]], Awaitable[None]] | None = None,
) -> None:
    """The given queues' workers and periodic tasks (all when none are given) until
    ``stop`` is set or, with ``handle_signals``, SIGINT or SIGTERM arrives. A job cut off
    by the stop is left for its retry or the outbox sweeper: every job is safe to redo."""
    registry = load_features()
    names = selected_queues(registry, queues)
    workers = [build_worker(state, name, handle_signals=handle_signals) for name in names]
    worker_tasks = [asyncio.create_task(worker.start()) for worker in workers]
    periodic_tasks = [
        asyncio.create_task(_run_periodic(state, task, stop))
        for name in names
        for task in registry.periodic_on(name)
    ]
    if on_ready is not None:
        await on_ready(names)
    stop_task = asyncio.create_task(stop.wait())
    # A signal stops saq's workers; any of them ending ends the rest.
    await asyncio.wait([*worker_tasks, stop_task], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)
    await asyncio.gather(*worker_tasks, *periodic_tasks, return_exceptions=True)
    stop_task.cancel()


async def drain_jobs(state: AppState, queues: Sequence[str] | None = None) -> None:
    """Run queued jobs until every queue is empty, for callers that need the work done
    before they go on (tests, the seeder)."""
    registry = load_features()
    for _ in range(10):
        # A job may queue another on a queue already drained: go round until all are idle.
        busy = False
        for name in selected_queues(registry, queues):
            queue = state.runtime.queues.get(name)
            if await _queued(queue):
                busy = True
                await build_worker(state, name, handle_signals=False, burst=True).start()
        if not busy:
            return


async def _queued(queue: Queue) -> int:
    try:
        return await queue.count("queued")
    except RedisConnectionError:
        # A connection saq pooled before a Redis restart fails once; a new one may not.
        return await queue.count("queued")


class _DropUnreachableTracebacks(logging.Filter):
    """saq logs a traceback for every failed upkeep round (several a second) while Redis
    is unreachable, and for every job run failed by a dependency that is down; the
    breaker has already said so once, and ``_back_off`` once per run."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not (isinstance(error, UNREACHABLE) or is_unavailable(error))


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
        except UNREACHABLE:
            await asyncio.sleep(DEQUEUE_RETRY_SECONDS)
            raise

    queue.dequeue = patient_dequeue  # type: ignore[method-assign]
    queue._aperture_patient_dequeue = True  # type: ignore[attr-defined]
