"""Explore serving (issue 12): ``explore(first: 24)`` at a fixed arrival rate, next to the
warm ``homeFeed(first: 20)`` of ``bench.read_path`` (the baseline) in the same server and
the same run, interleaved run by run (``bench/k6/explore_reads.js``), both with the same
post fields.

Data: a generated network (``aperture.seed.generate_graph``: heavy-tailed followers),
seeded with ``seed_graph`` and ``seed_media`` (likes, comments and reel views from
followers, which also fill Explore's interaction log), then Explore's model trained in
this process (``domain.explore.training.train``, as ``aperture train`` runs it), so every
viewer's candidates and the trending list are in Redis before the server starts. The
viewers are the people who follow the most accounts, among those with candidates. Server
CPU per request is the serve process's user+system CPU from /proc over each run, divided
by the requests it answered (as ``bench.media``).

The report is printed and written to ``bench/results/explore_serving.md``.

    .venv/bin/python -m bench.explore_serving [--users 2000] [--runs 3] [--duration 20] \
        [--rates 5,50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from aperture.seed import generate_graph, seed_graph, seed_media
from bench.harness import (
    FEED_QUERY_20,
    RESULTS_DIR,
    BenchEnv,
    K6Result,
    Runs,
    alternating,
    ask,
    command_line,
    describe_machine,
    embedded_platform,
    fmt,
    integers,
    log,
    log_run,
    make_tokens,
    mark_active,
    median,
    progress_printer,
    reset_data,
    run_k6,
    run_line,
    start_api_server,
    warm_feeds,
    write_data,
    write_report,
)
from bench.media import SERVE_SETTINGS
from db.explore.store import ExploreStore
from db.session import ShardSessions
from domain.explore.training import train
from domain.state import AppState

RESULTS_PATH = RESULTS_DIR / "explore_serving.md"
KINDS = ("feed", "explore")
QUERIES = {
    "feed": FEED_QUERY_20,
    "explore": "query { explore(first: 24) { edges { cursor node { id caption author "
    "{ username } likeCount commentCount viewerHasLiked } } } }",
}
FIELDS = {"feed": "homeFeed", "explore": "explore"}
NAMES = {
    "feed": "`homeFeed(first: 20)` (baseline)",
    "explore": "`explore(first: 24)`",
}
GRAPH_SEED = 42
VIEWERS = 100
WARM_UP_S = 5


@dataclass(frozen=True)
class Options:
    users: int
    runs: int
    duration: int
    rates: tuple[int, ...]


@dataclass(frozen=True)
class Dataset:
    tokens: list[str]
    description: str


async def seed_and_train(env: BenchEnv, options: Options) -> Dataset:
    """The network, its media and interactions, Explore's model; the viewers' tokens."""
    async with env.connect() as runtime:
        sessions = ShardSessions(runtime.databases)
        graph = generate_graph(options.users, seed=GRAPH_SEED)
        seeded = await seed_graph(
            sessions, graph, posts_per_user=2, progress=progress_printer("graph")
        )
        user_ids = seeded.user_ids
        media = await seed_media(
            sessions, runtime.object_store, graph, user_ids, progress=progress_printer("media")
        )
        log(f"media: {media}")
        await mark_active(runtime, user_ids)
        state = AppState(runtime)
        started = time.perf_counter()
        done = await train(state)
        if done is None:
            raise RuntimeError("too few interactions to train Explore's model")
        trained = (
            f"model {done.version} trained on the {done.device} in "
            f"{time.perf_counter() - started:.1f} s: {done.interactions:,} interactions, "
            f"{done.users:,} people, {done.items:,} items"
        )
        log(trained)
        following: dict[int, int] = {}
        for follower, _ in graph.edges:
            following[follower] = following.get(follower, 0) + 1
        viewers: list[int] = []
        for node in sorted(following, key=lambda node: (-following[node], node)):
            mine, _ = await state.of(ExploreStore).candidates(user_ids[node])
            if mine:
                viewers.append(node)
            if len(viewers) == VIEWERS:
                break
        if not viewers:
            raise RuntimeError("no viewer has Explore candidates after training")
        counts = [following[node] for node in viewers]
        description = (
            f"{options.users:,} users from `generate_graph(seed={GRAPH_SEED})` "
            f"({len(graph.edges):,} follows), two posts each with seeded media, likes, "
            f"comments and reel views ({media.new_likes:,} likes, {media.new_comments:,} "
            f"comments, {media.new_views:,} views); {trained}. {len(viewers)} viewers with "
            f"candidates, following {min(counts)} to {max(counts)} accounts."
        )
        tokens = await make_tokens(state, [user_ids[node] for node in viewers])
        return Dataset(tokens=tokens, description=description)


async def page_sizes(url: str, tokens: Sequence[str], kind: str) -> list[int]:
    """Each viewer's first page once, through HTTP: how many posts it holds."""
    sizes: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for token in tokens:
            answer = await ask(client, QUERIES[kind], token=token)
            if answer.data is None:
                raise RuntimeError(f"{kind}: {answer.error}")
            sizes.append(len(answer.data[FIELDS[kind]]["edges"]))
    return sizes


def measure(env: BenchEnv, options: Options, dataset: Dataset) -> list[str]:
    data = write_data(env.work_dir / "explore-tokens.json", tokens=dataset.tokens)
    server = start_api_server(
        env.settings, env.servers, env.code, SERVE_SETTINGS, env.work_dir / "serve-explore.log"
    )
    try:
        warm = asyncio.run(warm_feeds(server.url, dataset.tokens, FEED_QUERY_20))
        if warm.errors:
            raise RuntimeError(f"warm pass failed: {warm.errors[:3]}")
        sizes = {kind: asyncio.run(page_sizes(server.url, dataset.tokens, kind)) for kind in KINDS}
        results: dict[tuple[int, str], list[K6Result]] = {
            (rate, kind): [] for rate in options.rates for kind in KINDS
        }
        # Rates in the order given, each rate's runs interleaved kind by kind; the first
        # round of each rate warms every kind.
        for rate, round_index in ((r, i) for r in options.rates for i in range(options.runs + 1)):
            for kind in alternating(KINDS, round_index):
                result = run_k6(
                    "explore_reads",
                    target=server,
                    data=data,
                    rate=rate,
                    duration_s=options.duration if round_index else WARM_UP_S,
                    work_dir=env.work_dir,
                    kinds=["all"],
                    extra={"KIND": kind},
                )
                heading = f"{kind} at {rate}/s run {round_index}"
                log_run(heading, result, cpu_ms=result.cpu_ms_per_answered)
                if round_index:
                    results[rate, kind].append(result)
    finally:
        server.stop()
    return render(results, options, dataset, sizes)


def render(
    results: dict[tuple[int, str], list[K6Result]],
    options: Options,
    dataset: Dataset,
    sizes: dict[str, list[int]],
) -> list[str]:
    lines = [
        "### Explore serving",
        "",
        dataset.description,
        "",
        "One web process (`aperture serve`, no jobs); k6 `constant-arrival-rate`, the same "
        f"rate for both reads ({', '.join(f'{rate}' for rate in options.rates)} req/s, in "
        f"that order), {options.duration} s per run, {options.runs} runs per read and rate, "
        f"interleaved (order alternating), after a {WARM_UP_S} s warm-up run of each. "
        "Same post fields in both: `id caption author { username } likeCount "
        "commentCount viewerHasLiked` (Explore adds each edge's `cursor`).",
        "",
        "| Rate req/s | Read | Posts per page (min / median / max) | p50 ms median (runs) | "
        "p99 ms median (runs) | Failed / requests (dropped) | "
        "Server CPU ms/request median (runs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate, kind in results:
        runs = Runs(results[rate, kind])
        p50, p99, cpu = runs.p50s(), runs.p99s(), runs.cpu_ms_per_answered()
        page = sizes[kind]
        lines.append(
            f"| {rate} | {NAMES[kind]} | {min(page)} / {median(page):.0f} / {max(page)} | "
            f"**{fmt(median(p50))}** ({', '.join(fmt(value) for value in p50)}) | "
            f"**{fmt(median(p99))}** ({', '.join(fmt(value) for value in p99)}) | "
            f"{runs.failed} / {runs.requests} ({runs.dropped}) | "
            f"**{fmt(median(cpu), 2)}** ({', '.join(fmt(value, 2) for value in cpu)}) |"
        )
    lines.append("")
    for rate in options.rates:
        feed = median(Runs(results[rate, "feed"]).cpu_ms_per_answered())
        explore = median(Runs(results[rate, "explore"]).cpu_ms_per_answered())
        lines.append(
            f"- At {rate} req/s, median CPU per page: {feed:.2f} ms for the home feed, "
            f"{explore:.2f} ms for Explore ({explore / feed:.2f}x)."
        )
    samples = [
        sample for runs in results.values() for run in runs for sample in run.failure_samples
    ]
    if samples:
        lines += ["", "Failure samples:", "", *[f"    {sample[:300]}" for sample in samples[:3]]]
    return lines


def run(options: Options, command: str) -> None:
    started = time.perf_counter()
    with embedded_platform("explore", logs="explore-serving-logs") as env:
        reset_data(env.servers)
        dataset = asyncio.run(seed_and_train(env, options))
        log(f"seeded and trained at {time.perf_counter() - started:.0f} s")
        section = measure(env, options, dataset)
    seconds = time.perf_counter() - started
    write_report(
        RESULTS_PATH,
        [
            run_line(command, seconds=seconds, code=env.code),
            "",
            *describe_machine(load_generator="k6"),
            "",
            *section,
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--rates", default="5,50", help="req/s, comma-separated, in order")
    arguments = parser.parse_args(argv)
    options = Options(
        users=arguments.users,
        runs=arguments.runs,
        duration=arguments.duration,
        rates=integers(arguments.rates),
    )
    run(options, command_line("bench.explore_serving", sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
