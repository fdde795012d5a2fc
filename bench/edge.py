"""Public-edge benchmark (issue 7): what the operation guard costs a warm home-feed page,
and how long the server takes to answer hostile documents.

Starts embedded PostgreSQL and Valkey in a fresh temporary directory, migrates, seeds the
socfb-Reed98 graph (every user active, a bearer token per viewer) and measures:

* ``micro``: in this process, timeit-style (GC off, each call timed): the cost analysis
  of the feed document uncached (``graphql_api.cost.analyse``) and cached
  (``graphql_api.guard._costs.cost``), ``RateLimiter.acquire`` against the embedded Valkey
  (a real round trip), and, for scale, parsing and standard validation of that document;
* ``e2e``: two ``aperture serve`` subprocesses on the same data, one with the rate limits
  on (default code path; buckets so large that nothing is refused) and one with
  ``APERTURE_RATE_LIMITS=false``, driven by k6 at fixed arrival rates with the feed
  benchmark's ``homeFeed(first: 20)`` page from uniformly random viewers, runs interleaved;
  server CPU per request from the process's own accounting (/proc), p50/p99, errors;
* ``ab``: the same comparison without k6's noise: two instances of the app in this
  process (limits on, limits off), the same viewer's page on both in turn, CPU per request;
* ``hostile``: hostile documents (fragment chains, doubling aliases, 100 KB and 1 MB
  documents, nested ``followers(first: 100)``, documents at the fragment, spread and
  repeat limits...) sent over HTTP to the rate-limited server, each repetition a new
  document (a comment differs) so that no cache helps; wall time per answer, the server's
  CPU, the code and limit it was refused with, and for those that pass the guard the time
  of graphql-core's standard validation, in this process.

The report is printed and written to ``bench/results/edge.md`` (raw figures in
``edge.json``, server and k6 logs in ``edge-logs/``).

    python -m bench.edge [--quick] [--rates 50,100] [--runs 5] [--duration 10]
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import DocumentNode, GraphQLError, parse, specified_rules, validate

from aperture.seed import load_graph, read_edge_list
from bench.harness import (
    FEED_QUERY_20,
    RESULTS_DIR,
    BenchEnv,
    Child,
    K6Result,
    LoadOptions,
    Runs,
    add_seed_arguments,
    alternating,
    argument_parser,
    ask_once,
    command_line,
    connected,
    describe_machine,
    embedded_platform,
    fmt,
    integers,
    log,
    log_run,
    make_tokens,
    mark_active,
    median,
    percentile,
    progress_printer,
    run_k6,
    spread,
    start_api_server,
    utc_now,
    warm_feeds,
    write_data,
    write_report,
)
from db.rate_limits import Quota, RateLimiter
from db.runtime import Runtime
from db.session import ShardSessions
from domain.state import AppState
from graphql_api.cost import (
    MAX_FRAGMENTS,
    MAX_REPEATED_RESPONSE_NAME,
    MAX_SPREADS,
    Limits,
    TooComplex,
    analyse,
)
from graphql_api.guard import SafeStringsRule, _costs
from graphql_api.schema import schema
from infra.servers import Servers
from infra.settings import Settings

RESULTS_PATH = RESULTS_DIR / "edge.md"
DATA_PATH = RESULTS_DIR / "edge.json"
GRAPH_SEED = 42
PAUSE_SECONDS = 1.0

# Buckets no benchmark load can empty: the limiter runs (one Lua call per operation,
# charged to the client address and the viewer) but never refuses.
HUGE_CAPACITY = 1_000_000_000
HUGE_PER_SECOND = 100_000_000
LIMITED = "rate limits on"
UNLIMITED = "rate limits off"
SERVER_SETTINGS: dict[str, dict[str, str]] = {
    LIMITED: {
        "APERTURE_RATE_LIMITS": "true",
        "APERTURE_RATE_LIMIT_IP_CAPACITY": str(HUGE_CAPACITY),
        "APERTURE_RATE_LIMIT_IP_PER_SECOND": str(HUGE_PER_SECOND),
        "APERTURE_RATE_LIMIT_VIEWER_CAPACITY": str(HUGE_CAPACITY),
        "APERTURE_RATE_LIMIT_VIEWER_PER_SECOND": str(HUGE_PER_SECOND),
    },
    UNLIMITED: {"APERTURE_RATE_LIMITS": "false"},
}


@dataclass(frozen=True)
class Options(LoadOptions):
    micro_scale: float  # multiplies the in-process call counts
    ab_pairs: int
    hostile_reps: int
    validation_reps: int


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argument_parser("bench.edge", __doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (one rate, short runs: ~2-3 minutes)"
    )
    add_seed_arguments(parser)
    parser.add_argument("--rates", default="50,100", help="k6 arrival rates, req/s")
    parser.add_argument("--runs", type=int, default=5, help="k6 runs per rate and server")
    parser.add_argument("--duration", type=int, default=10, help="seconds per k6 run")
    parser.add_argument("--warmup", type=int, default=5, help="k6 warm-up seconds per server")
    parser.add_argument(
        "--ab-pairs", type=int, default=3000, help="in-process request pairs, limits on/off"
    )
    parser.add_argument("--hostile-reps", type=int, default=5, help="sends of each document")
    parser.add_argument(
        "--validation-reps", type=int, default=3, help="in-process validations per document"
    )
    args = parser.parse_args(argv)
    if not args.edges.is_file():
        parser.error(f"{args.edges} is not a file")
    if args.quick:
        return Options(
            quick=True,
            edges=args.edges,
            viewers=args.viewers or 200,
            rates=(50,),
            runs=3,
            duration_s=5,
            warmup_s=2,
            micro_scale=0.25,
            ab_pairs=500,
            hostile_reps=3,
            validation_reps=1,
        )
    rates = integers(args.rates)
    if not rates or args.runs < 1:
        parser.error("give at least one rate and one run")
    return Options(
        quick=False,
        edges=args.edges,
        viewers=args.viewers,
        rates=rates,
        runs=args.runs,
        duration_s=args.duration,
        warmup_s=args.warmup,
        micro_scale=1.0,
        ab_pairs=args.ab_pairs,
        hostile_reps=args.hostile_reps,
        validation_reps=args.validation_reps,
    )


# --- seeding -------------------------------------------------------------------------------


@dataclass
class Seeded:
    users: int
    follows: int
    tokens: list[str]
    seconds: float


async def seed(settings: Settings, servers: Servers, options: Options) -> Seeded:
    started = time.perf_counter()
    async with connected(settings, servers) as runtime:
        graph = read_edge_list(options.edges)
        user_ids = await load_graph(
            ShardSessions(runtime.databases), graph, progress=progress_printer("seed")
        )
        await mark_active(runtime, user_ids)
        count = min(options.viewers or len(user_ids), len(user_ids))
        viewers = random.Random(GRAPH_SEED).sample(user_ids, count)
        tokens = await make_tokens(AppState(runtime), viewers)
        return Seeded(
            users=graph.users,
            follows=len(graph.edges),
            tokens=tokens,
            seconds=time.perf_counter() - started,
        )


# --- in-process microbenchmarks ----------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    calls: int
    p50_us: float
    p99_us: float
    mean_us: float
    cpu_us: float  # this process's CPU time per call (process_time)


class Sampler:
    """Calls timed one by one in ``rounds`` rounds, GC off (as timeit), a collection
    between rounds; the CPU time of each round's calls summed."""

    def __init__(self, calls: int, rounds: int) -> None:
        self.per_round = max(1, calls // rounds)
        self.count = rounds
        self.samples_ns: list[int] = []
        self.cpu_ns = 0

    def rounds(self) -> Iterator[range]:
        enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(self.count):
                cpu_before = time.process_time_ns()
                yield range(self.per_round)
                self.cpu_ns += time.process_time_ns() - cpu_before
                gc.collect()
        finally:
            if enabled:
                gc.enable()

    def timing(self, name: str) -> Timing:
        micros = [sample / 1000 for sample in self.samples_ns]
        return Timing(
            name=name,
            calls=len(micros),
            p50_us=percentile(micros, 50),
            p99_us=percentile(micros, 99),
            mean_us=statistics.fmean(micros),
            cpu_us=self.cpu_ns / 1000 / len(micros),
        )


def time_calls(name: str, call: Callable[[], object], calls: int, rounds: int = 5) -> Timing:
    """Each call timed alone, ``rounds`` rounds after one warm-up call."""
    call()
    sampler = Sampler(calls, rounds)
    clock, samples = time.perf_counter_ns, sampler.samples_ns
    for batch in sampler.rounds():
        for _ in batch:
            before = clock()
            call()
            samples.append(clock() - before)
    return sampler.timing(name)


async def time_awaits(
    name: str, call: Callable[[], Awaitable[object]], calls: int, rounds: int = 5
) -> Timing:
    """``time_calls`` of a coroutine function, each call awaited."""
    await call()
    sampler = Sampler(calls, rounds)
    clock, samples = time.perf_counter_ns, sampler.samples_ns
    for batch in sampler.rounds():
        for _ in batch:
            before = clock()
            await call()
            samples.append(clock() - before)
    return sampler.timing(name)


def default_limits(settings: Settings) -> Limits:
    return Limits(
        max_cost=settings.max_query_cost,
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
    )


VALIDATION_RULES = (*specified_rules, SafeStringsRule)


@dataclass
class MicroReport:
    feed_cost: int
    timings: list[Timing]
    timer_overhead_ns: float
    valkey_script_us: float  # Valkey's own CPU per EVALSHA of the limiter


async def run_micro(settings: Settings, servers: Servers, scale: float) -> MicroReport:
    graphql_schema = schema._schema
    limits = default_limits(settings)
    document = parse(FEED_QUERY_20)

    def n(calls: int) -> int:
        return max(50, int(calls * scale))

    def analysed() -> int:
        return analyse(graphql_schema, document, operation_name=None, variables=None, limits=limits)

    def cached() -> int:
        return _costs.cost(
            graphql_schema, document, operation_name=None, variables=None, limits=limits
        )

    feed_cost = analysed()
    timings = [
        time_calls(
            "parse the document (for scale; cached per document string)",
            lambda: parse(FEED_QUERY_20),
            n(5000),
        ),
        time_calls("`cost.analyse`, uncached", analysed, n(20_000)),
        time_calls(
            "`guard._costs.cost`, cached (what a repeated document pays)", cached, n(200_000)
        ),
        time_calls(
            "standard validation (for scale; cached per document)",
            lambda: validate(graphql_schema, document, VALIDATION_RULES),
            n(2000),
        ),
    ]
    empty = time_calls("empty call", lambda: None, 100_000)
    async with connected(settings, servers) as runtime:
        limiter = RateLimiter(runtime.redis)
        ip = Quota(name="ip", capacity=HUGE_CAPACITY, refill_per_second=HUGE_PER_SECOND)
        viewer = Quota(name="viewer", capacity=HUGE_CAPACITY, refill_per_second=HUGE_PER_SECOND)
        both = [(ip, "127.0.0.1"), (viewer, "1")]
        one = [(ip, "127.0.0.2")]
        await limiter.acquire(both, cost=feed_cost)  # loads the script
        await runtime.redis.config_resetstat()
        timings.append(
            await time_awaits(
                "`RateLimiter.acquire`, IP + viewer buckets (a logged-in request)",
                lambda: limiter.acquire(both, cost=feed_cost),
                n(10_000),
            )
        )
        timings.append(
            await time_awaits(
                "`RateLimiter.acquire`, IP bucket only (anonymous)",
                lambda: limiter.acquire(one, cost=feed_cost),
                n(5000),
            )
        )
        if limiter.degraded:
            raise RuntimeError("the rate limiter fell back to process memory: Valkey failed")
        valkey_us = await script_time(runtime)
        timings.append(await time_awaits("`PING`, for scale", runtime.redis.ping, n(5000)))
    return MicroReport(
        feed_cost=feed_cost,
        timings=timings,
        timer_overhead_ns=empty.p50_us * 1000,
        valkey_script_us=valkey_us,
    )


async def script_time(runtime: Runtime) -> float:
    """Valkey's own time per rate-limit script call (``INFO commandstats``), µs."""
    stats: dict[str, Any] = await runtime.redis.info("commandstats")
    entry = stats.get("cmdstat_evalsha") or {}
    return float(entry.get("usec_per_call", float("nan")))


def render_micro(report: MicroReport) -> list[str]:
    lines = [
        "### In process: the guard's parts on the feed document",
        "",
        f"The feed page's document (`homeFeed(first: 20)`, cost {report.feed_cost} points), in "
        "the benchmark's process, timeit-style: GC off, each call timed alone with "
        f"`perf_counter_ns` (timer overhead ~{report.timer_overhead_ns:.0f} ns, included), "
        "in 5 rounds after a warm-up call. CPU/call is the process's CPU time "
        "(`process_time`) over the calls: for the Redis calls, the client side of the round "
        "trip, which is what the server pays in CPU. The rate limiter runs against the "
        "embedded Valkey over the same connection kind as the servers, with buckets too "
        "large to refuse.",
        "",
        "| What | Calls | p50 µs | p99 µs | Mean µs | CPU µs/call |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for timing in report.timings:
        lines.append(
            f"| {timing.name} | {timing.calls:,} | {fmt(timing.p50_us)} | {fmt(timing.p99_us)} "
            f"| {fmt(timing.mean_us)} | {fmt(timing.cpu_us)} |"
        )
    lines += [
        "",
        f"Valkey's own time per rate-limit script call (`INFO commandstats`, `EVALSHA`): "
        f"{fmt(report.valkey_script_us)} µs; it runs in the Valkey process, on the same cores, "
        "and is not in the server CPU figures below.",
    ]
    return lines


# --- end to end: the same feed page with and without the rate limiter ------------------------


@dataclass
class E2ERun:
    server: str
    rate: int
    run: int
    order: int  # 0: first of the pair in this run, 1: second
    result: K6Result

    @property
    def cpu_ms_per_request(self) -> float:
        if not self.result.requests:
            return float("nan")
        return self.result.server_cpu_seconds / self.result.requests * 1000


def pooled_ms(runs: Sequence[E2ERun]) -> float:
    """All the runs' server CPU over all their requests, ms: the mean per request."""
    requests = sum(run.result.requests for run in runs)
    cpu = sum(run.result.server_cpu_seconds for run in runs)
    return cpu / requests * 1000 if requests else float("nan")


@dataclass
class E2EReport:
    users: int
    follows: int
    viewers: int
    seed_seconds: float
    warm_seconds: dict[str, float]
    warm_errors: dict[str, list[str]]
    cost_reports: dict[str, dict[str, Any]]
    runs: list[E2ERun] = field(default_factory=list)

    def of(self, server: str, rate: int) -> list[E2ERun]:
        return [run for run in self.runs if run.server == server and run.rate == rate]


def check_cost_report(url: str, token: str, server: str) -> dict[str, Any]:
    """One feed page: the rate-limited server reports the budget left, the other none."""
    answer = ask_once(url, FEED_QUERY_20, token=token)
    if answer.data is None:
        raise RuntimeError(f"{server}: the feed page failed: {answer.text[:500]}")
    cost: dict[str, Any] = answer.body.get("extensions", {}).get("cost", {})
    charged = "budgetLeft" in cost
    if charged != (server == LIMITED):
        raise RuntimeError(f"{server}: unexpected cost report {cost}: is the setting applied?")
    return cost


def run_e2e(
    env: BenchEnv, servers: dict[str, Child], seeded: Seeded, data: Path, options: Options
) -> E2EReport:
    report = E2EReport(
        users=seeded.users,
        follows=seeded.follows,
        viewers=len(seeded.tokens),
        seed_seconds=seeded.seconds,
        warm_seconds={},
        warm_errors={},
        cost_reports={},
    )
    for name, child in servers.items():
        warm = asyncio.run(warm_feeds(child.url, seeded.tokens, FEED_QUERY_20))
        report.warm_seconds[name] = warm.seconds
        report.warm_errors[name] = warm.errors
        log(f"{name}: warm pass over {len(seeded.tokens)} viewers in {warm.seconds:.1f}s")
        report.cost_reports[name] = check_cost_report(child.url, seeded.tokens[0], name)
        if options.warmup_s:
            run_k6(
                "feed_reads",
                target=child,
                data=data,
                rate=min(options.rates),
                duration_s=options.warmup_s,
                work_dir=env.work_dir,
                kinds=("feed",),
            )
    names = list(servers)
    for run_index in range(options.runs):
        for rate_index, rate in enumerate(options.rates):
            # Alternate which server goes first, so drifting noise hits both alike.
            order = alternating(names, run_index + rate_index)
            for position, name in enumerate(order):
                time.sleep(PAUSE_SECONDS)
                result = run_k6(
                    "feed_reads",
                    target=servers[name],
                    data=data,
                    rate=rate,
                    duration_s=options.duration_s,
                    work_dir=env.work_dir,
                    kinds=("feed",),
                )
                run = E2ERun(server=name, rate=rate, run=run_index, order=position, result=result)
                report.runs.append(run)
                heading = f"{name} {rate} req/s run {run_index + 1}"
                log_run(heading, result, kind="feed", cpu_ms=run.cpu_ms_per_request)
    return report


def render_e2e(report: E2EReport, options: Options) -> list[str]:
    limited = SERVER_SETTINGS[LIMITED]
    lines = [
        "### End to end: a warm feed page with the rate limiter on and off",
        "",
        f"socfb-Reed98: {report.users:,} users, {report.follows:,} follows (both directions), "
        f"2 posts per user, every user active; {report.viewers:,} viewers with a bearer token "
        f"each (seeded in {report.seed_seconds:.0f} s). Two `aperture serve` subprocesses "
        "(one uvicorn process each, `APERTURE_SERVE_RUNS_WORKERS=false`) on the same data, "
        f"both running while either is measured: **{LIMITED}** has the default code path "
        "with buckets nothing can empty ("
        + ", ".join(f"`{key}={value}`" for key, value in limited.items() if "RATE_LIMIT_" in key)
        + f"), **{UNLIMITED}** has `APERTURE_RATE_LIMITS=false`. Both analyse every "
        "operation's cost (it cannot be switched off; the in-process table above prices it). "
        "k6 (`bench/k6/feed_reads.js`, `constant-arrival-rate`) sends the feed benchmark's "
        "page, `homeFeed(first: 20) { edges { node { id caption author { username } "
        "likeCount commentCount viewerHasLiked } } }`, each request as a uniformly random "
        "viewer, so every request is charged to two buckets (127.0.0.1 and its viewer) in "
        "one Lua call. The feeds were built before either server started (by the in-process "
        "part below), then each viewer's page is read once on each server, then k6 runs "
        f"{options.warmup_s} s at the lowest rate. Each rate: {options.runs} runs of "
        f"{options.duration_s} s per server, the two servers alternating (which goes first "
        "alternates too). **CPU/request** is the server process's user+system CPU (/proc) "
        "over the k6 run divided by the requests sent (the window includes k6's start-up, "
        "when the server idles); **pooled** is all runs' CPU over all their requests.",
        "",
        "| Rate req/s | Server | CPU ms/request, median (min-max of runs) | Pooled ms "
        "| p50 ms | p99 ms | Failed / requests | Dropped |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    differences: list[str] = []
    for rate in options.rates:
        medians: dict[str, float] = {}
        for name in (LIMITED, UNLIMITED):
            runs = report.of(name, rate)
            cpu = [run.cpu_ms_per_request for run in runs]
            medians[name] = median(cpu)
            k6 = Runs([run.result for run in runs])
            lines.append(
                f"| {rate} | {name} | {fmt(medians[name], 2)} ({spread(cpu)}) | "
                f"{fmt(pooled_ms(runs), 2)} | {fmt(k6.p50('feed'))} | {fmt(k6.p99('feed'))} | "
                f"{k6.failed:,} / {k6.requests:,} | {k6.dropped} |"
            )
        paired = [
            on.cpu_ms_per_request - off.cpu_ms_per_request
            for on, off in zip(report.of(LIMITED, rate), report.of(UNLIMITED, rate), strict=True)
        ]
        difference = (medians[LIMITED] - medians[UNLIMITED]) * 1000
        pooled = (
            pooled_ms(report.of(LIMITED, rate)) - pooled_ms(report.of(UNLIMITED, rate))
        ) * 1000
        differences.append(
            f"- {rate} req/s: rate limiter = {difference:+.0f} µs of server CPU per request "
            f"(difference of the medians), {pooled:+.0f} µs (of the pooled means); median "
            f"of the {len(paired)} paired differences {median(paired) * 1000:+.0f} µs "
            f"(range {spread(paired, scale=1000, digits=0)} µs)"
        )
    lines += ["", *differences]
    for name in (LIMITED, UNLIMITED):
        errors = report.warm_errors[name]
        lines.append(
            f"- {name}: warm pass {report.warm_seconds[name]:.1f} s, {len(errors)} errors; "
            f"`extensions.cost` of a feed page: `{json.dumps(report.cost_reports[name])}`"
            + (f" (first error: `{errors[0][:200]}`)" if errors else "")
        )
    return lines


# --- the whole app in process, A/B per request -------------------------------------------------


@dataclass
class ABReport:
    pairs: int
    warmup_pairs: int
    cpu_us: dict[str, list[float]]  # server -> per-request CPU of this process, µs

    def paired(self) -> list[float]:
        return [
            on - off for on, off in zip(self.cpu_us[LIMITED], self.cpu_us[UNLIMITED], strict=True)
        ]


def _app_settings(settings: Settings, server: str) -> Settings:
    updates: dict[str, Any] = {"rate_limits": server == LIMITED}
    if server == LIMITED:
        updates |= {
            "rate_limit_ip_capacity": HUGE_CAPACITY,
            "rate_limit_ip_per_second": HUGE_PER_SECOND,
            "rate_limit_viewer_capacity": HUGE_CAPACITY,
            "rate_limit_viewer_per_second": HUGE_PER_SECOND,
        }
    return settings.model_copy(update=updates)


async def run_ab(
    settings: Settings, servers: Servers, tokens: Sequence[str], pairs: int
) -> ABReport:
    """Two instances of the app in this process, one per setting, over httpx's ASGI
    transport: each pair of requests is the same viewer's feed page on both, in
    alternating order, so that GC pauses and machine noise fall on both alike."""
    from graphql_api.app import create_app

    runtimes: dict[str, Runtime] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        for name in (LIMITED, UNLIMITED):
            runtime = Runtime.connect(_app_settings(settings, name), servers)
            runtimes[name] = runtime
            app = create_app(runtime, close_runtime=False)
            clients[name] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://edge"
            )

        async def page(name: str, token: str) -> int:
            started = time.process_time_ns()
            response = await clients[name].post(
                "/graphql",
                json={"query": FEED_QUERY_20},
                headers={"Authorization": f"Bearer {token}"},
            )
            spent = time.process_time_ns() - started
            body: dict[str, Any] = response.json()
            charged = "budgetLeft" in body.get("extensions", {}).get("cost", {})
            if response.status_code != 200 or body.get("errors") or charged != (name == LIMITED):
                raise RuntimeError(f"{name}: unexpected answer {response.text[:300]}")
            return spent

        # Every viewer's page once on both first: feeds built (the first read of a feed
        # builds it from PostgreSQL), sessions cached, for this part and the next.
        for token in tokens:
            await page(LIMITED, token)
            await page(UNLIMITED, token)
        rng = random.Random(GRAPH_SEED)
        warmup = max(50, pairs // 10)
        cpu: dict[str, list[float]] = {LIMITED: [], UNLIMITED: []}
        for index in range(warmup + pairs):
            token = rng.choice(tokens)
            order = alternating((LIMITED, UNLIMITED), index)
            for name in order:
                spent = await page(name, token)
                if index >= warmup:
                    cpu[name].append(spent / 1000)
        return ABReport(pairs=pairs, warmup_pairs=warmup, cpu_us=cpu)
    finally:
        for client in clients.values():
            await client.aclose()
        for runtime in runtimes.values():
            await runtime.close()


def render_ab(report: ABReport) -> list[str]:
    lines = [
        "### The whole app in process: rate limiter on and off, request by request",
        "",
        "Two instances of the application in the benchmark's process (`create_app`, one "
        f"with the rate limits as above, one with `rate_limits=False`), called through "
        "httpx's ASGI transport, so everything from the ASGI endpoint down runs, against "
        f"the same data and Valkey. {report.pairs:,} pairs (after {report.warmup_pairs} "
        "unmeasured): each pair is one random viewer's feed page on both, in alternating "
        "order, so GC pauses and machine noise land on both alike. CPU is this process's "
        "CPU time around each request (`process_time`; it includes the httpx client, the "
        "same for both). GC is on, as in a server. Every viewer's page is read once on "
        "both before (this builds the feeds the servers above then find warm; it runs "
        "before them).",
        "",
        "| Server | CPU µs/request median | p90 | Mean |",
        "|---|--:|--:|--:|",
    ]
    for name in (LIMITED, UNLIMITED):
        values = report.cpu_us[name]
        lines.append(
            f"| {name} | {fmt(median(values), 0)} | {fmt(percentile(values, 90), 0)} | "
            f"{fmt(statistics.fmean(values), 0)} |"
        )
    paired = report.paired()
    on, off = report.cpu_us[LIMITED], report.cpu_us[UNLIMITED]
    lines += [
        "",
        f"- Rate limiter: {median(on) - median(off):+.0f} µs per request (difference of the "
        f"medians), {median(paired):+.0f} µs (median of the paired differences), "
        f"{statistics.fmean(on) - statistics.fmean(off):+.0f} µs (difference of the means, "
        "which GC pauses make noisier).",
    ]
    return lines


# --- hostile documents ---------------------------------------------------------------------


def _fragments(count: int, on: str, body: str, *, name: str = "F") -> str:
    return " ".join(f"fragment {name}{i} on {on} {{ {body} }}" for i in range(count))


def _spreads(count: int, *, times: int = 1, name: str = "F") -> str:
    return " ".join(f"...{name}{i}" for i in range(count) for _ in range(times))


def fragment_chain(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels paths through a small document."""
    chain = " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"query {{ viewer {{ ...F0 }} }} {chain} fragment F{levels} on User {{ username }}"


def doubling_aliases(levels: int) -> str:
    """Two aliased copies of the next fragment at every level: 2**levels objects."""
    fragments = " ".join(
        f"fragment F{i} on User {{ a: followers(first: 1) {{ edges {{ node {{ ...F{i + 1} }} }} }}"
        f" b: following(first: 1) {{ edges {{ node {{ ...F{i + 1} }} }} }} }}"
        for i in range(levels)
    )
    return f"query {{ viewer {{ ...F0 }} }} {fragments} fragment F{levels} on User {{ username }}"


def long_names_100kb() -> str:
    """Two fragments per level, each spreading both of the next, with 130-byte names."""
    name = "X" * 130
    levels = 120
    return (
        f"query {{ viewer {{ ...A0{name} }} }} "
        + " ".join(
            f"fragment A{i}{name} on User {{ a: followers {{ ...A{i + 1}{name} }} "
            f"b: following {{ ...B{i + 1}{name} }} }} "
            f"fragment B{i}{name} on User {{ a: followers {{ ...A{i + 1}{name} }} "
            f"b: following {{ ...B{i + 1}{name} }} }}"
            for i in range(levels)
        )
        + f" fragment A{levels}{name} on User {{ id }} fragment B{levels}{name} on User {{ id }}"
    )


def nested_followers(levels: int) -> str:
    nested = "{ edges { node { username } } }"
    for _ in range(levels - 1):
        nested = "{ edges { node { username followers(first: 100) " + nested + " } } }"
    return "{ viewer { followers(first: 100) " + nested + " } }"


def deep(levels: int) -> str:
    """``levels`` nested ``followers(first: 1) { nodes`` under ``viewer``: depth 1 + 2n."""
    return (
        "{ viewer { " + "followers(first: 1) { nodes { " * levels + "id" + " } }" * levels + " } }"
    )


INTROSPECTION_NESTED = (
    "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
)


def overlapping(on: str, root: str, field_text: str, repeats: int, *, times: int = 1) -> str:
    """MAX_FRAGMENTS fragments, each repeating one response name, all spread in one
    selection: graphql-core's "overlapping fields can be merged" rule compares every pair
    of fragments, and every pair of fields in them, recursing into sub-selections."""
    body = " ".join([field_text] * repeats)
    spreads = _spreads(MAX_FRAGMENTS, times=times)
    closing = " }" * root.count("{")
    return f"query {{ {root} {{ {spreads} }}{closing} }} " + _fragments(MAX_FRAGMENTS, on, body)


@dataclass(frozen=True)
class Hostile:
    key: str
    description: str
    query: str
    raw_body: bytes | None = None  # sent as is instead of {"query": ...}


def hostile_documents(settings: Settings) -> list[Hostile]:
    node_post = 'node(id: "UG9zdDox") { ... on Post'
    node_comment = 'node(id: "Q29tbWVudDox") { ... on Comment'
    over_limit = b'{"query": "{ __typename }", "x": "' + b"x" * settings.max_body_bytes + b'"}'
    return [
        Hostile("baseline", "`{ __typename }`: the floor (an HTTP round trip)", "{ __typename }"),
        Hostile(
            "fragment-chain-63",
            f"fragment chain at the limits: {MAX_FRAGMENTS} fragments, each spreading the "
            "next twice (2^63 paths, 126 spreads)",
            fragment_chain(MAX_FRAGMENTS - 1),
        ),
        Hostile("fragment-chain-300", "the same chain 300 fragments long", fragment_chain(300)),
        Hostile(
            "doubling-aliases-28",
            "doubling aliases: two aliased lists of the next fragment, 28 levels",
            doubling_aliases(28),
        ),
        Hostile(
            "long-names-100kb",
            "100 KB: 242 fragments with 130-byte names, each spreading two of the next",
            long_names_100kb(),
        ),
        Hostile(
            "name-1mb",
            "1 MB: one operation name of 1,000,000 characters (just under the body limit)",
            "query N" + "x" * 1_000_000 + " { __typename }",
        ),
        Hostile(
            "body-over-limit",
            f"a body of {settings.max_body_bytes:,} bytes + 40 (`APERTURE_MAX_BODY_BYTES`)",
            "",
            raw_body=over_limit,
        ),
        Hostile(
            "tokens-6000",
            "6,000 aliased `__typename` (18,000 tokens, 100 KB)",
            "{ " + " ".join(f"a{i}: __typename" for i in range(6000)) + " }",
        ),
        Hostile(
            "followers-100-x3",
            "three nested `followers(first: 100)` (2·10^6 objects)",
            nested_followers(3),
        ),
        Hostile("depth-13", "`followers(first: 1) { nodes` nested 6 deep: depth 13", deep(6)),
        Hostile(
            "introspection-lists",
            "introspection nesting 4 lists (`types.fields.type.fields`)",
            INTROSPECTION_NESTED,
        ),
        Hostile(
            "repeats-17",
            f"`viewer {{ username }}` with `username` {MAX_REPEATED_RESPONSE_NAME + 1} times",
            "{ viewer { " + "username " * (MAX_REPEATED_RESPONSE_NAME + 1) + "} }",
        ),
        Hostile(
            "fragments-65",
            f"{MAX_FRAGMENTS + 1} fragments spread side by side",
            "{ viewer { "
            + _spreads(MAX_FRAGMENTS + 1)
            + " } } "
            + _fragments(MAX_FRAGMENTS + 1, "User", "username"),
        ),
        Hostile(
            "spreads-129",
            f"one fragment spread {MAX_SPREADS + 1} times",
            "{ viewer { " + "...F " * (MAX_SPREADS + 1) + "} } fragment F on User { username }",
        ),
        Hostile(
            "overlap-64x16-scalars",
            f"{MAX_FRAGMENTS} fragments of {MAX_REPEATED_RESPONSE_NAME} `username` each, spread "
            "in one selection",
            overlapping("User", "viewer", "username", MAX_REPEATED_RESPONSE_NAME),
        ),
        Hostile(
            "overlap-64x6-post-author",
            f"{MAX_FRAGMENTS} fragments of 6 `author {{ username }}` each, spread on a Post",
            overlapping("Post", node_post, "author { username }", 6),
        ),
        Hostile(
            "overlap-64x5-comment-128-spreads",
            f"{MAX_FRAGMENTS} fragments of 5 `post {{ author {{ username }} }}` each, each "
            f"spread twice on a Comment ({MAX_SPREADS} spreads)",
            overlapping("Comment", node_comment, "post { author { username } }", 5, times=2),
        ),
        Hostile(
            "overlap-64x6-comment",
            f"{MAX_FRAGMENTS} fragments of 6 `post {{ author {{ username }} }}` each, spread on a "
            "Comment",
            overlapping("Comment", node_comment, "post { author { username } }", 6),
        ),
    ]


@dataclass
class HostileResult:
    key: str
    description: str
    size: int
    guard: str  # in process: the cost, or the limit that refuses it
    validation_ms: list[float]  # in process, standard validation (documents the guard passes)
    validation_outcome: str
    analyse_us: float
    status: int
    outcome: str  # what the server answered
    wall_ms: list[float]
    server_cpu_ms: float  # per request, from /proc (10 ms ticks, summed over the reps)


def guard_in_process(
    settings: Settings, hostile: Hostile
) -> tuple[str, float, DocumentNode | None]:
    """What the guard makes of the document here: its cost or refusal, analyse time (µs)
    and the parsed document if the guard passes it (else None)."""
    if hostile.raw_body is not None:
        return "body limit (before parsing)", float("nan"), None
    try:
        document = parse(hostile.query, max_tokens=settings.max_tokens)
    except GraphQLError as error:
        return f"parser: {error.message[:60]}", float("nan"), None
    limits = default_limits(settings)
    samples: list[float] = []
    verdict = ""
    passed: DocumentNode | None = document
    for _ in range(5):
        started = time.perf_counter()
        try:
            cost = analyse(
                schema._schema, document, operation_name=None, variables=None, limits=limits
            )
            verdict = f"passes, cost {cost}"
        except TooComplex as error:
            verdict = f"`{error.kind}` ({error.value:,} > {error.limit:,})"
            passed = None
        samples.append((time.perf_counter() - started) * 1e6)
        if passed is None:
            break
    return verdict, median(samples), passed


def time_validation(document: DocumentNode, reps: int) -> tuple[list[float], str]:
    times: list[float] = []
    outcome = ""
    for _ in range(reps):
        gc.collect()
        started = time.perf_counter()
        errors = validate(schema._schema, document, VALIDATION_RULES)
        times.append((time.perf_counter() - started) * 1000)
        outcome = "valid" if not errors else f"{len(errors)} error(s): {errors[0].message[:60]}"
    return times, outcome


def renamed(query: str, name: str) -> str:
    """The document under a new operation name: a structurally new document, so that no
    cache helps. (A comment would not do: graphql-core's AST nodes are frozen dataclasses
    that compare by value, locations included, so the validation cache, keyed by the
    document, hits for any same-length comment.)"""
    if query.startswith("{"):
        return f"query {name} {query}"
    if query.startswith("query "):
        return f"query {name}{query.removeprefix('query ')}"
    raise ValueError(f"not an operation: {query[:40]}")


def describe_answer(status: int, text: str) -> str:
    try:
        body: dict[str, Any] = json.loads(text)
    except ValueError:
        return f"HTTP {status}, not JSON"
    errors: list[dict[str, Any]] = body.get("errors") or []
    first = errors[0] if errors else {}
    extensions: dict[str, Any] = first.get("extensions") or {}
    code = str(extensions.get("code", ""))
    if "limit" in extensions:
        code += f" `{extensions['limit']}`"
    if code.startswith("GRAPHQL_VALIDATION_FAILED"):
        code += f" ({str(first.get('message', ''))[:40]})"
    if "data" not in body:
        return f"refused: {code}"
    return "executed" + (f" (field error {code})" if errors else "")


def run_hostile(settings: Settings, server: Child, options: Options) -> list[HostileResult]:
    results: list[HostileResult] = []
    nonce = time.monotonic_ns()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        client.post("/graphql", json={"query": "{ __typename }"})
        for hostile in hostile_documents(settings):
            guard, analyse_us, document = guard_in_process(settings, hostile)
            validation: list[float] = []
            validation_outcome = "-"
            if document is not None:
                validation, validation_outcome = time_validation(document, options.validation_reps)
            wall: list[float] = []
            status = 0
            outcome = ""
            cpu_before = server.cpu_seconds()
            for rep in range(options.hostile_reps):
                if hostile.raw_body is not None:
                    content = hostile.raw_body
                else:
                    unique = renamed(hostile.query, f"Q{nonce}x{rep}")
                    content = json.dumps({"query": unique}).encode()
                started = time.perf_counter()
                response = client.post(
                    "/graphql", content=content, headers={"Content-Type": "application/json"}
                )
                wall.append((time.perf_counter() - started) * 1000)
                status = response.status_code
                outcome = describe_answer(status, response.text)
            server_cpu = (server.cpu_seconds() - cpu_before) / options.hostile_reps * 1000
            size = len(hostile.raw_body) if hostile.raw_body is not None else len(hostile.query)
            result = HostileResult(
                key=hostile.key,
                description=hostile.description,
                size=size,
                guard=guard,
                validation_ms=validation,
                validation_outcome=validation_outcome,
                analyse_us=analyse_us,
                status=status,
                outcome=outcome,
                wall_ms=wall,
                server_cpu_ms=server_cpu,
            )
            results.append(result)
            log(
                f"hostile {hostile.key}: {size:,} B, {outcome}, wall median "
                f"{median(wall):.1f} ms max {max(wall):.1f} ms, server CPU {server_cpu:.0f} ms"
                + (f", validation {median(validation):.1f} ms" if validation else "")
            )
    return results


def _size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.2f} MB"
    if size >= 10_000:
        return f"{size / 1000:.0f} KB"
    return f"{size:,} B"


def render_hostile(results: Sequence[HostileResult], options: Options) -> list[str]:
    lines = [
        "### Hostile documents",
        "",
        f"Each document sent {options.hostile_reps} times, anonymously, to the rate-limited "
        "server above (idle otherwise), one at a time over one keep-alive connection "
        "(httpx); each send gets a new operation name, which makes it a new document, so "
        "neither the parse cache nor the cost and validation caches help, as for an "
        "attacker who varies it. **Wall** is the client's time from send to the full "
        "answer. **Server CPU** is the server's CPU per send from /proc (10 ms ticks "
        "over all sends: below ~10 ms it reads as 0). **Guard** is what `cost.analyse` "
        "(and the parser's token limit) decide, in this process, and how long the "
        "analysis takes (median of 5). **Validation** is graphql-core's standard "
        "validation (`specified_rules` and the string rule, as the server runs it) of "
        "the documents the guard passes, in this process (median of "
        f"{options.validation_reps}).",
        "",
        "| Document | Size | Guard (in process) | Analyse µs | Validation ms | Server answer "
        "| Wall ms median | Wall ms max | Server CPU ms |",
        "|---|--:|---|--:|--:|---|--:|--:|--:|",
    ]
    for result in results:
        validation = (
            f"{fmt(median(result.validation_ms))} ({result.validation_outcome})"
            if result.validation_ms
            else "-"
        )
        lines.append(
            f"| {result.description} | {_size(result.size)} | {result.guard} | "
            f"{fmt(result.analyse_us)} | {validation} | {result.outcome} (HTTP {result.status}) "
            f"| {fmt(median(result.wall_ms))} | {fmt(max(result.wall_ms))} "
            f"| {fmt(result.server_cpu_ms, 0)} |"
        )
    return lines


# --- running ---------------------------------------------------------------------------------


def start_edge_servers(env: BenchEnv) -> dict[str, Child]:
    started: dict[str, Child] = {}
    try:
        for name, overrides in SERVER_SETTINGS.items():
            slug = "limits-on" if name == LIMITED else "limits-off"
            started[name] = start_api_server(
                env.settings,
                env.servers,
                env.code,
                {"APERTURE_SERVE_RUNS_WORKERS": "false", **overrides},
                env.work_dir / f"serve-{slug}.log",
            )
            log(f"{name}: {started[name].url}")
    except BaseException:
        for child in started.values():
            child.stop()
        raise
    return started


def run(options: Options, command: str) -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    sections: list[list[str]] = []
    raw: dict[str, Any] = {"command": command, "options": asdict(options)}
    with embedded_platform("edge", logs="edge-logs", fresh_logs=True) as env:
        settings, servers, code = env.settings, env.servers, env.code
        seeded = asyncio.run(seed(settings, servers, options))
        log(f"seeded {seeded.users} users in {seeded.seconds:.1f}s")
        data = write_data(env.work_dir / "edge-tokens.json", tokens=seeded.tokens)

        log("in-process timings")
        micro = asyncio.run(run_micro(settings, servers, options.micro_scale))
        raw["micro"] = asdict(micro)
        sections.append(render_micro(micro))

        # Before the servers start: it builds every viewer's feed, so that both servers
        # then start from the same warm data (a server that built the feeds would carry
        # a bigger heap, and slower full GCs, than the other).
        log("in-process A/B")
        ab = asyncio.run(run_ab(settings, servers, seeded.tokens, options.ab_pairs))
        raw["ab"] = asdict(ab)
        ab_section = render_ab(ab)

        children = start_edge_servers(env)
        try:
            e2e = run_e2e(env, children, seeded, data, options)
            raw["e2e"] = [
                {
                    "server": run_.server,
                    "rate": run_.rate,
                    "run": run_.run,
                    "order": run_.order,
                    "cpu_ms_per_request": run_.cpu_ms_per_request,
                    "k6": asdict(run_.result),
                }
                for run_ in e2e.runs
            ]
            sections.append(render_e2e(e2e, options))
            sections.append(ab_section)
            log("hostile documents")
            hostile = run_hostile(settings, children[LIMITED], options)
            raw["hostile"] = [asdict(result) for result in hostile]
            sections.append(render_hostile(hostile, options))
        finally:
            for child in children.values():
                child.stop()
    seconds = time.perf_counter() - started
    when = utc_now()
    lines = [
        "# Public edge benchmark (issue 7)",
        "",
        f"- Command: `{command}`; finished {when}, wall time {seconds:.0f} s",
        f"- Code: {code.description}",
        *describe_machine(load_generator="k6"),
        f"- Load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "",
    ]
    for section in sections:
        lines += [*section, ""]
    raw["seconds"] = seconds
    raw["finished"] = when
    write_report(RESULTS_PATH, lines)
    DATA_PATH.write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {DATA_PATH.name} in {seconds:.0f}s")


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    run(parse_options(arguments), command_line("bench.edge", arguments))


if __name__ == "__main__":
    main()
