"""Read-path benchmark (issue 9): server CPU per request and latency of the three warm
reads (home feed, profile grid, post detail) at fixed arrival rates, with one and two web
processes, precomputed feeds against fan-out on read, the in-memory ceiling of a stock
Strawberry schema, and the revision before the read-path work, all in the same run.

Starts embedded PostgreSQL and Valkey in a fresh temporary directory, migrates, seeds the
socfb-Reed98 graph with ``bench.edge.seed`` (every user active, a bearer token per
viewer), snapshots the application code, and starts ``aperture serve`` subprocesses from
the snapshot, all against the same data and all with the rate limiter on, its buckets too
large to refuse (``bench.edge.SERVER_SETTINGS[LIMITED]``), as in production:

* ``precomputed x1`` / ``x2``: the default feed, ``--processes 1`` and ``2``;
* ``fanout_on_read x1`` / ``x2``: ``APERTURE_FEED_READ_STRATEGY=fanout_on_read``;
* ``baseline x1`` (unless ``--baseline none``): ``--baseline`` (default ``7f87572``, the
  commit before the read-path work) checked out with ``git worktree add``; as in
  ``bench.layering``, a holder subprocess run from that checkout starts its own embedded
  servers, migrates and seeds them with that checkout's code, and the server runs from
  the checkout too.

Every server reads each viewer's first feed page once (this builds the precomputed
feeds); the first server's pages give the visible post ids, and the seeded usernames,
checked public through the API, the profiles. Then k6 (``bench/k6/read_path.js``,
``constant-arrival-rate``, ``--pre-vus`` 1,000 pre-allocated VUs, each with its own
connection) drives one kind against one server per run:

* ``feed``: ``homeFeed(first: 20)`` as a random viewer (every server);
* ``grid``: ``user(username:) { posts(first: 12) }`` of a random public user;
* ``detail``: ``node(id:) { ... on Post }`` of a random visible post
  (grid and detail: the precomputed servers only; the strategy only changes homeFeed).

For each rate (lowest first) the runs are interleaved: run 1 of every point, then run 2
in another order, and so on. A point that saturates at a rate (median error rate above
20%, or under half the rate achieved) is not run at higher rates. Per run: the serve
process tree's user+system CPU (/proc, every uvicorn process of ``--processes 2``
included) between k6's ``setup()`` and ``teardown()`` divided by the requests k6
completed; PostgreSQL's and Valkey's the same way; k6's p50, p99, achieved rate and
failures (not 200, GraphQL errors, a null user). The in-memory ceiling: a stock
``strawberry.Schema`` (``ParserCache`` and ``ValidationCache``) with the feed's shape over
20 posts in memory, ``await schema.execute(query)`` ``--ceiling-requests`` times per round,
CPU from ``time.process_time()``, one round before the k6 runs and one after each rate's
run.

The report is printed and written to ``bench/results/read_path.md`` (raw figures in
``read_path.json``, server, holder and k6 logs in ``read_path-logs/``).

    python -m bench.read_path [--quick] [--rates 100,200,300,400] [--runs 3]
        [--duration 20] [--baseline 7f87572|none] [--pre-vus 1000]
    python -m bench.read_path --ceilings-only   # the ceiling with and without ValidationCache
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from bench import layering
from bench.edge import LIMITED, SERVER_SETTINGS
from bench.edge import parse_options as edge_options
from bench.edge import seed as edge_seed
from bench.harness import (
    CLK_TCK,
    FEED_QUERY_20,
    RESULTS_DIR,
    Answer,
    BenchEnv,
    Child,
    LoadOptions,
    ProcessStat,
    add_seed_arguments,
    argument_parser,
    ask,
    command_line,
    descendants,
    describe_machine,
    embedded_platform,
    fmt,
    integers,
    log,
    median,
    process_table,
    spread,
    start_api_server,
    start_k6,
    utc_now,
    warm_feeds,
    write_data,
    write_report,
)

RESULTS_PATH = RESULTS_DIR / "read_path.md"
DATA_PATH = RESULTS_DIR / "read_path.json"
BASELINE_REV = "7f87572"
K6_SCRIPT = "read_path"
PAUSE_SECONDS = 1.5
SATURATED_ERROR_RATE = 0.2
SATURATED_ACHIEVED = 0.5
# A run with more failures than this (or dropped iterations) is not "clean": its CPU per
# request mixes served pages with cheap refusals (503 OVERLOADED), so the ceiling, per-field
# and baseline tables leave it out.
CLEAN_ERROR_RATE = 0.01

GRID_QUERY = (
    "query($u: String!) { user(username: $u) { posts(first: 12) { edges { node { id "
    "caption likeCount commentCount viewerHasLiked } } } } }"
)
DETAIL_QUERY = (
    "query($id: ID!) { node(id: $id) { ... on Post { id caption createdAt likeCount "
    "commentCount viewerHasLiked author { username } } } }"
)
PRIVACY_QUERY = "query($u: String!) { user(username: $u) { isPrivate } }"
FEED, GRID, DETAIL = "feed", "grid", "detail"
KINDS = (FEED, GRID, DETAIL)
KIND_LABELS = {
    FEED: "`homeFeed(first: 20)`",
    GRID: "profile grid `posts(first: 12)`",
    DETAIL: "post detail `node(id:)`",
}
PRECOMPUTED = "precomputed"
FANOUT = "fanout_on_read"
BASELINE = "baseline"


# --- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options(LoadOptions):
    pre_vus: int
    timeout: str
    processes: tuple[int, ...]
    baseline: str | None
    ceiling_requests: int


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argument_parser("bench.read_path", __doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one rate (the lowest of --rates), one run of 5 s, 2 s warm-ups, "
        "500 ceiling requests per round (a few minutes)",
    )
    add_seed_arguments(parser)
    parser.add_argument("--rates", default="100,200,300,400", help="k6 arrival rates, req/s")
    parser.add_argument("--runs", type=int, default=3, help="k6 runs per point and rate")
    parser.add_argument("--duration", type=int, default=20, help="seconds per k6 run")
    parser.add_argument(
        "--warmup", type=int, default=5, help="k6 warm-up seconds per server and kind"
    )
    parser.add_argument(
        "--pre-vus", type=int, default=1000, help="k6 pre-allocated VUs (= max VUs)"
    )
    parser.add_argument("--timeout", default="5s", help="k6 per-request timeout")
    parser.add_argument(
        "--processes", default="1,2", help="web processes per server (aperture serve)"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REV,
        help="revision whose homeFeed (one process) is compared with the current tree; "
        "'none' skips it",
    )
    parser.add_argument(
        "--ceiling-requests",
        type=int,
        default=None,
        help="in-memory ceiling: executions per round (default 2000, --quick 500)",
    )
    args = parser.parse_args(argv)
    rates = integers(args.rates)
    processes = integers(args.processes)
    if not rates or min(rates) < 1 or args.runs < 1 or not processes or min(processes) < 1:
        parser.error("give at least one positive rate, one run and one process count")
    if args.pre_vus < 1:
        parser.error("--pre-vus must be positive")
    quick = bool(args.quick)
    baseline = None if args.baseline.lower() == "none" else args.baseline
    ceiling = args.ceiling_requests or (500 if quick else 2000)
    return Options(
        quick=quick,
        edges=args.edges.resolve(),
        viewers=args.viewers,
        rates=(min(rates),) if quick else rates,
        runs=1 if quick else args.runs,
        duration_s=5 if quick else args.duration,
        warmup_s=2 if quick else args.warmup,
        pre_vus=args.pre_vus,
        timeout=args.timeout,
        processes=tuple(sorted(set(processes))),
        baseline=baseline,
        ceiling_requests=ceiling,
    )


# --- the in-memory ceiling: a stock Strawberry schema, the feed's shape ----------------------


@strawberry.type
class CeilingUser:
    username: str


@strawberry.type
class CeilingPost:
    id: strawberry.ID
    caption: str
    author: CeilingUser
    like_count: int
    comment_count: int
    viewer_has_liked: bool


@strawberry.type
class CeilingPostEdge:
    node: CeilingPost


@strawberry.type
class CeilingPostConnection:
    edges: list[CeilingPostEdge]


CEILING_POSTS = [
    CeilingPost(
        id=strawberry.ID(f"UG9zdDo{n}"),
        caption=f"A caption of post {n} #tag{n % 7}",
        author=CeilingUser(username=f"user{n % 5}"),
        like_count=n * 3,
        comment_count=n % 4,
        viewer_has_liked=n % 2 == 0,
    )
    for n in range(20)
]


@strawberry.type
class CeilingQuery:
    @strawberry.field
    def home_feed(self, first: int) -> CeilingPostConnection:
        return CeilingPostConnection(
            edges=[CeilingPostEdge(node=post) for post in CEILING_POSTS[:first]]
        )


def ceiling_schema(*, validation_cache: bool = False) -> strawberry.Schema:
    extensions: list[Any] = [ParserCache]
    if validation_cache:
        extensions.append(ValidationCache)
    return strawberry.Schema(query=CeilingQuery, extensions=extensions)


def ceilings_only(rounds: int, requests: int) -> str:
    """``--ceilings-only``: the ceiling with the parser cache alone (as in the full run)
    and with the validation cache too, rounds interleaved, as a Markdown table."""
    variants = {
        "ParserCache": ceiling_schema(),
        "ParserCache + ValidationCache": ceiling_schema(validation_cache=True),
    }
    measured: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(rounds):
        for name, schema in variants.items():
            measured[name].append(
                ceiling_round(schema, requests, f"{name}, round {index + 1}").cpu_ms
            )
    lines = [
        *describe_machine(load_generator="k6"),
        "",
        "| Stock Strawberry, extensions | CPU ms/request, median (min-max) |",
        "|---|--:|",
    ]
    for name, values in measured.items():
        lines.append(f"| {name} | {median(values):.3f} ({min(values):.3f}-{max(values):.3f}) |")
    return "\n".join(lines)


@dataclass(frozen=True)
class CeilingRound:
    after: str  # when it ran
    requests: int
    cpu_ms: float  # per request
    wall_ms: float
    fields: int  # in one response


async def _ceiling_round(
    schema: strawberry.Schema, requests: int, after: str, query: str
) -> CeilingRound:
    result = await schema.execute(query)
    if result.errors or result.data is None:
        raise RuntimeError(f"the ceiling schema failed: {result.errors}")
    fields = count_fields(result.data)
    for _ in range(max(10, requests // 10)):
        await schema.execute(query)
    gc.collect()
    cpu = time.process_time()
    wall = time.perf_counter()
    for _ in range(requests):
        await schema.execute(query)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return CeilingRound(
        after=after,
        requests=requests,
        cpu_ms=cpu / requests * 1000,
        wall_ms=wall / requests * 1000,
        fields=fields,
    )


def ceiling_round(
    schema: strawberry.Schema, requests: int, after: str, *, query: str = FEED_QUERY_20
) -> CeilingRound:
    """Stock Strawberry executing ``query`` over objects in memory, ``requests`` times."""
    measured = asyncio.run(_ceiling_round(schema, requests, after, query))
    log(f"ceiling ({after}): {measured.cpu_ms:.3f} ms CPU/request, {measured.fields} fields")
    return measured


def count_fields(value: object) -> int:
    """Fields in a response's data: every key of every object, nested ones included."""
    if isinstance(value, dict):
        return sum(1 + count_fields(item) for item in value.values())
    if isinstance(value, list):
        return sum(count_fields(item) for item in value)
    return 0


# --- CPU of process trees, from /proc --------------------------------------------------------


def tree_cpu_seconds(roots: Sequence[int], table: dict[int, ProcessStat]) -> float:
    """User+system CPU of the roots and all their live descendants, and of the children
    they reaped (cutime/cstime), so a uvicorn worker is counted whether alive or gone."""
    tree = descendants(roots, table)
    return sum(table[pid].ticks + table[pid].reaped_ticks for pid in tree) / CLK_TCK


def database_roots(data_dir: Path) -> list[int]:
    """PostgreSQL's postmaster and the Valkey server of a data dir: not Python processes
    whose command line names the dir."""
    marker = str(data_dir).encode()
    roots: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if marker in cmdline and not comm.startswith("python"):
            roots.append(int(entry.name))
    table = process_table()
    # Only the top of each tree (PostgreSQL's backends name no dir; some helpers might).
    return [pid for pid in roots if pid in table and table[pid].parent not in roots]


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str  # e.g. "precomputed x2"
    strategy: str  # PRECOMPUTED, FANOUT or BASELINE
    processes: int
    child: Child
    data: Path  # k6's DATA file
    db_roots: list[int]
    kinds: tuple[str, ...]
    revision: str
    warm_seconds: float = 0.0
    warm_errors: list[str] = field(default_factory=list)
    pages: dict[int, list[str]] = field(default_factory=dict)
    idle_cpu_ms_per_s: float = float("nan")

    def cpu(self, load_generator: int | None = None) -> CpuSample:
        """CPU seconds used so far by the serve tree, its databases, the load generator's
        process (if given) and the whole machine."""
        table = process_table()
        return CpuSample(
            server=tree_cpu_seconds([self.child.process.pid], table),
            db=tree_cpu_seconds(self.db_roots, table),
            k6=tree_cpu_seconds([load_generator], table) if load_generator else 0.0,
            machine=machine_busy_seconds(),
        )


@dataclass(frozen=True)
class CpuSample:
    server: float
    db: float
    k6: float
    machine: float  # every core's non-idle time (/proc/stat)

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(
            server=self.server - other.server,
            db=self.db - other.db,
            k6=self.k6 - other.k6,
            machine=self.machine - other.machine,
        )


def machine_busy_seconds() -> float:
    """Non-idle CPU time of all cores since boot: user, nice, system, irq, softirq, steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def server_name(strategy: str, processes: int) -> str:
    return f"{strategy} x{processes}"


# --- GraphQL over HTTP, for warm-up and data collection -------------------------------------


async def post_many(
    url: str,
    requests: Sequence[tuple[str, str, dict[str, Any] | None]],
    *,
    concurrency: int = 8,
) -> list[Answer]:
    """Each (token, query, variables) once, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(token: str, query: str, variables: dict[str, Any] | None) -> Answer:
            async with gate:
                return await ask(client, query, token=token, variables=variables)

        return list(await asyncio.gather(*(one(*request) for request in requests)))


@dataclass
class ReadData:
    """What k6 picks from: tokens, public usernames, visible post ids."""

    tokens: list[str]
    usernames: list[str] = field(default_factory=list)
    post_ids: list[str] = field(default_factory=list)
    fields: dict[str, float] = field(default_factory=dict)  # kind -> mean fields/response
    sizes: dict[str, float] = field(default_factory=dict)  # kind -> mean posts/response
    errors: dict[str, list[str]] = field(default_factory=dict)
    private_or_missing: int = 0


def feed_fields(posts: int) -> int:
    """Fields of a feed page of ``posts`` posts: homeFeed, edges, and per edge node, id,
    caption, author, username, likeCount, commentCount, viewerHasLiked."""
    return 2 + 8 * posts


async def collect(url: str, data: ReadData, users: int, pages: dict[int, list[str]]) -> None:
    """Usernames checked public, grid pages and post details read once each (also warms
    the server): fills ``data``."""
    rng = random.Random(9)
    tokens = data.tokens
    data.post_ids = sorted({post for page in pages.values() for post in page})
    data.fields[FEED] = median([feed_fields(len(page)) for page in pages.values()])
    data.sizes[FEED] = median([len(page) for page in pages.values()])
    names = [f"user{n}" for n in range(users)]
    privacy = await post_many(url, [(rng.choice(tokens), PRIVACY_QUERY, {"u": u}) for u in names])
    data.usernames = [
        name
        for name, answer in zip(names, privacy, strict=True)
        if answer.data is not None
        and answer.data.get("user") is not None
        and answer.data["user"]["isPrivate"] is False
    ]
    data.private_or_missing = len(names) - len(data.usernames)
    grids = await post_many(
        url, [(rng.choice(tokens), GRID_QUERY, {"u": u}) for u in data.usernames]
    )
    data.errors[GRID] = [answer.error for answer in grids if answer.data is None]
    good = [answer.data for answer in grids if answer.data is not None]
    data.fields[GRID] = median([count_fields(item) for item in good])
    data.sizes[GRID] = median(
        [len(((item.get("user") or {}).get("posts") or {}).get("edges") or []) for item in good]
    )
    details = await post_many(
        url, [(rng.choice(tokens), DETAIL_QUERY, {"id": post}) for post in data.post_ids]
    )
    data.errors[DETAIL] = [answer.error for answer in details if answer.data is None]
    visible = [
        post
        for post, answer in zip(data.post_ids, details, strict=True)
        if answer.data is not None and (answer.data.get("node") or {}).get("id") == post
    ]
    data.fields[DETAIL] = median(
        [count_fields(answer.data) for answer in details if answer.data is not None]
    )
    data.sizes[DETAIL] = 1.0
    data.post_ids = visible


async def warm_other(url: str, data: ReadData, kinds: Sequence[str]) -> list[str]:
    """A grid and a detail read per username and post on another server (its local caches)."""
    rng = random.Random(11)
    requests: list[tuple[str, str, dict[str, Any] | None]] = []
    if GRID in kinds:
        requests += [(rng.choice(data.tokens), GRID_QUERY, {"u": u}) for u in data.usernames]
    if DETAIL in kinds:
        requests += [(rng.choice(data.tokens), DETAIL_QUERY, {"id": p}) for p in data.post_ids]
    answers = await post_many(url, requests)
    return [answer.error for answer in answers if answer.data is None]


# --- k6 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointRun:
    server: str
    kind: str
    rate: int
    run: int
    position: int  # in the run's order
    requests: int
    failed: int
    errors_transport: int
    errors_status: int
    errors_graphql: int
    dropped: int
    p50_ms: float
    p99_ms: float
    window_s: float  # between k6's setup() and teardown()
    server_cpu_s: float
    db_cpu_s: float
    k6_cpu_s: float
    other_cpu_s: float  # the machine's busy time less the server's, the databases' and k6's
    marked: bool  # whether the window came from k6's markers (else: the whole k6 run)
    failure_samples: list[str]
    duration_s: int

    @property
    def ok(self) -> int:
        return self.requests - self.failed

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.duration_s

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 1.0

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu_s / self.requests * 1000 if self.requests else float("nan")

    @property
    def db_cpu_ms(self) -> float:
        return self.db_cpu_s / self.requests * 1000 if self.requests else float("nan")

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.window_s if self.window_s else float("nan")

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.error_rate < CLEAN_ERROR_RATE and self.dropped == 0

    @property
    def k6_cores(self) -> float:
        return self.k6_cpu_s / self.window_s if self.window_s else float("nan")

    @property
    def other_cores(self) -> float:
        """CPU of everything else on the machine (other jobs), in cores."""
        return self.other_cpu_s / self.window_s if self.window_s else float("nan")


def run_k6(
    server: Server,
    kind: str,
    rate: int,
    duration_s: int,
    options: Options,
    work_dir: Path,
    *,
    run: int = -1,
    position: int = 0,
) -> PointRun:
    """One k6 run of ``kind`` against ``server``; the server's CPU is read when k6 logs
    its setup() and teardown() markers."""
    start_cpu = server.cpu()
    start_at = time.perf_counter()
    end_cpu: CpuSample | None = None
    end_at = 0.0
    marked_start = False
    samples: list[str] = []
    k6 = start_k6(
        K6_SCRIPT,
        work_dir,
        {
            "TARGET": server.child.url,
            "KIND": kind,
            "DATA": server.data,
            "RATE": rate,
            "DURATION": duration_s,
            "PRE_VUS": options.pre_vus,
            "MAX_VUS": options.pre_vus,
            "TIMEOUT": options.timeout,
        },
        name=f"{server.name.replace(' ', '-')}-{kind}-{rate}",
        pipe=True,
    )
    process = k6.process
    watchdog = threading.Timer(duration_s + 180, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        with k6.log_path.open("wb") as output:
            for line in process.stdout:
                if b"READ_PATH_START" in line and not marked_start:
                    start_cpu = server.cpu(process.pid)
                    start_at = time.perf_counter()
                    marked_start = True
                elif b"READ_PATH_END" in line and end_cpu is None:
                    end_cpu = server.cpu(process.pid)
                    end_at = time.perf_counter()
                if b"FAILED" in line and len(samples) < 5:
                    samples.append(line.decode(errors="replace").strip())
                output.write(line)
        summary = k6.finish(timeout=60)
    finally:
        watchdog.cancel()
    marked = marked_start and end_cpu is not None
    if end_cpu is None:
        end_cpu = server.cpu()
        end_at = time.perf_counter()
    used = end_cpu - start_cpu
    if not marked:  # k6 gone: its CPU is not known
        used = CpuSample(used.server, used.db, 0.0, used.server + used.db)
    requests = summary.count("http_reqs")
    return PointRun(
        server=server.name,
        kind=kind,
        rate=rate,
        run=run,
        position=position,
        requests=requests,
        failed=round(summary.stat("failed_requests", "rate") * requests),
        errors_transport=summary.count("errors_transport"),
        errors_status=summary.count("errors_status"),
        errors_graphql=summary.count("errors_graphql"),
        dropped=summary.count("dropped_iterations"),
        p50_ms=summary.stat("latency_all", "med"),
        p99_ms=summary.stat("latency_all", "p(99)"),
        window_s=end_at - start_at,
        server_cpu_s=used.server,
        db_cpu_s=used.db,
        k6_cpu_s=used.k6,
        other_cpu_s=max(0.0, used.machine - used.server - used.db - used.k6),
        marked=marked,
        failure_samples=samples,
        duration_s=duration_s,
    )


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Seeded:
    users: int
    follows: int
    seed_seconds: float


@dataclass
class Report:
    command: str
    options: Options
    code: str = ""
    baseline: str = ""
    seeded: Seeded | None = None
    baseline_seeded: Seeded | None = None
    data: ReadData | None = None
    servers: list[Server] = field(default_factory=list)
    runs: list[PointRun] = field(default_factory=list)
    saturated: dict[str, int] = field(default_factory=dict)  # "server/kind" -> rate
    ceiling: list[CeilingRound] = field(default_factory=list)
    same_pages: str = "-"
    load_before: float = 0.0
    load_after: float = 0.0
    seconds: float = 0.0
    finished: str = ""
    baseline_failed: str = ""


def point_key(server: str, kind: str) -> str:
    return f"{server}/{kind}"


def start_current_servers(
    env: BenchEnv, options: Options, data_path: Path, db_roots: list[int]
) -> list[Server]:
    started: list[Server] = []
    try:
        for strategy in (PRECOMPUTED, FANOUT):
            for processes in options.processes:
                name = server_name(strategy, processes)
                child = start_api_server(
                    env.settings,
                    env.servers,
                    env.code,
                    {
                        "APERTURE_SERVE_RUNS_WORKERS": "false",
                        "APERTURE_FEED_READ_STRATEGY": strategy,
                        **SERVER_SETTINGS[LIMITED],
                    },
                    env.work_dir / f"serve-{name.replace(' ', '-')}.log",
                    processes=processes,
                )
                kinds = KINDS if strategy == PRECOMPUTED else (FEED,)
                started.append(
                    Server(
                        name=name,
                        strategy=strategy,
                        processes=processes,
                        child=child,
                        data=data_path,
                        db_roots=db_roots,
                        kinds=kinds,
                        revision="current",
                    )
                )
                log(f"{name}: {child.url} (pid {child.process.pid})")
    except BaseException:
        for server in started:
            server.child.stop()
        raise
    return started


def start_baseline(
    options: Options, temp: Path, work_dir: Path, report: Report
) -> tuple[layering.Side, Server]:
    """The baseline revision's worktree, holder (own data, seeded by its code) and server."""
    assert options.baseline is not None
    tree = temp / "baseline-src"
    layering.add_worktree(options.baseline, tree)
    revision = layering.read_revision(layering.BASELINE, tree)
    report.baseline = revision.description
    side = layering.Side(name=layering.BASELINE, revision=revision, data_dir=temp / "baseline-data")
    side_options = layering.parse_options(
        [
            "--part",
            "e2e",
            "--edges",
            str(options.edges),
            "--viewers",
            str(options.viewers),
            "--baseline",
            options.baseline,
            "--rate-limits",
            "on",
        ]
    )
    log(f"baseline: {revision.description}; starting its servers, migrating, seeding")
    try:
        layering.start_holder(side, side_options, work_dir)
        layering.start_server(side, side_options, work_dir)
    except BaseException:
        side.stop()
        raise
    assert side.server is not None
    assert side.tokens_path is not None
    report.baseline_seeded = Seeded(
        users=side.users, follows=side.follows, seed_seconds=side.seed_seconds
    )
    server = Server(
        name=server_name(BASELINE, 1),
        strategy=BASELINE,
        processes=1,
        child=side.server,
        data=side.tokens_path,
        db_roots=database_roots(side.data_dir),
        kinds=(FEED,),
        revision=revision.label,
    )
    return side, server


def warm_up(server: Server, options: Options, work_dir: Path) -> None:
    """A k6 warm-up per kind at the lowest rate (not measured)."""
    if not options.warmup_s:
        return
    for kind in server.kinds:
        warm = run_k6(server, kind, min(options.rates), options.warmup_s, options, work_dir)
        settle(server)
        log(
            f"{server.name} {kind}: k6 warm-up {warm.requests} requests, {warm.failed} failed, "
            f"p50 {warm.p50_ms:.1f} ms"
        )


def measure_idle(servers: Sequence[Server], seconds: float) -> None:
    before = [(server, server.cpu().server) for server in servers]
    time.sleep(seconds)
    for server, cpu in before:
        server.idle_cpu_ms_per_s = (server.cpu().server - cpu) / seconds * 1000


def settle(server: Server, timeout_s: float = 30.0) -> None:
    """Wait until the server is idle (under a tenth of a core over half a second): a
    saturated run leaves requests queued that would compete with the next run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = server.cpu()
        time.sleep(0.5)
        used = server.cpu() - before
        if used.server < 0.05 and used.db < 0.05:
            return
    log(f"{server.name}: still busy {timeout_s:.0f} s after its run")


def run_order(points: Sequence[tuple[Server, str]], run: int) -> list[tuple[Server, str]]:
    """Rotated by the run and reversed every other run: each point meets other positions."""
    if not points:
        return []
    shift = run % len(points)
    order = [*points[shift:], *points[:shift]]
    return order[::-1] if run % 2 else order


def saturated(runs: Sequence[PointRun], rate: int) -> bool:
    return (
        median([run.error_rate for run in runs]) > SATURATED_ERROR_RATE
        or median([run.achieved_rps for run in runs]) < SATURATED_ACHIEVED * rate
    )


def measure(
    servers: Sequence[Server],
    options: Options,
    work_dir: Path,
    report: Report,
    schema: strawberry.Schema,
) -> None:
    points = [(server, kind) for kind in KINDS for server in servers if kind in server.kinds]
    for rate in options.rates:
        live = [p for p in points if point_key(p[0].name, p[1]) not in report.saturated]
        for run in range(options.runs):
            for position, (server, kind) in enumerate(run_order(live, run)):
                time.sleep(PAUSE_SECONDS)
                result = run_k6(
                    server,
                    kind,
                    rate,
                    options.duration_s,
                    options,
                    work_dir,
                    run=run,
                    position=position,
                )
                report.runs.append(result)
                settle(server)
                log(
                    f"{rate} req/s run {run + 1}/{options.runs} {server.name} {kind}: "
                    f"{result.cpu_ms:.2f} ms CPU/request (DB {result.db_cpu_ms:.2f}), "
                    f"p50 {result.p50_ms:.1f} p99 {result.p99_ms:.1f} ms, "
                    f"{result.failed}/{result.requests} failed, {result.dropped} dropped"
                )
                for sample in result.failure_samples[:2]:
                    log(f"  {sample[:300]}")
            report.ceiling.append(
                ceiling_round(schema, options.ceiling_requests, f"{rate} req/s run {run + 1}")
            )
        for server, kind in live:
            mine = [
                r
                for r in report.runs
                if r.server == server.name and r.kind == kind and r.rate == rate
            ]
            if mine and saturated(mine, rate):
                report.saturated[point_key(server.name, kind)] = rate
                log(f"{server.name} {kind}: saturated at {rate} req/s; not run higher")


def run(options: Options, command: str) -> Report:
    started = time.perf_counter()
    report = Report(command=command, options=options)
    report.load_before = os.getloadavg()[0]
    # As the issue defines the ceiling: stock Strawberry with its parser and validation
    # caches (``--ceilings-only`` also measures it with the parser cache alone).
    schema = ceiling_schema(validation_cache=True)
    with embedded_platform("read-path", logs="read_path-logs", fresh_logs=True) as env:
        report.code = env.code.description
        try:
            report.servers = measure_servers(env, options, report, schema)
        finally:
            if options.baseline is not None:
                layering.remove_worktree(env.root / "baseline-src")
    report.load_after = os.getloadavg()[0]
    report.seconds = time.perf_counter() - started
    report.finished = utc_now()
    return report


def measure_servers(
    env: BenchEnv, options: Options, report: Report, schema: strawberry.Schema
) -> list[Server]:
    """Seed, start every server, warm them up, measure; the servers it started."""
    work_dir = env.work_dir
    seed_options = edge_options(["--edges", str(options.edges), "--viewers", str(options.viewers)])
    seeded = asyncio.run(edge_seed(env.settings, env.servers, seed_options))
    report.seeded = Seeded(seeded.users, seeded.follows, seeded.seconds)
    log(f"seeded {seeded.users} users, {len(seeded.tokens)} tokens in {seeded.seconds:.1f}s")
    data = ReadData(tokens=seeded.tokens)
    report.data = data
    data_path = write_data(work_dir / "read-data.json", tokens=data.tokens)
    db_roots = database_roots(env.settings.data_dir)
    log(f"database processes (CPU counted per request): {db_roots}")
    servers_started: list[Server] = []
    side: layering.Side | None = None
    try:
        servers_started += start_current_servers(env, options, data_path, db_roots)
        if options.baseline is not None:
            try:
                side, baseline_server = start_baseline(options, env.root, work_dir, report)
                servers_started.append(baseline_server)
            except (layering.SideFailed, RuntimeError) as error:
                report.baseline_failed = str(error)[:2000]
                log(f"baseline: FAILED, measured without it: {error}")
        for server in servers_started:
            tokens = data.tokens
            if server.strategy == BASELINE:
                tokens = layering.tokens_of(side) if side is not None else []
            warm = asyncio.run(warm_feeds(server.child.url, tokens, FEED_QUERY_20))
            server.warm_seconds, server.warm_errors, server.pages = (
                warm.seconds,
                warm.errors,
                warm.pages,
            )
            log(
                f"{server.name}: warm feed pass over {len(tokens)} viewers in "
                f"{warm.seconds:.1f}s, {len(warm.errors)} errors"
            )
            if server is servers_started[0]:
                asyncio.run(collect(server.child.url, data, seeded.users, warm.pages))
                write_data(
                    data_path,
                    tokens=data.tokens,
                    usernames=data.usernames,
                    post_ids=data.post_ids,
                )
                log(
                    f"collected {len(data.usernames)} public usernames, "
                    f"{len(data.post_ids)} visible posts; fields per response "
                    + ", ".join(f"{k} {v:.0f}" for k, v in data.fields.items())
                )
                if not data.usernames or not data.post_ids:
                    raise RuntimeError("no public usernames or visible posts to read")
            elif set(server.kinds) - {FEED}:
                server.warm_errors += asyncio.run(warm_other(server.child.url, data, server.kinds))
        report.same_pages = same_pages(servers_started)
        for server in servers_started:
            warm_up(server, options, work_dir)
        measure_idle(servers_started, 2.0 if options.quick else 5.0)
        report.ceiling.append(ceiling_round(schema, options.ceiling_requests, "start"))
        measure(servers_started, options, work_dir, report, schema)
    finally:
        for server in servers_started:
            if server.strategy != BASELINE:
                server.child.stop()
        if side is not None:
            layering.stop_sides({layering.BASELINE: side})
    return servers_started


def same_pages(servers: Sequence[Server]) -> str:
    """Whether the current servers (both strategies) gave every viewer the same first page."""
    current = [server for server in servers if server.strategy != BASELINE]
    if len(current) < 2:
        return "-"
    first = current[0].pages
    compared = set(first)
    for server in current[1:]:
        compared &= set(server.pages)
    same = sum(1 for index in compared if all(s.pages[index] == first[index] for s in current))
    return f"{same} of {len(compared)}"


# --- report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """The runs of one point (server, kind) at one rate, summarised."""

    server: str
    kind: str
    rate: int
    runs: list[PointRun]

    @property
    def cpu_ms(self) -> float:
        return median([run.cpu_ms for run in self.runs])

    @property
    def db_cpu_ms(self) -> float:
        return median([run.db_cpu_ms for run in self.runs])

    @property
    def p50(self) -> float:
        return median([run.p50_ms for run in self.runs])

    @property
    def p99(self) -> float:
        return median([run.p99_ms for run in self.runs])

    @property
    def achieved(self) -> float:
        return median([run.achieved_rps for run in self.runs])

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def requests(self) -> int:
        return sum(run.requests for run in self.runs)

    @property
    def dropped(self) -> int:
        return sum(run.dropped for run in self.runs)

    @property
    def share(self) -> float:
        return median([run.server_cpu_share for run in self.runs])

    @property
    def k6_cores(self) -> float:
        return median([run.k6_cores for run in self.runs])

    @property
    def clean_runs(self) -> list[PointRun]:
        return [run for run in self.runs if run.clean]

    @property
    def clean_cpu_ms(self) -> float:
        """Median CPU per request of the clean runs (NaN: none was clean)."""
        return median([run.cpu_ms for run in self.clean_runs])

    @property
    def clean_label(self) -> str:
        return f"{len(self.clean_runs)}/{len(self.runs)}"

    @property
    def other_cores(self) -> float:
        return max(run.other_cores for run in self.runs)


def cells(report: Report) -> dict[tuple[str, str, int], Cell]:
    grouped: dict[tuple[str, str, int], list[PointRun]] = {}
    for run in report.runs:
        grouped.setdefault((run.server, run.kind, run.rate), []).append(run)
    return {key: Cell(key[0], key[1], key[2], runs) for key, runs in grouped.items()}


def ceiling_ms(report: Report) -> float:
    return median([round_.cpu_ms for round_ in report.ceiling])


def render_header(report: Report) -> list[str]:
    options = report.options
    lines = [
        "# Read-path benchmark (issue 9): CPU per warm read, one and two web processes, "
        "against the in-memory ceiling",
        "",
        f"- Command: `{report.command}`; finished {report.finished}, wall time "
        f"{report.seconds:.0f} s",
        f"- Current: {report.code} (a copy of the application taken at the start)",
    ]
    if options.baseline is not None:
        lines.append(
            f"- Baseline: {report.baseline or options.baseline}"
            + (f" (**failed**: {report.baseline_failed[:300]})" if report.baseline_failed else "")
        )
    lines += [
        *describe_machine(load_generator="k6"),
        f"- Load average (1 min): {report.load_before:.2f} before, {report.load_after:.2f} after",
    ]
    seeded, data = report.seeded, report.data
    if seeded is not None and data is not None:
        lines.append(
            f"- Data: `{options.edges.name}`, {seeded.users:,} users, {seeded.follows:,} follows "
            f"(both directions), 2 posts per user, every user active, {len(data.tokens):,} "
            f"viewers with a bearer token, seeded in {seeded.seed_seconds:.1f} s"
            + (
                f" (baseline: its own copy, seeded by its code in "
                f"{report.baseline_seeded.seed_seconds:.1f} s)"
                if report.baseline_seeded is not None
                else ""
            )
            + f"; {len(data.usernames):,} public usernames ({data.private_or_missing} private or "
            f"missing), {len(data.post_ids):,} visible posts (from the first feed pages)"
        )
        lines.append(
            "- Response sizes (medians over the warm-up reads): "
            + "; ".join(
                f"{KIND_LABELS[kind]} {data.sizes.get(kind, float('nan')):.0f} post(s), "
                f"{data.fields.get(kind, float('nan')):.0f} fields"
                for kind in KINDS
            )
        )
    limits = ", ".join(f"`{k}={v}`" for k, v in SERVER_SETTINGS[LIMITED].items())
    lines += [
        "- Servers: `aperture serve` from the copy (`APERTURE_SERVE_RUNS_WORKERS=false`, "
        f"{limits}: the limiter runs and refuses nothing); `precomputed` is the default feed, "
        "`fanout_on_read` has `APERTURE_FEED_READ_STRATEGY=fanout_on_read`; xN is "
        "`--processes N`. All up throughout, one driven at a time.",
        f"- Load: k6 `{K6_SCRIPT}.js`, `constant-arrival-rate`, {options.pre_vus:,} pre-allocated "
        f"VUs (= max VUs; each VU its own keep-alive connection), timeout {options.timeout}; "
        f"{options.runs} run(s) of {options.duration_s} s per point and rate, interleaved "
        "(the order rotates run by run); a k6 warm-up of "
        f"{options.warmup_s} s per server and kind first. A point that saturates (median error "
        f"rate > {SATURATED_ERROR_RATE:.0%} or under {SATURATED_ACHIEVED:.0%} of the rate "
        "achieved) is not run at higher rates.",
        "",
    ]
    return lines


def render_matrix(report: Report) -> list[str]:
    table = cells(report)
    lines = [
        "## Every read, every server, every rate",
        "",
        "| Kind | Strategy | Processes | Rate req/s | Achieved ok req/s | p50 ms | p99 ms "
        "| Failed / requests | Dropped | Server CPU ms/request (min-max) | DB CPU ms/request "
        "| Server CPU | k6 CPU | Other jobs' CPU, max |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    servers = {server.name: server for server in report.servers}
    for kind in KINDS:
        for server in report.servers:
            if kind not in server.kinds:
                continue
            for rate in report.options.rates:
                cell = table.get((server.name, kind, rate))
                strategy = (
                    f"baseline {server.revision}"
                    if server.strategy == BASELINE
                    else server.strategy
                )
                if cell is None:
                    at = report.saturated.get(point_key(server.name, kind))
                    if at is not None and at < rate:
                        lines.append(
                            f"| {kind} | {strategy} | {server.processes} | {rate} "
                            f"| not run: saturated at {at} req/s | | | | | | | | | |"
                        )
                    continue
                cpu = [run.cpu_ms for run in cell.runs]
                lines.append(
                    f"| {kind} | {strategy} | {servers[cell.server].processes} | {rate} "
                    f"| {fmt(cell.achieved)} | {fmt(cell.p50)} | {fmt(cell.p99)} "
                    f"| {cell.failed:,} / {cell.requests:,} | {cell.dropped:,} "
                    f"| {fmt(cell.cpu_ms, 2)} ({spread(cpu)}) | {fmt(cell.db_cpu_ms, 2)} "
                    f"| {cell.share:.0%} | {cell.k6_cores:.0%} | {cell.other_cores:.0%} |"
                )
    errors = [run for run in report.runs if run.failed]
    lines += [
        "",
        "- Medians over runs (p50, p99, achieved, CPU); failed, requests and dropped are sums. "
        "Achieved: responses that were 200 with no `errors` per second of the scenario. "
        "Server CPU ms/request: user+system CPU of the `aperture serve` process tree "
        "(/proc, 10 ms ticks; every uvicorn process with `--processes 2`, reaped ones "
        "included) between k6's `setup()` and `teardown()`, over the requests k6 completed; "
        "DB: PostgreSQL's and Valkey's processes the same way. Server CPU and k6 CPU: per wall "
        "second over the same window (100% = one core). Other jobs' CPU: the machine's busy "
        "time (/proc/stat) less the server's, the databases' and k6's, the highest of the "
        "runs: anything else running on the machine (another benchmark, a test suite); "
        "well above a few % means the runs were disturbed.",
        "- Failures by cause: "
        + (
            "; ".join(
                f"{run.server} {run.kind} {run.rate} req/s run {run.run + 1}: "
                f"{run.errors_transport} transport/timeout, {run.errors_status} HTTP status, "
                f"{run.errors_graphql} GraphQL errors"
                for run in errors[:12]
            )
            if errors
            else "none"
        ),
    ]
    samples = [sample for run in errors for sample in run.failure_samples][:3]
    for sample in samples:
        lines.append(f"  - `{sample[:300]}`")
    unmarked = sum(1 for run in report.runs if not run.marked)
    if unmarked:
        lines.append(
            f"- {unmarked} run(s) had no k6 start/end markers: their CPU covers the whole "
            "k6 process, VU start-up included."
        )
    idle = ", ".join(f"{server.name} {fmt(server.idle_cpu_ms_per_s)}" for server in report.servers)
    lines.append(f"- Idle server CPU, ms per second with no requests: {idle}")
    warm = "; ".join(
        f"{server.name} {server.warm_seconds:.1f} s, {len(server.warm_errors)} errors"
        for server in report.servers
    )
    lines.append(f"- Warm feed pass (every viewer's first page once): {warm}")
    lines.append(
        f"- Same first feed page from every current server (both strategies): "
        f"{report.same_pages} viewers"
    )
    return lines


def render_ceiling(report: Report) -> list[str]:
    table = cells(report)
    rounds = report.ceiling
    if not rounds:
        return []
    ceiling = ceiling_ms(report)
    fields = rounds[0].fields
    cpu = [round_.cpu_ms for round_ in rounds]
    lines = [
        "## The in-memory ceiling",
        "",
        "A stock `strawberry.Schema(query=..., extensions=[ParserCache, ValidationCache])` "
        "defined in "
        "`bench/read_path.py`, with the feed's shape (`homeFeed(first:)` returning a "
        "`PostConnection` of `edges { node }`, `Post` with `id caption author { username } "
        "likeCount commentCount viewerHasLiked` as plain attributes) over 20 posts already in "
        f"memory, the same document; `await schema.execute(query)` {rounds[0].requests:,} "
        "times per round after a warm-up (parsed and validated once, as its caches allow), "
        "in the benchmark's process, CPU from "
        f"`time.process_time()`; {len(rounds)} rounds (one before the k6 runs, one after "
        "each rate's run).",
        "",
        "| CPU ms/request, median (min-max) | Wall ms/request, median | Fields per response "
        "| CPU µs/field |",
        "|--:|--:|--:|--:|",
        f"| {fmt(ceiling, 3)} ({spread(cpu, digits=3)}) | "
        f"{fmt(median([r.wall_ms for r in rounds]), 3)} | {fields} "
        f"| {fmt(ceiling * 1000 / fields, 2)} |",
        "",
        "### Our warm feed against the ceiling",
        "",
        "| Strategy | Processes | Rate req/s | Clean runs | Server CPU ms/request, clean runs "
        "| Ceiling ms/request | Ratio |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for server in report.servers:
        if server.strategy == FANOUT:
            continue
        for rate in report.options.rates:
            cell = table.get((server.name, FEED, rate))
            if cell is None:
                continue
            strategy = (
                f"baseline {server.revision}" if server.strategy == BASELINE else server.strategy
            )
            lines.append(
                f"| {strategy} | {server.processes} | {rate} | {cell.clean_label} "
                f"| {fmt(cell.clean_cpu_ms, 2)} | {fmt(ceiling, 3)} "
                f"| {fmt(cell.clean_cpu_ms / ceiling, 1)}x |"
            )
    lines += [
        "",
        f"Clean runs: under {CLEAN_ERROR_RATE:.0%} failed and none dropped; the CPU of the "
        "others mixes served pages with cheap refusals. "
        "The ceiling is only the GraphQL execution of a page already in memory: no HTTP, no "
        "session check, no rate limiter, no cost analysis, no Valkey or PostgreSQL round "
        "trips, no serialisation of the response. The ratio is how far the whole server is "
        "from it.",
    ]
    return lines


def render_fields(report: Report) -> list[str]:
    table = cells(report)
    data = report.data
    if data is None:
        return []
    lines = [
        "## CPU per field",
        "",
        "Server CPU per request divided by the fields in the response (median response of "
        "the warm-up reads: every key of every object of `data`, e.g. a feed page of 20 "
        "posts has 2 + 20 x 8 = 162). The seed gives every user 2 posts, so a grid page "
        "holds 2 posts, not 12: its fixed per-request cost (HTTP, session, limiter, the user "
        "lookup) is spread over few fields.",
        "",
        "| Kind | Strategy | Processes | Rate req/s | Clean runs | Fields "
        "| Server CPU ms/request, clean runs | CPU µs/field |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for kind in KINDS:
        fields = data.fields.get(kind, float("nan"))
        for server in report.servers:
            if server.strategy != PRECOMPUTED or kind not in server.kinds:
                continue
            for rate in report.options.rates:
                cell = table.get((server.name, kind, rate))
                if cell is None:
                    continue
                lines.append(
                    f"| {kind} | {server.strategy} | {server.processes} | {rate} "
                    f"| {cell.clean_label} | {fields:.0f} | {fmt(cell.clean_cpu_ms, 2)} "
                    f"| {fmt(cell.clean_cpu_ms * 1000 / fields, 1)} |"
                )
    if report.ceiling:
        fields_c = report.ceiling[0].fields
        lines.append(
            f"| feed (in-memory ceiling) | stock Strawberry | - | - | - | {fields_c} "
            f"| {fmt(ceiling_ms(report), 3)} | {fmt(ceiling_ms(report) * 1000 / fields_c, 2)} |"
        )
    return lines


def render_baseline(report: Report) -> list[str]:
    options = report.options
    if options.baseline is None:
        return []
    lines = ["## Baseline against current: warm `homeFeed(first: 20)`, one process", ""]
    if report.baseline_failed:
        return [*lines, f"The baseline could not run: `{report.baseline_failed[:500]}`"]
    base_name = server_name(BASELINE, 1)
    current_name = server_name(PRECOMPUTED, 1)
    lines += [
        f"`{options.baseline}` (each side its own data, seeded by its own code, the same "
        "graph and settings) against the current tree, the runs interleaved with every other "
        "point. The ratio compares the medians of the clean runs (under "
        f"{CLEAN_ERROR_RATE:.0%} failed, none dropped); paired: current / baseline within "
        "each run index where both runs were clean.",
        "",
        "| Rate req/s | Side | Server CPU ms/request, all runs (min-max) | Clean runs "
        "| CPU ms/request, clean runs | DB CPU ms/request | p50 ms | p99 ms "
        "| Failed / requests | Current / baseline CPU | Paired median (range) |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    table = cells(report)
    for rate in options.rates:
        base = table.get((base_name, FEED, rate))
        cur = table.get((current_name, FEED, rate))
        if base is None or cur is None:
            continue
        by_run: dict[int, dict[str, float]] = {}
        for run in (*base.runs, *cur.runs):
            if run.clean:
                by_run.setdefault(run.run, {})[run.server] = run.cpu_ms
        paired = [
            pair[current_name] / pair[base_name]
            for pair in by_run.values()
            if base_name in pair and current_name in pair and pair[base_name] > 0
        ]
        ratio = cur.clean_cpu_ms / base.clean_cpu_ms if base.clean_runs else float("nan")
        for side, cell in (("baseline", base), ("current", cur)):
            cpu = [run.cpu_ms for run in cell.runs]
            last = side == "current"
            lines.append(
                f"| {rate} | {side} | {fmt(cell.cpu_ms, 2)} ({spread(cpu)}) "
                f"| {cell.clean_label} | {fmt(cell.clean_cpu_ms, 2)} "
                f"| {fmt(cell.db_cpu_ms, 2)} | {fmt(cell.p50)} | {fmt(cell.p99)} "
                f"| {cell.failed:,} / {cell.requests:,} "
                f"| {f'**{fmt(ratio, 3)}**' if last else ''} "
                f"| {f'{fmt(median(paired), 3)} ({spread(paired, digits=3)})' if last else ''} |"
            )
    return lines


def render(report: Report) -> str:
    lines = render_header(report)
    for section in (render_matrix, render_ceiling, render_fields, render_baseline):
        part = section(report)
        if part:
            lines += [*part, ""]
    return "\n".join(lines)


def raw_figures(report: Report) -> dict[str, Any]:
    data = report.data
    return {
        "command": report.command,
        "options": {key: str(value) for key, value in asdict(report.options).items()},
        "code": report.code,
        "baseline": report.baseline,
        "baseline_failed": report.baseline_failed,
        "seeded": asdict(report.seeded) if report.seeded else None,
        "baseline_seeded": asdict(report.baseline_seeded) if report.baseline_seeded else None,
        "data": {
            "viewers": len(data.tokens),
            "usernames": len(data.usernames),
            "post_ids": len(data.post_ids),
            "fields": data.fields,
            "sizes": data.sizes,
            "errors": data.errors,
            "private_or_missing": data.private_or_missing,
        }
        if data
        else None,
        "servers": [
            {
                "name": server.name,
                "strategy": server.strategy,
                "processes": server.processes,
                "revision": server.revision,
                "kinds": list(server.kinds),
                "warm_seconds": server.warm_seconds,
                "warm_errors": server.warm_errors[:10],
                "idle_cpu_ms_per_s": server.idle_cpu_ms_per_s,
            }
            for server in report.servers
        ],
        "runs": [
            {
                **asdict(run),
                "cpu_ms_per_request": run.cpu_ms,
                "db_cpu_ms_per_request": run.db_cpu_ms,
                "achieved_rps": run.achieved_rps,
            }
            for run in report.runs
        ],
        "saturated": report.saturated,
        "ceiling": [asdict(round_) for round_ in report.ceiling],
        "same_pages": report.same_pages,
        "load_before": report.load_before,
        "load_after": report.load_after,
        "seconds": report.seconds,
        "finished": report.finished,
    }


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--ceilings-only" in arguments:
        # The in-memory ceiling alone, with and without graphql-core's validation cached.
        print(ceilings_only(rounds=7, requests=2000))
        return
    options = parse_options(arguments)
    if not options.edges.is_file():
        log(
            f"skipped: the edge list {options.edges} is absent (socfb-Reed98, from "
            "../shared/data/social-graphs/; --edges PATH names another)"
        )
        return
    report = run(options, command_line("bench.read_path", arguments, interpreter=True))
    write_report(RESULTS_PATH, [render(report)])
    DATA_PATH.write_text(json.dumps(raw_figures(report), indent=1, default=str))
    log(f"wrote {DATA_PATH.name} in {report.seconds:.0f}s")


if __name__ == "__main__":
    main()
