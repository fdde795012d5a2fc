"""Load parts of ``bench.feed``: home-feed reads against the fan-out-on-read baseline, and
the DeathStarBench social-network mix, both with k6 at fixed arrival rates.

Each server is an ``aperture serve`` subprocess pointed at the benchmark's own embedded
PostgreSQL and Valkey; only one runs at a time, so they never compete for the CPUs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aperture.seed import Graph, generate_graph, load_graph, read_edge_list
from bench.harness import (
    FEED_QUERY_10,
    FEED_QUERY_20,
    BenchEnv,
    Child,
    Runs,
    fmt,
    log,
    log_run,
    make_tokens,
    mark_active,
    progress_printer,
    reset_data,
    run_k6,
    start_api_server,
    warm_feeds,
    write_data,
)
from db.runtime import Runtime
from db.session import ShardSessions
from domain.state import AppState

GRAPH_SEED = 42
P99_LIMIT_MS = 1000.0
STRATEGIES = ("precomputed", "fanout_on_read")
MIX_KINDS = ("all", "feed", "timeline", "post")
PAUSE_SECONDS = 2.0
# The latency goal is stated at this rate: always measured for precomputed feeds.
GOAL_RATE = 200


@dataclass(frozen=True)
class StepOptions:
    rates: tuple[int, ...]
    duration_s: int
    runs: int
    warmup_s: int


@dataclass
class Step(Runs):
    """The runs of one rate against one server."""

    rate: int = 0

    def held_runs(self) -> int:
        return sum(run.held(P99_LIMIT_MS) for run in self.runs)

    def held(self) -> bool:
        """Held in a majority of runs: error rate 0, no dropped iterations, p99 < 1 s."""
        return self.held_runs() * 2 > len(self.runs)


def highest_held(steps: Sequence[Step]) -> int:
    held = [step.rate for step in steps if step.held()]
    return max(held) if held else 0


def step_through(
    script: str,
    server: Child,
    data: Path,
    options: StepOptions,
    work_dir: Path,
    kinds: Sequence[str],
    label: str,
    *,
    also_rate: int | None = None,
) -> list[Step]:
    """Warm up, then each rate ``runs`` times, lowest first; stop after a rate not held.

    ``also_rate`` (a goal's rate) is measured too if stepping did not reach it.
    """
    if options.warmup_s:
        run_k6(
            script,
            target=server,
            data=data,
            rate=min(options.rates),
            duration_s=options.warmup_s,
            work_dir=work_dir,
            kinds=kinds,
        )

    def measure(rate: int) -> Step:
        step = Step(rate=rate)
        for run_index in range(options.runs):
            time.sleep(PAUSE_SECONDS)  # let the server finish what the last run left
            result = run_k6(
                script,
                target=server,
                data=data,
                rate=rate,
                duration_s=options.duration_s,
                work_dir=work_dir,
                kinds=kinds,
            )
            step.runs.append(result)
            log_run(f"{label} {rate} req/s run {run_index + 1}", result)
        return step

    steps: list[Step] = []
    for rate in options.rates:
        steps.append(measure(rate))
        if not steps[-1].held():
            break
    if also_rate is not None and all(step.rate != also_rate for step in steps):
        steps.append(measure(also_rate))
    return sorted(steps, key=lambda step: step.rate)


# --- home-feed reads vs the fan-out-on-read baseline -------------------------------------


@dataclass(frozen=True)
class ReadsOptions:
    users: int
    posts_per_user: int
    viewers: int
    steps: StepOptions


@dataclass
class StrategyResult:
    strategy: str
    warm: float
    warm_errors: list[str]
    steps: list[Step]


@dataclass
class ReadsReport:
    options: ReadsOptions
    users: int
    follows: int
    seed_seconds: float
    results: list[StrategyResult]
    compared_pages: int
    differing_pages: list[str]
    web_processes: int

    def result(self, strategy: str) -> StrategyResult:
        return next(r for r in self.results if r.strategy == strategy)


async def run_reads(env: BenchEnv, options: ReadsOptions) -> ReadsReport:
    work_dir = env.work_dir
    rng = random.Random(GRAPH_SEED)
    async with env.connect() as runtime:
        state = AppState(runtime)
        started = time.perf_counter()
        graph = generate_graph(options.users, seed=GRAPH_SEED)
        user_ids = await load_graph(
            ShardSessions(runtime.databases),
            graph,
            posts_per_user=options.posts_per_user,
            progress=progress_printer(f"reads graph ({graph.users} users)"),
        )
        await mark_active(runtime, user_ids)
        viewers = rng.sample(user_ids, min(options.viewers, len(user_ids)))
        tokens = await make_tokens(state, viewers)
        seed_seconds = time.perf_counter() - started
        log(f"reads data ready in {seed_seconds:.1f}s ({len(tokens)} viewer tokens)")
        follows = len(graph.edges)
        del graph

    data = write_data(work_dir / "reads-tokens.json", tokens=tokens)
    results: list[StrategyResult] = []
    pages: dict[str, dict[int, list[str]]] = {}
    for strategy in STRATEGIES:
        server = start_api_server(
            env.settings,
            env.servers,
            env.code,
            {
                "APERTURE_FEED_READ_STRATEGY": strategy,
                "APERTURE_SERVE_RUNS_WORKERS": "false",
                # Every k6 request comes from one address: the per-IP limit would refuse
                # most of them (429). The edge's own cost is bench.edge's to measure.
                "APERTURE_RATE_LIMITS": "false",
            },
            work_dir / f"serve-{strategy}.log",
            processes=env.web_processes,
        )
        try:
            warm = await warm_feeds(server.url, tokens, FEED_QUERY_20)
            log(f"{strategy}: warm pass over {len(tokens)} viewers in {warm.seconds:.1f}s")
            pages[strategy] = warm.pages
            steps = step_through(
                "feed_reads",
                server,
                data,
                options.steps,
                work_dir,
                ("feed",),
                strategy,
                also_rate=GOAL_RATE if strategy == "precomputed" else None,
            )
        finally:
            server.stop()
        results.append(
            StrategyResult(
                strategy=strategy, warm=warm.seconds, warm_errors=warm.errors, steps=steps
            )
        )
    # Both strategies must give every viewer the same first page.
    first, second = (pages[strategy] for strategy in STRATEGIES)
    compared = sorted(set(first) & set(second))
    differing = [
        f"viewer {index}: {len(first[index])} vs {len(second[index])} posts"
        for index in compared
        if first[index] != second[index]
    ]
    return ReadsReport(
        options=options,
        users=len(user_ids),
        follows=follows,
        seed_seconds=seed_seconds,
        results=results,
        compared_pages=len(compared),
        differing_pages=differing,
        web_processes=env.web_processes,
    )


def render_reads(report: ReadsReport) -> list[str]:
    options = report.options
    processes = (
        "one uvicorn process"
        if report.web_processes == 1
        else f"`--processes {report.web_processes}`: {report.web_processes} uvicorn processes"
    )
    lines = [
        "### Home-feed reads: precomputed vs fan-out on read",
        "",
        f"Generated graph: {report.users:,} users (heavy-tailed, seed {GRAPH_SEED}), "
        f"{report.follows:,} follows, {options.posts_per_user} posts per user; "
        f"{options.viewers:,} viewers picked uniformly at random, one token each, each request "
        "by a uniformly random viewer. Query: `homeFeed(first: 20) { edges { node { id caption "
        "author { username } likeCount commentCount viewerHasLiked } } }`. "
        f"Each server is an `aperture serve` subprocess ({processes}) against the same "
        "data; `precomputed` is the default, `fanout_on_read` has "
        "`APERTURE_FEED_READ_STRATEGY=fanout_on_read`. Before measuring, every viewer's feed "
        "is read once (the precomputed feeds are built, as they are for active users) and k6 "
        f"runs {options.steps.warmup_s} s at the lowest rate. Each rate: "
        f"{options.steps.runs} k6 runs of {options.steps.duration_s} s "
        "(`constant-arrival-rate`); p50/p99 are the medians over runs. Held = error rate 0, "
        "no dropped iterations and p99 < 1 s in a majority of runs; stepping stops after the "
        f"first rate not held (for precomputed feeds, {GOAL_RATE} req/s, the goal's rate, is "
        "measured anyway).",
        "",
        "| Strategy | Rate req/s | Achieved ok req/s | p50 ms | p99 ms | Worst error rate "
        "| Most dropped | Server CPU | Held (runs) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for result in report.results:
        for step in result.steps:
            lines.append(
                f"| {result.strategy} | {step.rate} | {fmt(step.achieved())} | "
                f"{fmt(step.p50())} | {fmt(step.p99())} | {step.worst_error_rate():.2%} | "
                f"{step.most_dropped()} | {step.server_cpu():.0%} | "
                f"{'yes' if step.held() else 'no'} ({step.held_runs()}/{len(step.runs)}) |"
            )
    lines.append("")
    for result in report.results:
        lines.append(
            f"- {result.strategy}: highest rate held {highest_held(result.steps)} req/s; "
            f"warm pass {result.warm:.1f} s, {len(result.warm_errors)} errors"
            + (f" (first: `{result.warm_errors[0][:200]}`)" if result.warm_errors else "")
        )
    lines.append(
        f"- Same first page from both strategies for "
        f"{report.compared_pages - len(report.differing_pages)} of {report.compared_pages} "
        "viewers"
        + (
            f"; differing: {'; '.join(report.differing_pages[:5])}"
            if report.differing_pages
            else ""
        )
    )
    lines.append(
        "- Server CPU: CPU time of the `aperture serve` process group per wall second "
        "during the k6 run (100% = one core)."
    )
    return lines


# --- the DeathStarBench social-network mix ----------------------------------------------


@dataclass(frozen=True)
class MixGraph:
    name: str
    edges: Path | None = None
    users: int = 0


@dataclass(frozen=True)
class MixOptions:
    graphs: tuple[MixGraph, ...]
    viewers: int
    steps: StepOptions


@dataclass
class MixResult:
    graph: MixGraph
    users: int
    follows: int
    viewers: int
    seed_seconds: float
    warm_seconds: float
    warm_errors: list[str]
    steps: list[Step]
    drain_seconds: float
    pending_after: int


async def _pending_posts(runtime: Runtime) -> int:
    from domain.feed.fanout import pending_fan_outs

    return await pending_fan_outs(ShardSessions(runtime.databases))


def build_mix_graph(spec: MixGraph) -> Graph:
    if spec.edges is not None:
        return read_edge_list(spec.edges)
    return generate_graph(spec.users, seed=GRAPH_SEED)


async def run_mix_graph(env: BenchEnv, spec: MixGraph, options: MixOptions) -> MixResult:
    work_dir = env.work_dir
    reset_data(env.servers)
    rng = random.Random(GRAPH_SEED)
    async with env.connect() as runtime:
        state = AppState(runtime)
        started = time.perf_counter()
        graph = build_mix_graph(spec)
        log(f"{spec.name}: {graph.users} users, {len(graph.edges)} follows; loading")
        user_ids = await load_graph(
            ShardSessions(runtime.databases),
            graph,
            progress=progress_printer(f"mix {spec.name}"),
        )
        await mark_active(runtime, user_ids)
        viewers = rng.sample(user_ids, min(options.viewers, len(user_ids)))
        tokens = await make_tokens(state, viewers)
        seed_seconds = time.perf_counter() - started
        users, follows = graph.users, len(graph.edges)
        del graph
        log(f"{spec.name}: data ready in {seed_seconds:.1f}s ({len(tokens)} viewer tokens)")
        data = write_data(
            work_dir / f"mix-{spec.name}.json",
            tokens=tokens,
            usernames=[f"user{n}" for n in range(users)],
        )
        server = start_api_server(
            env.settings,
            env.servers,
            env.code,
            {"APERTURE_SERVE_RUNS_WORKERS": "true", "APERTURE_RATE_LIMITS": "false"},
            work_dir / f"serve-mix-{spec.name}.log",
            processes=env.web_processes,
        )
        try:
            warm = await warm_feeds(server.url, tokens, FEED_QUERY_10)
            log(f"{spec.name}: warm pass over {len(tokens)} viewers in {warm.seconds:.1f}s")
            steps = step_through(
                "feed_mix", server, data, options.steps, work_dir, MIX_KINDS, f"mix {spec.name}"
            )
            # Fan-outs still queued when the load stops: how long until they are all done.
            drained = time.perf_counter()
            pending = await _pending_posts(runtime)
            while pending and time.perf_counter() - drained < 120:
                await asyncio.sleep(0.5)
                pending = await _pending_posts(runtime)
            drain_seconds = time.perf_counter() - drained
        finally:
            server.stop()
        return MixResult(
            graph=spec,
            users=users,
            follows=follows,
            viewers=len(tokens),
            seed_seconds=seed_seconds,
            warm_seconds=warm.seconds,
            warm_errors=warm.errors,
            steps=steps,
            drain_seconds=drain_seconds,
            pending_after=pending,
        )


async def run_mix(env: BenchEnv, options: MixOptions) -> list[MixResult]:
    return [await run_mix_graph(env, spec, options) for spec in options.graphs]


def render_mix(options: MixOptions, results: Sequence[MixResult]) -> list[str]:
    lines = [
        "### DeathStarBench social-network mix",
        "",
        "60% `homeFeed(first: 10)` (same fields as above), 30% user timeline "
        "(`user(username: $u) { posts(first: 10) { edges { node { id caption likeCount } } } }` "
        "of a uniformly random user), 10% `createPost`; viewers and users picked uniformly. "
        "One `aperture serve` subprocess with `APERTURE_SERVE_RUNS_WORKERS=true` and "
        "`APERTURE_RATE_LIMITS=false`, so fan-out "
        "jobs run in the serving process and compete with reads for its CPU, as on one box; "
        "default settings (`fanout_follower_threshold` 10,000: bigger accounts are merged at "
        "read time). Every user is active; each viewer's feed is read once before measuring. "
        f"Each rate: {options.steps.runs} k6 run(s) of {options.steps.duration_s} s; "
        "stepping stops after the first rate not held.",
        "",
        "| Graph | Rate req/s | Achieved ok req/s | p50 ms | p99 ms | homeFeed p50/p99 ms "
        "| timeline p50/p99 ms | createPost p50/p99 ms | Error rate | Dropped | Server CPU "
        "| Held |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for result in results:
        for step in result.steps:
            lines.append(
                f"| {result.graph.name} | {step.rate} | {fmt(step.achieved())} | "
                f"{fmt(step.p50())} | {fmt(step.p99())} | "
                f"{fmt(step.p50('feed'))} / {fmt(step.p99('feed'))} | "
                f"{fmt(step.p50('timeline'))} / {fmt(step.p99('timeline'))} | "
                f"{fmt(step.p50('post'))} / {fmt(step.p99('post'))} | "
                f"{step.worst_error_rate():.2%} | {step.most_dropped()} | "
                f"{step.server_cpu():.0%} | {'yes' if step.held() else 'no'} |"
            )
    lines.append("")
    for result in results:
        lines.append(
            f"- {result.graph.name}: {result.users:,} users, {result.follows:,} follows, "
            f"{result.viewers:,} viewers with tokens; loaded in {result.seed_seconds:.0f} s; "
            f"warm pass {result.warm_seconds:.0f} s ({len(result.warm_errors)} errors); "
            f"highest rate held {highest_held(result.steps)} req/s; fan-outs still pending "
            f"when the load stopped drained in {result.drain_seconds:.1f} s"
            + (f" ({result.pending_after} still pending)" if result.pending_after else "")
        )
    return lines
