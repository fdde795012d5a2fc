"""The job registry: every feature registers its background work here, in its own
``domain/<feature>/jobs.py``, and ``aperture worker`` runs what is registered.

Three kinds of work:

- a **job** is queued by name with keyword arguments and runs on a worker of its queue;
- an **event handler** (``domain/events.py``) runs once per event of its topic;
- a **periodic task** runs every few seconds on each worker of its queue.

Each has a queue, so each kind of work scales on its own (``aperture worker --queue
feed``). Nothing here imports a feature: ``load_features`` finds them, so a new feature
registers its work without editing another feature's files.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import domain
from domain.features import feature_modules
from domain.state import AppState
from infra.settings import Settings

DEFAULT_QUEUE = "default"

JobFunction = Callable[..., Awaitable[object]]
PeriodicFunction = Callable[[AppState], Awaitable[object]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed job runs again: up to ``attempts`` runs in all, the first retry after
    about ``first_delay_seconds``, each next wait twice the last, up to
    ``max_delay_seconds``. The default rides out an outage of a minute (the waits add up
    to 61 to 123 s) before the outbox's sweeper takes over."""

    attempts: int = 8
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after run number ``attempt`` (from 1) failed: the step, less up
        to half of it at random, so that jobs failed together by one outage come back
        spread out, never sooner than half the step."""
        step = min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** max(attempt - 1, 0))
        return step * (1 - random.random() / 2)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    run: JobFunction  # (state, **kwargs)
    timeout_seconds: int
    retry: RetryPolicy


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    queue: str
    run: PeriodicFunction
    interval: Callable[[Settings], float]


@dataclass
class Registry:
    jobs: dict[str, JobKind] = field(default_factory=dict)
    periodic: dict[str, PeriodicTask] = field(default_factory=dict)

    def add_job(self, kind: JobKind) -> None:
        if kind.name in self.jobs and self.jobs[kind.name] != kind:
            raise ValueError(f"two jobs are named {kind.name!r}")
        self.jobs[kind.name] = kind

    def add_periodic(self, task: PeriodicTask) -> None:
        if task.name in self.periodic and self.periodic[task.name] != task:
            raise ValueError(f"two periodic tasks are named {task.name!r}")
        self.periodic[task.name] = task

    def queues(self) -> list[str]:
        names = {kind.queue for kind in self.jobs.values()}
        names |= {task.queue for task in self.periodic.values()}
        return sorted(names)

    def jobs_on(self, queue: str) -> list[JobKind]:
        return [kind for kind in self.jobs.values() if kind.queue == queue]

    def periodic_on(self, queue: str) -> list[PeriodicTask]:
        return [task for task in self.periodic.values() if task.queue == queue]


_registry = Registry()
_loaded = False


def job(
    name: str,
    *,
    queue: str = DEFAULT_QUEUE,
    timeout_seconds: int = 600,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Callable[[JobFunction], JobFunction]:
    """Register ``async def run(state, **kwargs)`` as the job ``name``."""

    def register(run: JobFunction) -> JobFunction:
        _registry.add_job(
            JobKind(name=name, queue=queue, run=run, timeout_seconds=timeout_seconds, retry=retry)
        )
        return run

    return register


def periodic(
    name: str, *, queue: str = DEFAULT_QUEUE, interval: Callable[[Settings], float]
) -> Callable[[PeriodicFunction], PeriodicFunction]:
    """Register ``async def run(state)`` to run every ``interval(settings)`` seconds."""

    def register(run: PeriodicFunction) -> PeriodicFunction:
        _registry.add_periodic(PeriodicTask(name=name, queue=queue, run=run, interval=interval))
        return run

    return register


def load_features() -> Registry:
    """Import every ``domain.<feature>.jobs`` module once, so that all work is registered."""
    global _loaded
    if not _loaded:
        feature_modules(domain, "jobs")
        _loaded = True
    return _registry


async def enqueue(state: AppState, name: str, *, key: str, **kwargs: Any) -> bool:
    """Queue the job ``name`` once per ``key``; False if it could not be queued now."""
    kind = load_features().jobs[name]
    return await state.runtime.queues.enqueue(
        kind.queue,
        kind.name,
        key=key,
        kwargs=kwargs,
        timeout_seconds=kind.timeout_seconds,
        retries=kind.retry.attempts,
    )
