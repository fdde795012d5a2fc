"""Durable events after commit (the outbox), the job registry, and how a handler plugs in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.events.models import OutboxEvent
from db.feed.caches import FeedCaches
from db.session import ShardSessions
from domain import events, jobs
from domain.accounts.sessions import sign_up
from domain.events import Topic, handles
from domain.jobs import load_features
from domain.posts.events import POST_CREATED, PostCreated
from domain.posts.posts import create_post
from domain.state import AppState
from workers.runner import drain_jobs


@dataclass(frozen=True)
class Pinged:
    number: int


PINGED = Topic("test.pinged", Pinged)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Recorder:
    """What a test handler saw, and how many times it should fail before succeeding."""

    seen: list[int]
    failures_left: int = 0

    async def handle(self, number: int) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("a handler failure the test asked for")
        self.seen.append(number)


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Handler names a test registers, removed again afterwards: the registry is global."""
    names: list[str] = []
    yield names
    for name in names:
        events._handlers.pop(name, None)
        jobs._registry.jobs.pop(name, None)


def _register(
    names: list[str],
    recorder: Recorder,
    *,
    name: str,
    inline: bool = False,
    topic: Topic[Pinged] = PINGED,
) -> None:
    @handles(topic, name=name, queue="default", inline=inline)
    async def handle(state: AppState, sessions: ShardSessions, event: Pinged) -> None:
        await recorder.handle(event.number)

    names.append(name)


async def _owed(sessions: ShardSessions, handler: str) -> int:
    counts = await sessions.scatter_all(
        lambda session: session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.handler == handler)
        )
    )
    return sum(int(count or 0) for count in counts.values())


async def test_an_event_commits_with_its_change_or_not_at_all(
    app_state: AppState, registered: list[str]
) -> None:
    recorder = Recorder(seen=[])
    _register(registered, recorder, name="test.commit")
    sessions = ShardSessions(app_state.runtime.databases)

    async def change_that_fails() -> None:
        async with sessions.shard(0) as session:
            await events.emit(session, PINGED, Pinged(1))
            raise RuntimeError("the change fails after the event was written")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert await _owed(sessions, "test.commit") == 0
    async with sessions.shard(0) as session:
        owed = await events.emit(session, PINGED, Pinged(2))
    assert await _owed(sessions, "test.commit") == 1
    await events.relay(app_state, sessions, owed)
    await drain_jobs(app_state)
    assert recorder.seen == [2]
    assert await _owed(sessions, "test.commit") == 0, "a finished delivery leaves the outbox"


async def test_a_crash_between_commit_and_enqueue_loses_no_event(
    app_state: AppState, registered: list[str]
) -> None:
    recorder = Recorder(seen=[])
    _register(registered, recorder, name="test.crash")
    sessions = ShardSessions(app_state.runtime.databases)
    async with sessions.shard(1) as session:
        await events.emit(session, PINGED, Pinged(7))
    # The writer died here: nothing was relayed. The sweeper finds the event once it is
    # older than the grace period.
    assert await events.sweep(app_state) == 0, "too young: its writer may still relay it"
    app_state.runtime.settings = app_state.runtime.settings.model_copy(
        update={"event_sweep_grace_seconds": 0}
    )
    assert await events.sweep(app_state) == 1
    await drain_jobs(app_state)
    assert recorder.seen == [7]
    assert await _owed(sessions, "test.crash") == 0
    assert await events.sweep(app_state) == 0


async def test_a_failed_handler_keeps_its_event_until_a_later_run_succeeds(
    app_state: AppState, registered: list[str]
) -> None:
    recorder = Recorder(seen=[], failures_left=1)
    _register(registered, recorder, name="test.retry")
    sessions = ShardSessions(app_state.runtime.databases)
    async with sessions.shard(2) as session:
        (delivery,) = await events.emit(session, PINGED, Pinged(3))
    with pytest.raises(RuntimeError):
        await events.deliver(app_state, sessions, delivery.id)
    assert await _owed(sessions, "test.retry") == 1
    assert await events.deliver(app_state, sessions, delivery.id) is True
    assert recorder.seen == [3]
    # At least once: a duplicate delivery of a finished event does nothing.
    assert await events.deliver(app_state, sessions, delivery.id) is False
    assert recorder.seen == [3]


async def test_an_inline_handler_runs_before_relay_returns_and_falls_back_to_the_queue(
    app_state: AppState, registered: list[str]
) -> None:
    quick, flaky = Recorder(seen=[]), Recorder(seen=[], failures_left=1)
    _register(registered, quick, name="test.inline", inline=True)
    _register(registered, flaky, name="test.inline_flaky", inline=True)
    sessions = ShardSessions(app_state.runtime.databases)
    async with sessions.shard(3) as session:
        owed = await events.emit(session, PINGED, Pinged(5))
    await events.relay(app_state, sessions, owed)
    assert quick.seen == [5], "an inline handler has run when relay returns"
    assert flaky.seen == [], "the failed one was queued instead"
    assert await _owed(sessions, "test.inline") == 0
    assert await _owed(sessions, "test.inline_flaky") == 1
    await drain_jobs(app_state)
    assert flaky.seen == [5]
    assert await _owed(sessions, "test.inline_flaky") == 0


async def test_a_new_handler_plugs_into_an_existing_topic(
    app_state: AppState, registered: list[str]
) -> None:
    """What notifications or the recommender will do: react to posts without touching the
    posts feature."""
    created: list[int] = []

    @handles(POST_CREATED, name="test.on_post", queue="default")
    async def on_post(state: AppState, sessions: ShardSessions, event: PostCreated) -> None:
        created.append(event.post_id)

    registered.append("test.on_post")
    sessions = ShardSessions(app_state.runtime.databases)
    author = await sign_up(
        app_state,
        sessions,
        username="ev.author",
        email="ev.author@example.com",
        password="password123",
        client_ip="127.0.0.1",
    )
    post = await create_post(app_state, sessions, author.user.id, caption="hello")
    assert await _owed(sessions, "test.on_post") == 1
    assert await _owed(sessions, "feed.fan_out") == 1, "the feed's handler still gets it"
    await drain_jobs(app_state)
    assert created == [post.id]
    assert await app_state.of(FeedCaches).feeds.all_entries(author.user.id) == [post.id]


def test_every_feature_registers_its_work() -> None:
    registry = load_features()
    assert {"feed.fan_out", "feed.backfill", "feed.remove_followee"} <= set(registry.jobs)
    assert "events.sweep" in registry.periodic
    assert {"default", "feed"} <= set(registry.queues())
    assert all(kind.queue == "feed" for kind in registry.jobs_on("feed"))


def test_worker_refuses_an_unknown_queue(project_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aperture.cli", "worker", "--queue", "nope"],
        cwd=PROJECT_ROOT,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no such queue: nope" in result.stderr
    assert "feed" in result.stderr, "the message lists the queues there are"
    assert "Traceback" not in result.stderr
