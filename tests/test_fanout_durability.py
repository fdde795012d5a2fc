"""A worker killed with SIGKILL in the middle of a fan-out, and a queue lost with it,
still leave the post in every active follower's feed once a worker runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from aperture.seed import Graph, load_graph
from db.feed.activity import ACTIVE_USERS_KEY
from db.feed.store import feed_key
from db.posts.models import Post
from db.runtime import Runtime
from db.session import ShardSessions
from domain import events
from domain.feed.fanout import fan_out_pending
from domain.posts.posts import create_post
from domain.state import AppState
from infra.servers import Servers, servers_environment
from tests.helpers import GraphQLClient
from workers.runner import drain_jobs

FOLLOWERS = 1500


def _start_worker(servers: Servers, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aperture.cli", "worker"],
        env={
            **env,
            **servers_environment(servers),
            "APERTURE_FANOUT_BATCH_SIZE": "5",
            "APERTURE_WORKER_CONCURRENCY": "2",
            "APERTURE_EVENT_SWEEP_INTERVAL_SECONDS": "0.5",
            "APERTURE_EVENT_SWEEP_GRACE_SECONDS": "1",
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def _fanout_progress(sessions: ShardSessions, post_id: int) -> tuple[str, int]:
    """("pending" while the post's delivery is in the outbox, else "done"; its cursor)."""
    async with sessions.for_id(post_id) as session:
        cursor = await session.scalar(select(Post.fanout_cursor).where(Post.id == post_id))
    pending = await fan_out_pending(sessions, post_id)
    return ("pending" if pending else "done"), int(cursor or 0)


async def _feeds_with(state: AppState, follower_ids: list[int], post_id: int) -> int:
    member = f"{post_id:019d}"
    async with state.runtime.redis.pipeline(transaction=False) as pipe:
        for follower in follower_ids:
            pipe.zscore(feed_key(follower), member)
        scores = await pipe.execute()
    return sum(score is not None for score in scores)


async def test_sigkill_mid_fan_out_loses_no_follower(
    runtime: Runtime,
    gql: GraphQLClient,
    state: AppState,
    servers: Servers,
    project_env: dict[str, str],
    tmp_path: Path,
) -> None:
    sessions = ShardSessions(runtime.databases)
    star = Graph(users=FOLLOWERS + 1, edges=[(n, 0) for n in range(1, FOLLOWERS + 1)])
    user_ids = await load_graph(sessions, star, prefix="kill", posts_per_user=0)
    author_id, follower_ids = user_ids[0], user_ids[1:]
    now = time.time()
    await runtime.redis.zadd(ACTIVE_USERS_KEY, {str(u): now for u in user_ids})

    log = tmp_path / "worker.log"
    worker = _start_worker(servers, project_env, log)
    try:
        deadline = time.monotonic() + 30
        while b"worker ready" not in log.read_bytes():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)

        post = await create_post(state, sessions, author_id, caption="to everyone")
        # Kill the worker while the fan-out is under way: some batches done, not all.
        deadline = time.monotonic() + 30
        while True:
            fanout_state, cursor = await _fanout_progress(sessions, post.id)
            if cursor > 0:
                break
            assert fanout_state == "pending", "fan-out finished before it could be killed"
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)

    fanout_state, _ = await _fanout_progress(sessions, post.id)
    reached = await _feeds_with(state, follower_ids, post.id)
    assert fanout_state == "pending"
    assert 0 < reached < FOLLOWERS, "the kill landed in the middle of the fan-out"

    # Lose the queue too, as if Redis had restarted without it.
    queue_keys = [key async for key in runtime.redis.scan_iter("saq:*")]
    if queue_keys:
        await runtime.redis.delete(*queue_keys)

    worker = _start_worker(servers, project_env, log)
    try:
        deadline = time.monotonic() + 90
        while (await _fanout_progress(sessions, post.id))[0] != "done":
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    assert await _feeds_with(state, follower_ids, post.id) == FOLLOWERS


async def test_failed_enqueue_is_swept(runtime: Runtime, state: AppState) -> None:
    """A post whose job never reached the queue is found pending in PostgreSQL."""

    sessions = ShardSessions(runtime.databases)
    star = Graph(users=3, edges=[(1, 0), (2, 0)])
    user_ids = await load_graph(sessions, star, prefix="swept", posts_per_user=0)
    post = await create_post(state, sessions, user_ids[0], caption="lost job")
    await runtime.redis.zadd(ACTIVE_USERS_KEY, {str(u): time.time() for u in user_ids})
    await runtime.redis.delete(*[key async for key in runtime.redis.scan_iter("saq:*")])
    state.runtime.settings = state.runtime.settings.model_copy(
        update={"event_sweep_grace_seconds": 0}
    )
    await asyncio.sleep(0.01)
    assert await events.sweep(state) == 1
    await drain_jobs(state)
    assert (await _fanout_progress(sessions, post.id))[0] == "done"
    assert await _feeds_with(state, user_ids[1:], post.id) == 2
