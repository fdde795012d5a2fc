"""Fan-out part of ``bench.feed``: time from ``createPost`` to the post being in every
follower's feed, and feed inserts per second.

A star graph: one author per size (1k, 10k, 100k followers by default) sharing one pool
of followers, every user active. Posts are created through the real service path
(``domain.posts.posts.create_post``: SQL insert, caches, enqueue) while an
``aperture worker`` subprocess runs the fan-out jobs, as in production. The benchmark
polls Redis for the follower the fan-out reaches last (followers are walked in id
order), then checks every follower's feed; the time includes queueing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aperture.seed import Graph, load_graph
from bench.harness import (
    BenchEnv,
    fmt,
    log,
    mark_active,
    median,
    percentile,
    progress_printer,
    start_worker,
)
from db.feed.store import encode_member, feed_key
from db.session import ShardSessions
from domain.feed.fanout import fan_out_pending
from domain.posts import posts as posts_service
from domain.state import AppState

# Above the biggest author, so every author here is fanned out on write.
THRESHOLD = 10_000_000
POLL_SECONDS = 0.002
VISIBLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class FanoutOptions:
    sizes: tuple[int, ...]
    posts: dict[int, int]  # size -> measured posts
    burst_posts: int  # posts created back to back for the throughput test
    burst_size: int  # followers of the author used for the throughput test


@dataclass(frozen=True)
class PostTiming:
    followers: int
    create_ms: float  # the create_post call (SQL insert, caches, enqueue)
    visible_ms: float  # createPost called -> in every follower's feed
    missing: int  # followers whose feed lacked the post at the end (should be 0)


@dataclass(frozen=True)
class BurstResult:
    posts: int
    followers: int
    inserts: int
    seconds: float
    missing: int


@dataclass(frozen=True)
class FanoutReport:
    options: FanoutOptions
    timings: list[PostTiming]
    burst: BurstResult | None
    seed_seconds: float
    worker_concurrency: int
    batch_size: int

    @property
    def inserts_per_second(self) -> float:
        if self.burst is None:
            return float("nan")
        return self.burst.inserts / self.burst.seconds

    def visible_p99_ms(self, size: int) -> float:
        return percentile([t.visible_ms for t in self.timings if t.followers == size], 99)

    def single_post_rate(self, size: int) -> float:
        """Feed inserts per second of one post's fan-out, queueing included (median)."""
        return median(
            [(size + 1) / (t.visible_ms / 1000) for t in self.timings if t.followers == size]
        )


async def _missing(state: AppState, follower_ids: Sequence[int], post_ids: Sequence[int]) -> int:
    """Follower feeds lacking any of ``post_ids`` (ZMSCORE per feed, pipelined)."""
    members = [encode_member(post_id) for post_id in post_ids]
    missing = 0
    for start in range(0, len(follower_ids), 5000):
        async with state.runtime.redis.pipeline(transaction=False) as pipe:
            for follower in follower_ids[start : start + 5000]:
                pipe.zmscore(feed_key(follower), members)
            for scores in await pipe.execute():
                missing += any(score is None for score in scores)
    return missing


async def _wait_visible(
    state: AppState, follower_ids: Sequence[int], post_ids: Sequence[int]
) -> tuple[float, int]:
    """Poll the last follower until it has every post, then check everyone; returns the
    time (perf_counter) when all followers had them and how many never did."""
    redis = state.runtime.redis
    last = feed_key(max(follower_ids))
    members = [encode_member(post_id) for post_id in post_ids]
    deadline = time.perf_counter() + VISIBLE_TIMEOUT
    while True:
        scores = await redis.zmscore(last, members)
        if all(score is not None for score in scores):
            seen = time.perf_counter()
            break
        if time.perf_counter() > deadline:
            return time.perf_counter(), await _missing(state, follower_ids, post_ids)
        await asyncio.sleep(POLL_SECONDS)
    missing = await _missing(state, follower_ids, post_ids)
    while missing and time.perf_counter() < deadline:
        # The last follower is not the last one reached: keep checking everyone.
        await asyncio.sleep(0.05)
        missing = await _missing(state, follower_ids, post_ids)
        seen = time.perf_counter()
    return seen, missing


async def _wait_done(sessions: ShardSessions, post_ids: Sequence[int]) -> None:
    """Until the worker has marked the posts done (its last SQL after the pushes)."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if not any([await fan_out_pending(sessions, post_id) for post_id in post_ids]):
            return
        await asyncio.sleep(0.05)
    log(f"warning: fan-out of {post_ids} not marked done after 60 s")


async def run_fanout(env: BenchEnv, options: FanoutOptions) -> FanoutReport:
    settings = env.settings.model_copy(update={"fanout_follower_threshold": THRESHOLD})
    async with env.connect(settings) as runtime:
        state = AppState(runtime)
        sessions = ShardSessions(runtime.databases)
        sizes = sorted(options.sizes)
        authors = len(sizes)
        pool = max(sizes)
        graph = Graph(
            users=authors + pool,
            edges=[
                (authors + follower, author)
                for author, size in enumerate(sizes)
                for follower in range(size)
            ],
        )
        started = time.perf_counter()
        user_ids = await load_graph(
            sessions,
            graph,
            prefix="fan",
            posts_per_user=0,
            progress=progress_printer(f"star graph ({pool} followers)"),
        )
        await mark_active(runtime, user_ids)
        seed_seconds = time.perf_counter() - started
        log(f"star graph loaded in {seed_seconds:.1f}s")
        pool_ids = user_ids[authors:]
        followers_of = {size: pool_ids[:size] for size in sizes}
        author_of = {size: user_ids[index] for index, size in enumerate(sizes)}

        worker = start_worker(
            settings, env.servers, env.code, {}, env.work_dir / "fanout-worker.log"
        )
        try:
            # Unmeasured: the worker's connection pools and imports.
            warm = await posts_service.create_post(
                state, sessions, author_of[sizes[0]], caption="warm-up"
            )
            await _wait_visible(state, followers_of[sizes[0]], [warm.id])
            await _wait_done(sessions, [warm.id])

            timings: list[PostTiming] = []
            for size in sizes:
                for index in range(options.posts.get(size, 0)):
                    begun = time.perf_counter()
                    post = await posts_service.create_post(
                        state, sessions, author_of[size], caption=f"fan-out {size} #{index}"
                    )
                    created = time.perf_counter()
                    seen, missing = await _wait_visible(state, followers_of[size], [post.id])
                    timings.append(
                        PostTiming(
                            followers=size,
                            create_ms=(created - begun) * 1000,
                            visible_ms=(seen - begun) * 1000,
                            missing=missing,
                        )
                    )
                    await _wait_done(sessions, [post.id])
                log(
                    f"{size} followers: visible p50 "
                    f"{median([t.visible_ms for t in timings if t.followers == size]):.0f} ms"
                )

            burst: BurstResult | None = None
            if options.burst_posts:
                size = options.burst_size
                begun = time.perf_counter()
                posts = [
                    await posts_service.create_post(
                        state, sessions, author_of[size], caption=f"burst #{index}"
                    )
                    for index in range(options.burst_posts)
                ]
                post_ids = [post.id for post in posts]
                seen, missing = await _wait_visible(state, followers_of[size], post_ids)
                burst = BurstResult(
                    posts=len(posts),
                    followers=size,
                    inserts=len(posts) * (size + 1),
                    seconds=seen - begun,
                    missing=missing,
                )
                await _wait_done(sessions, post_ids)
                log(f"burst: {burst.inserts / burst.seconds:,.0f} feed inserts/s")
        finally:
            worker.stop()
        return FanoutReport(
            options=options,
            timings=timings,
            burst=burst,
            seed_seconds=seed_seconds,
            worker_concurrency=settings.worker_concurrency,
            batch_size=settings.fanout_batch_size,
        )


def render_fanout(report: FanoutReport) -> list[str]:
    options = report.options
    lines = [
        "### Fan-out on write",
        "",
        f"Star graph: {len(options.sizes)} authors with "
        + ", ".join(f"{size:,}" for size in sorted(options.sizes))
        + f" followers (one shared pool of {max(options.sizes):,} users, all active; loaded in "
        f"{report.seed_seconds:.0f} s). `fanout_follower_threshold` = {THRESHOLD:,} so every "
        f"author is fanned out on write. One `aperture worker` subprocess "
        f"(`worker_concurrency` {report.worker_concurrency}, `fanout_batch_size` "
        f"{report.batch_size}); posts created one at a time through "
        "`domain.posts.posts.create_post`, each waited for before the next. "
        "Visible = from the `create_post` call to the post being in every follower's feed in "
        f"Redis (polled every {POLL_SECONDS * 1000:.0f} ms), so it includes the SQL insert, "
        "the enqueue and the queue wait.",
        "",
        "| Author's followers | Posts | createPost call p50 ms | Visible to all p50 ms "
        "| Visible to all p99 ms | Max ms | Feed inserts/s of one post (median) "
        "| Feeds missing the post |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for size in sorted(options.sizes):
        rows = [t for t in report.timings if t.followers == size]
        if not rows:
            continue
        visible = [t.visible_ms for t in rows]
        lines.append(
            f"| {size:,} | {len(rows)} | {fmt(median([t.create_ms for t in rows]))} | "
            f"{fmt(median(visible))} | {fmt(percentile(visible, 99))} | {fmt(max(visible))} | "
            f"{fmt(report.single_post_rate(size), 0)} | {sum(t.missing for t in rows)} |"
        )
    lines += [
        "",
        "p99 over this few posts is close to the maximum; it is the nearest-rank "
        "interpolation of the samples, not a tail estimate.",
    ]
    if report.burst is not None:
        burst = report.burst
        lines += [
            "",
            f"Throughput: {burst.posts} posts by the {burst.followers:,}-follower author created "
            f"back to back, so up to {report.worker_concurrency} fan-out jobs run at once in the "
            "worker.",
            "",
            "| Posts | Feed inserts | Seconds to all visible | Feed inserts/s "
            "| Feeds missing a post |",
            "|--:|--:|--:|--:|--:|",
            f"| {burst.posts} | {burst.inserts:,} | {burst.seconds:.2f} | "
            f"{fmt(report.inserts_per_second, 0)} | {burst.missing} |",
        ]
    return lines
