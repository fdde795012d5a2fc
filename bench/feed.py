"""Home-feed benchmark (issue 4): fan-out on write, feed reads against the fan-out-on-read
baseline, and the DeathStarBench social-network mix.

Starts embedded PostgreSQL and Valkey in a fresh temporary directory, migrates, and runs
the selected parts, each on data of its own:

* ``fanout``: time from ``createPost`` to the post being in every follower's feed (p50,
  p99) for authors with 1k, 10k and 100k followers, and feed inserts per second, with an
  ``aperture worker`` subprocess doing the fan-out;
* ``reads``: ``homeFeed(first: 20)`` at stepped fixed arrival rates (k6,
  ``constant-arrival-rate``) against ``aperture serve`` with precomputed feeds, then the
  same against a second server with ``APERTURE_FEED_READ_STRATEGY=fanout_on_read``;
* ``mix``: 60% home feed, 30% user timeline, 10% createPost on socfb-Reed98 and on a
  generated heavy-tailed graph, fan-out workers inside the serving process.

Markdown tables are printed and written to ``bench/results/feed.md``; each part also
keeps ``bench/results/feed-<part>.md`` and ``.json``, so parts run separately still
end up in one report with the goals table.

    python -m bench.feed [--part fanout|reads|mix|all] [--quick] [options]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.feed_fanout import FanoutOptions, render_fanout, run_fanout
from bench.feed_load import (
    GOAL_RATE,
    MixGraph,
    MixOptions,
    ReadsOptions,
    StepOptions,
    highest_held,
    render_mix,
    render_reads,
    run_mix,
    run_reads,
)
from bench.harness import (
    DEFAULT_EDGES,
    RESULTS_DIR,
    BenchEnv,
    argument_parser,
    command_line,
    describe_machine,
    embedded_platform,
    fmt,
    integers,
    log,
    reset_data,
    utc_now,
    write_report,
)

RESULTS_PATH = RESULTS_DIR / "feed.md"
PARTS = ("fanout", "reads", "mix")

# The goals (GOAL_RATE, the rate of the latency goal, lives in feed_load).
GOAL_P99_MS = 25.0
GOAL_SPEEDUP = 5.0
GOAL_INSERTS = 50_000
GOAL_VISIBLE_SIZE = 10_000
GOAL_VISIBLE_MS = 1000.0


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...]
    quick: bool
    web_processes: int
    tag: str  # suffix of the result files, for runs beside the main one
    fanout: FanoutOptions
    reads: ReadsOptions
    mix: MixOptions


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argument_parser("bench.feed", __doc__)
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (small data, short steps: ~1 minute)"
    )
    parser.add_argument(
        "--web-processes", type=int, default=1, help="`aperture serve --processes` of servers"
    )
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the result files (feed-<part>-<tag>.md): a run beside the main one, "
        "left out of the goals table",
    )
    fan = parser.add_argument_group("fanout")
    fan.add_argument("--fanout-sizes", default="1000,10000,100000", help="followers per author")
    fan.add_argument(
        "--fanout-posts",
        type=int,
        default=20,
        help="measured posts per author (a quarter of it, at least 3, from 50k followers up)",
    )
    fan.add_argument("--burst-posts", type=int, default=10, help="posts for the throughput test")
    fan.add_argument("--burst-size", type=int, default=10_000, help="followers of that author")
    reads = parser.add_argument_group("reads")
    reads.add_argument("--reads-users", type=int, default=10_000)
    reads.add_argument("--reads-viewers", type=int, default=1000)
    reads.add_argument("--posts-per-user", type=int, default=5)
    reads.add_argument("--rates", default="25,50,75,100,150,200,300,400", help="req/s steps")
    reads.add_argument("--duration", type=int, default=12, help="seconds per k6 run")
    reads.add_argument("--runs", type=int, default=3, help="k6 runs per rate")
    reads.add_argument("--warmup", type=int, default=5, help="k6 warm-up seconds per server")
    mix = parser.add_argument_group("mix")
    mix.add_argument(
        "--mix-graphs",
        default="reed98,100000",
        help="comma list: 'reed98' (the --edges file) or a user count for generate_graph",
    )
    mix.add_argument("--edges", type=Path, default=DEFAULT_EDGES)
    mix.add_argument("--mix-viewers", type=int, default=2000, help="viewer tokens at most")
    mix.add_argument("--mix-rates", default="25,50,75,100,150,200,300")
    mix.add_argument("--mix-duration", type=int, default=15)
    mix.add_argument("--mix-runs", type=int, default=1)
    args = parser.parse_args(argv)

    if args.quick:
        sizes: tuple[int, ...] = (1000,)
        fanout = FanoutOptions(sizes=sizes, posts={1000: 5}, burst_posts=5, burst_size=1000)
        reads_options = ReadsOptions(
            users=1000,
            posts_per_user=5,
            viewers=150,
            steps=StepOptions(rates=(25, 50), duration_s=5, runs=1, warmup_s=2),
        )
        mix_options = MixOptions(
            graphs=(MixGraph("reed98", edges=args.edges),),
            viewers=150,
            steps=StepOptions(rates=(25,), duration_s=5, runs=1, warmup_s=0),
        )
    else:
        sizes = integers(args.fanout_sizes)
        if args.burst_size not in sizes:
            parser.error("--burst-size must be one of --fanout-sizes")
        fanout = FanoutOptions(
            sizes=sizes,
            posts={
                size: (args.fanout_posts if size < 50_000 else max(3, args.fanout_posts // 4))
                for size in sizes
            },
            burst_posts=args.burst_posts,
            burst_size=args.burst_size,
        )
        reads_options = ReadsOptions(
            users=args.reads_users,
            posts_per_user=args.posts_per_user,
            viewers=args.reads_viewers,
            steps=StepOptions(
                rates=integers(args.rates),
                duration_s=args.duration,
                runs=args.runs,
                warmup_s=args.warmup,
            ),
        )
        graphs: list[MixGraph] = []
        for name in args.mix_graphs.split(","):
            name = name.strip()
            if name == "reed98":
                graphs.append(MixGraph("reed98", edges=args.edges))
            elif name:
                graphs.append(MixGraph(f"generated-{int(name) // 1000}k", users=int(name)))
        mix_options = MixOptions(
            graphs=tuple(graphs),
            viewers=args.mix_viewers,
            steps=StepOptions(
                rates=integers(args.mix_rates),
                duration_s=args.mix_duration,
                runs=args.mix_runs,
                warmup_s=args.warmup,
            ),
        )
    if any(graph.edges is not None and not graph.edges.is_file() for graph in mix_options.graphs):
        parser.error(f"{args.edges} is not a file")
    parts = PARTS if args.part == "all" else (args.part,)
    return Options(
        parts=parts,
        quick=args.quick,
        web_processes=args.web_processes,
        tag=f"-{args.tag}" if args.tag else "",
        fanout=fanout,
        reads=reads_options,
        mix=mix_options,
    )


# --- running -----------------------------------------------------------------------------


@dataclass
class PartOutput:
    lines: list[str]
    goals: dict[str, Any]
    seconds: float
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after


async def run_part(part: str, env: BenchEnv, options: Options) -> PartOutput:
    started = time.perf_counter()
    reset_data(env.servers)
    if part == "fanout":
        fanout = await run_fanout(env, options.fanout)
        sizes = options.fanout.sizes
        goals: dict[str, Any] = {
            "inserts_per_s": fanout.inserts_per_second,
            "largest": max(sizes),
            "largest_single_rate": fanout.single_post_rate(max(sizes)),
            "visible_p99_ms": (
                fanout.visible_p99_ms(GOAL_VISIBLE_SIZE) if GOAL_VISIBLE_SIZE in sizes else None
            ),
            "missing": sum(t.missing for t in fanout.timings)
            + (fanout.burst.missing if fanout.burst else 0),
        }
        lines = render_fanout(fanout)
    elif part == "reads":
        reads = await run_reads(env, options.reads)
        pre = reads.result("precomputed").steps
        base = reads.result("fanout_on_read").steps
        at_goal = next((step for step in pre if step.rate == GOAL_RATE), None)
        goals = {
            "p99_at_goal_rate": at_goal.p99() if at_goal else None,
            "goal_rate_errors": at_goal.worst_error_rate() if at_goal else None,
            "held_precomputed": highest_held(pre),
            "held_baseline": highest_held(base),
            "precomputed_held_top": highest_held(pre) == max(options.reads.steps.rates),
            "top_rate": max(options.reads.steps.rates),
            "differing_pages": len(reads.differing_pages),
            "warm_errors": sum(len(r.warm_errors) for r in reads.results),
        }
        lines = render_reads(reads)
    else:
        mixed = await run_mix(env, options.mix)
        goals = {"held": {result.graph.name: highest_held(result.steps) for result in mixed}}
        lines = render_mix(options.mix, mixed)
    return PartOutput(lines=lines, goals=goals, seconds=time.perf_counter() - started)


def run(options: Options, command: str) -> None:
    started = time.perf_counter()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with embedded_platform("feed", logs="feed-logs") as platform:
        env = replace(platform, web_processes=options.web_processes)
        for part in options.parts:
            log(f"part {part}")
            load_before = os.getloadavg()[0]
            output = asyncio.run(run_part(part, env, options))
            output.load = (load_before, os.getloadavg()[0])
            save_part(part + options.tag, output, command, env)
            log(f"part {part} done in {output.seconds:.0f}s")
    write_report(RESULTS_PATH, combined_report(time.perf_counter() - started, command))


# --- report ------------------------------------------------------------------------------


def save_part(part: str, output: PartOutput, command: str, env: BenchEnv) -> None:
    when = utc_now()
    header = [
        f"_Part `{part}`: `{command}`, finished {when}, {output.seconds:.0f} s; code: "
        f"{env.code.description}; web processes per server: {env.web_processes}; "
        f"load average {output.load[0]:.2f} before, {output.load[1]:.2f} after._",
        "",
    ]
    (RESULTS_DIR / f"feed-{part}.md").write_text("\n".join(header + output.lines) + "\n")
    (RESULTS_DIR / f"feed-{part}.json").write_text(
        json.dumps({"goals": output.goals, "seconds": output.seconds, "finished": when})
    )


def _load_goals(part: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"feed-{part}.json"
    if not path.exists():
        return None
    stored: dict[str, Any] = json.loads(path.read_text())["goals"]
    return stored


def goals_table() -> list[str]:
    fanout, reads = _load_goals("fanout"), _load_goals("reads")
    rows: list[tuple[str, str, str]] = []
    if reads is not None:
        p99 = reads["p99_at_goal_rate"]
        errors = reads["goal_rate_errors"]
        if p99 is None:
            rows.append(
                (
                    f"homeFeed(first: 20) p99 < {GOAL_P99_MS:.0f} ms at {GOAL_RATE} req/s",
                    "not reached (stepping stopped below it)",
                    "no",
                )
            )
        else:
            met = p99 < GOAL_P99_MS and errors == 0
            rows.append(
                (
                    f"homeFeed(first: 20) p99 < {GOAL_P99_MS:.0f} ms at {GOAL_RATE} req/s",
                    f"p99 {p99:.1f} ms, error rate {errors:.2%}",
                    "yes" if met else "no",
                )
            )
        pre, base = reads["held_precomputed"], reads["held_baseline"]
        bound = ">= " if reads["precomputed_held_top"] else ""
        if base:
            ratio = pre / base
            measured = f"{pre} vs {base} req/s held: {bound}{ratio:.1f}x"
            met = ratio >= GOAL_SPEEDUP
        else:
            measured = f"{pre} vs {base} req/s held (baseline held no step)"
            met = pre > 0
        if reads["precomputed_held_top"]:
            measured += f" (precomputed held the top step, {reads['top_rate']} req/s)"
        rows.append(
            (
                f"Highest held rate >= {GOAL_SPEEDUP:.0f}x the fan-out-on-read baseline",
                measured,
                "yes" if met else ("unknown (bounded by the top step)" if bound else "no"),
            )
        )
    if fanout is not None:
        inserts = fanout["inserts_per_s"]
        rows.append(
            (
                f"Feed inserts >= {GOAL_INSERTS:,}/s",
                f"{fmt(inserts, 0)}/s (concurrent fan-outs); one "
                f"{fanout['largest']:,}-follower post alone: "
                f"{fmt(fanout['largest_single_rate'], 0)}/s",
                "yes" if inserts == inserts and inserts >= GOAL_INSERTS else "no",
            )
        )
        visible = fanout["visible_p99_ms"]
        rows.append(
            (
                f"Post visible to all {GOAL_VISIBLE_SIZE:,} followers within 1 s at p99",
                "not measured" if visible is None else f"p99 {visible:.0f} ms",
                "-" if visible is None else ("yes" if visible < GOAL_VISIBLE_MS else "no"),
            )
        )
    if not rows:
        return []
    lines = ["### Goals", "", "| Goal | Measured | Met? |", "|---|---|---|"]
    lines += [f"| {goal} | {measured} | {met} |" for goal, measured, met in rows]
    return lines


def combined_report(total_seconds: float, command: str) -> list[str]:
    lines = [
        "# Home feed benchmark (issue 4)",
        "",
        f"- Command (this invocation): `{command}`; wall time {total_seconds:.0f} s",
        *describe_machine(load_generator="k6"),
        "",
    ]
    for part in PARTS:
        # The main run's file first, then any tagged runs beside it.
        paths = [RESULTS_DIR / f"feed-{part}.md", *sorted(RESULTS_DIR.glob(f"feed-{part}-*.md"))]
        for path in paths:
            if path.exists():
                lines += [path.read_text().rstrip("\n"), ""]
    return lines + goals_table()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    run(parse_options(arguments), command_line("bench.feed", arguments))


if __name__ == "__main__":
    main()
