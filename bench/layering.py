"""Layering benchmark (issue 8): the server CPU of a warm ``homeFeed(first: 20)`` page,
before the refactor and now, measured in the same run.

Two sides, each run entirely from its own checkout with this virtual environment's Python:

* **baseline**: ``--baseline`` (default ``2cc49ef``, the code before the refactor), checked
  out with ``git worktree add`` into the run's temporary directory and removed at the end;
* **current**: ``--current-tree`` (default: this checkout, uncommitted changes included).

Two parts (``--part e2e|inprocess|all``, default ``all``; ``all`` runs e2e, then in-process):

**e2e**: for each side a *holder* subprocess (this file run by path with ``cwd`` and
``PYTHONPATH`` = that checkout) starts embedded PostgreSQL and Valkey in a data dir of
its own (``APERTURE_DATA_DIR``), migrates them with that checkout's migrations and seeds
socfb-Reed98 with that checkout's ``bench.edge.seed`` (``load_graph``, every user active,
a bearer token per viewer), then keeps the servers up until the benchmark closes its
stdin. Then an ``aperture serve`` subprocess per side (``python -m aperture.cli serve``,
``cwd`` and ``PYTHONPATH`` = that checkout, one web process, same settings) reads each
viewer's first page once and gets a k6 warm-up, and k6 drives the two servers in turn at
one fixed arrival rate (``bench/k6/feed_reads.js``, ``constant-arrival-rate``, uniformly
random viewers): ``--runs`` runs per side, interleaved, which side goes first alternating
from run to run. Per run: the serve process's user+system CPU (/proc) over the k6 run
divided by the requests k6 completed, k6's p50 and p99 and its failed requests. On a
small machine k6, PostgreSQL, Valkey and the server share the cores: the figures are noisy.

**inprocess**: for each side one subprocess, run from its checkout the same way, starts
embedded servers in a data dir of its own, migrates, seeds a generated graph
(``aperture.seed.generate_graph`` and ``load_graph``, the same graph on both sides), signs
in as the user who follows the most accounts and builds the app
(``graphql_api.app.create_app``), with the e2e servers' settings. It then measures one
round per line the benchmark writes on its stdin, answering a JSON line each: a warm-up,
then ``--requests`` sequential ``homeFeed(first: 20)`` requests through
``httpx.ASGITransport``, timed with ``time.process_time()`` (the whole process, the app and
the client; the client's share is the same on both sides; PostgreSQL and Valkey are
other processes). ``--runs`` rounds per side, interleaved, the first side alternating.

The report is printed and written to ``bench/results/layering.md`` (raw figures in
``layering.json``, holder, server, in-process and k6 logs in ``layering-logs/``).

    python -m bench.layering [--quick] [--part e2e|inprocess|all] [--runs 5] [--rate 50]
        [--duration 15] [--requests 2000] [--baseline 2cc49ef] [--current-tree PATH]
        [--rate-limits off|on]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.edge import LIMITED, PAUSE_SECONDS, SERVER_SETTINGS, UNLIMITED, E2ERun, pooled_ms
from bench.harness import (
    FEED_QUERY_20,
    PROJECT_ROOT,
    RESULTS_DIR,
    Child,
    CodeSnapshot,
    Runs,
    WarmPass,
    add_seed_arguments,
    alternating,
    argument_parser,
    command_line,
    describe_machine,
    fmt,
    git,
    keep_logs,
    log,
    log_run,
    median,
    run_k6,
    server_env,
    spawn,
    spread,
    start_api_server,
    utc_now,
    warm_feeds,
    write_report,
)
from bench.layering_side import (
    HOLD_COMMAND,
    INPROCESS_COMMAND,
    INPROCESS_GRAPH_SEED,
    INPROCESS_MEAN_FOLLOWING,
    INPROCESS_POSTS_PER_USER,
    INPROCESS_USERS,
)
from infra.servers import Servers
from infra.settings import Settings

RESULTS_PATH = RESULTS_DIR / "layering.md"
DATA_PATH = RESULTS_DIR / "layering.json"
SIDE_SCRIPT = Path(__file__).resolve().with_name("layering_side.py")
BASELINE_REV = "2cc49ef"
BASELINE = "baseline"
CURRENT = "current"
SIDES = (BASELINE, CURRENT)
HOLDER_START_TIMEOUT_S = 600.0
E2E = "e2e"
INPROCESS = "inprocess"
PARTS = {E2E: (E2E,), INPROCESS: (INPROCESS,), "all": (E2E, INPROCESS)}
INPROCESS_ROUND_TIMEOUT_S = 600.0
PAGE_SIZE = 20  # edges of a full homeFeed(first: 20) page
# What the servers run (the rest of a tree, such as bench/, docs/ and tests/, is not).
APP_DIRS = (
    "aperture/",
    "domain/",
    "graphql_api/",
    "db/",
    "migrations/",
    "workers/",
    "recommender/",
)
APP_FILES = ("alembic.ini", "pyproject.toml", "uv.lock")
RATE_LIMIT_MODES = {"off": UNLIMITED, "on": LIMITED}


class SideFailed(RuntimeError):
    """One side could not be prepared or started (for the current tree mid-refactor, an
    expected outcome): the side, what failed and the tail of its log."""

    def __init__(self, side: str, what: str, log_tail: str = "") -> None:
        super().__init__(
            f"{side}: {what}" + (f"\n--- log tail ---\n{log_tail}" if log_tail else "")
        )
        self.side = side


# --- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    quick: bool
    part: str  # a key of PARTS
    edges: Path
    viewers: int
    rate: int
    runs: int
    duration_s: int
    warmup_s: int
    idle_s: float
    baseline: str
    current_tree: Path
    rate_limits: str  # "off" or "on" (buckets nothing can empty, as in bench.edge)
    requests: int  # timed in-process requests per round

    @property
    def parts(self) -> tuple[str, ...]:
        return PARTS[self.part]

    @property
    def warmup_requests(self) -> int:
        """In-process requests before each round's timed ones."""
        return max(50, self.requests // 10)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argument_parser("bench.layering", __doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 runs of 5 s, 2 s k6 warm-up; 500 in-process requests per round",
    )
    parser.add_argument(
        "--part",
        choices=sorted(PARTS),
        default="all",
        help="e2e: k6 against aperture serve; inprocess: CPU per request through the ASGI "
        "app in one process; all: both",
    )
    add_seed_arguments(parser)
    parser.add_argument("--rate", type=int, default=50, help="k6 arrival rate, req/s")
    parser.add_argument(
        "--runs", type=int, default=5, help="k6 runs per side, and in-process rounds per side"
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per k6 run")
    parser.add_argument("--warmup", type=int, default=5, help="k6 warm-up seconds per side")
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds the servers' idle CPU is measured"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="timed in-process requests per side and round (default: 2000, --quick 500)",
    )
    parser.add_argument(
        "--baseline", default=BASELINE_REV, help="revision checked out as the baseline"
    )
    parser.add_argument(
        "--current-tree",
        type=Path,
        default=PROJECT_ROOT,
        help="checkout run as the current side, working tree as it is",
    )
    parser.add_argument(
        "--rate-limits",
        choices=sorted(RATE_LIMIT_MODES),
        default="off",
        help="off: APERTURE_RATE_LIMITS=false; on: the limiter runs with buckets nothing "
        "can empty (bench.edge's settings)",
    )
    args = parser.parse_args(argv)
    if E2E in PARTS[args.part] and not args.edges.is_file():
        parser.error(f"{args.edges} is not a file")
    current_tree = args.current_tree.resolve()
    if not (current_tree / "aperture" / "cli.py").is_file():
        parser.error(f"{current_tree} is not an Aperture checkout")
    quick = bool(args.quick)
    runs = 2 if quick else args.runs
    requests = args.requests if args.requests is not None else 500 if quick else 2000
    if runs < 1 or args.rate < 1 or requests < 1:
        parser.error("give at least one run, a positive rate and at least one request")
    return Options(
        quick=quick,
        part=args.part,
        edges=args.edges.resolve(),
        viewers=args.viewers,
        rate=args.rate,
        runs=runs,
        duration_s=5 if quick else args.duration,
        warmup_s=2 if quick else args.warmup,
        idle_s=2.0 if quick else args.idle,
        baseline=args.baseline,
        current_tree=current_tree,
        rate_limits=args.rate_limits,
        requests=requests,
    )


# --- revisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    side: str
    tree: Path
    commit: str
    subject: str
    changed: tuple[str, ...]  # paths that differ from the commit (tracked or untracked)

    @property
    def app_changed(self) -> list[str]:
        return [path for path in self.changed if is_app_path(path)]

    @property
    def label(self) -> str:
        return f"`{self.commit[:7]}`" + (" + working tree" if self.changed else "")

    @property
    def description(self) -> str:
        subject = self.subject if len(self.subject) <= 72 else self.subject[:69] + "..."
        text = f"`{self.commit}` ({subject})"
        if self.changed:
            text += (
                f" + working tree ({len(self.changed)} paths differ from the commit, "
                f"{len(self.app_changed)} of them in the application)"
            )
        return f"{text}; run from `{self.tree}`"


def is_app_path(path: str) -> bool:
    return path in APP_FILES or path.startswith(APP_DIRS)


def changed_paths(tree: Path) -> tuple[str, ...]:
    tracked = git("diff", "HEAD", "--name-only", "-z", tree=tree, check=True).split("\0")
    untracked = git(
        "ls-files", "--others", "--exclude-standard", "-z", tree=tree, check=True
    ).split("\0")
    return tuple(sorted({path for path in (*tracked, *untracked) if path}))


def read_revision(side: str, tree: Path) -> Revision:
    return Revision(
        side=side,
        tree=tree,
        commit=git("rev-parse", "HEAD", tree=tree, check=True),
        subject=git("log", "-1", "--format=%s", tree=tree, check=True),
        changed=changed_paths(tree),
    )


def app_files(tree: Path) -> dict[str, str]:
    """Every application file of the tree (tracked or not, unless ignored), path -> hash of
    its content: tells whether the code under test changed while the benchmark ran,
    commits or not."""
    listed = git(
        "ls-files", "--cached", "--others", "--exclude-standard", "-z", tree=tree, check=True
    )
    files: dict[str, str] = {}
    for path in sorted(set(listed.split("\0"))):
        file = tree / path
        if is_app_path(path) and file.is_file():
            files[path] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    return files


def edited_between(checkpoints: dict[str, dict[str, str]]) -> list[str]:
    """Paths whose content differs between the first and any later checkpoint."""
    states = list(checkpoints.values())
    edited: set[str] = set()
    for later in states[1:]:
        edited |= {
            path
            for path in states[0].keys() | later.keys()
            if states[0].get(path) != later.get(path)
        }
    return sorted(edited)


def add_worktree(rev: str, path: Path) -> None:
    git("worktree", "add", "--detach", str(path), rev, check=True)


def remove_worktree(path: Path) -> None:
    git("worktree", "remove", "--force", str(path))


# --- one side ---------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    revision: Revision
    data_dir: Path
    holder: Child | None = None
    server: Child | None = None
    tokens_path: Path | None = None
    users: int = 0
    follows: int = 0
    seed_seconds: float = 0.0
    viewers: int = 0
    settings: Settings | None = None
    servers: Servers | None = None
    warm: WarmPass | None = None
    idle_cpu_ms_per_s: float = float("nan")
    inprocess: Child | None = None  # the in-process part's subprocess
    inprocess_setup: InProcessSetup | None = None

    def stop(self) -> None:
        """Stop whatever of its processes runs (again: a no-op)."""
        try:
            if self.inprocess is not None:
                stop_child(self.inprocess)
        finally:
            try:
                if self.server is not None:
                    self.server.stop()
            finally:
                if self.holder is not None:
                    stop_child(self.holder)


@dataclass(frozen=True)
class InProcessSetup:
    """What a side's in-process subprocess reports once it is ready."""

    users: int
    follows: int
    viewer: str  # username
    following: int  # accounts the viewer follows
    seed_seconds: float
    setup_seconds: float
    edges: int  # of the warm-up's last page


def side_settings(data_dir: Path, servers: Servers | None = None) -> Settings:
    """The same settings for both sides (this checkout's defaults and environment, which
    ``server_env`` passes on: logical shards, fan-out threshold), their own data dir."""
    if servers is None:
        return Settings(data_dir=data_dir, database_urls=[], redis_url=None)
    return Settings(
        data_dir=data_dir, database_urls=list(servers.database_urls), redis_url=servers.redis_url
    )


def spawn_side(
    side: Side,
    arguments: Sequence[str],
    *,
    data_dir: Path,
    overrides: dict[str, str],
    log_path: Path,
    replies: bool = False,
) -> Child:
    """``bench/layering_side.py`` run with ``arguments`` from the side's checkout (``cwd`` and
    ``PYTHONPATH``), starting embedded servers in ``data_dir``; stdin a pipe (closing it
    ends the process), stdout a pipe too with ``replies`` (the log gets stderr), else the
    log."""
    tree = side.revision.tree
    env = server_env(
        side_settings(data_dir),
        Servers(database_urls=[], redis_url=""),
        CodeSnapshot(root=tree, description=side.revision.description),
        overrides,
    )
    # No server addresses: the subprocess starts embedded servers in its data dir.
    env.pop("APERTURE_DATABASE_URLS")
    env.pop("APERTURE_REDIS_URL")
    return spawn(
        # -P: not the script's directory on sys.path, only the checkout's packages
        ["-P", str(SIDE_SCRIPT), *arguments],
        env=env,
        cwd=tree,
        log_path=log_path,
        stdin=subprocess.PIPE,
        replies=replies,
    )


def check_modules(side: Side, outside: Sequence[str]) -> None:
    if outside:
        raise SideFailed(
            side.name, "modules came from outside the checkout: " + "; ".join(outside[:10])
        )


def start_holder(side: Side, options: Options, work_dir: Path) -> None:
    out = work_dir / f"{side.name}-data.json"
    side.holder = spawn_side(
        side,
        [
            HOLD_COMMAND,
            *("--edges", str(options.edges)),
            *("--viewers", str(options.viewers)),
            *("--out", str(out)),
        ],
        data_dir=side.data_dir,
        overrides={},
        log_path=work_dir / f"prepare-{side.name}.log",
    )
    process = side.holder.process
    deadline = time.monotonic() + HOLDER_START_TIMEOUT_S
    while not out.exists():
        if process.poll() is not None:
            raise SideFailed(
                side.name,
                f"preparing the data failed (exit {process.returncode})",
                side.holder.log_text()[-4000:],
            )
        if time.monotonic() > deadline:
            raise SideFailed(side.name, "preparing the data timed out", side.holder.log_text())
        time.sleep(0.2)
    data: dict[str, Any] = json.loads(out.read_text())
    check_modules(side, data["modules_outside"])
    side.servers = Servers(database_urls=list(data["database_urls"]), redis_url=data["redis_url"])
    side.settings = side_settings(side.data_dir, side.servers)
    side.users = int(data["users"])
    side.follows = int(data["follows"])
    side.seed_seconds = float(data["seed_seconds"])
    tokens: list[str] = list(data["tokens"])
    side.viewers = len(tokens)
    side.tokens_path = work_dir / f"{side.name}-tokens.json"
    side.tokens_path.write_text(json.dumps({"tokens": tokens}))


def tokens_of(side: Side) -> list[str]:
    assert side.tokens_path is not None
    tokens: list[str] = json.loads(side.tokens_path.read_text())["tokens"]
    return tokens


def stop_child(child: Child) -> None:
    """Close the stdin of a holder or in-process subprocess: it stops its servers and
    exits; SIGTERM to its group if it hangs."""
    stdin = child.process.stdin
    if stdin is not None and not stdin.closed:
        stdin.close()
    try:
        child.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.stop()


def start_server(side: Side, options: Options, work_dir: Path) -> None:
    assert side.settings is not None
    assert side.servers is not None
    overrides = {
        "APERTURE_SERVE_RUNS_WORKERS": "false",
        **SERVER_SETTINGS[RATE_LIMIT_MODES[options.rate_limits]],
    }
    try:
        side.server = start_api_server(
            side.settings,
            side.servers,
            CodeSnapshot(root=side.revision.tree, description=side.revision.description),
            overrides,
            work_dir / f"serve-{side.name}.log",
        )
    except RuntimeError as error:
        raise SideFailed(side.name, "aperture serve did not start", str(error)[-4000:]) from None
    log(f"{side.name}: serving at {side.server.url} (pid {side.server.process.pid})")


def warm_up(side: Side, options: Options, work_dir: Path) -> None:
    assert side.server is not None
    assert side.tokens_path is not None
    side.warm = asyncio.run(warm_feeds(side.server.url, tokens_of(side), FEED_QUERY_20))
    log(
        f"{side.name}: warm pass over {side.viewers} viewers in {side.warm.seconds:.1f}s, "
        f"{len(side.warm.errors)} errors"
    )
    if side.warm.errors:
        raise SideFailed(
            side.name, f"the warm pass failed {len(side.warm.errors)} times", side.warm.errors[0]
        )
    if options.warmup_s:
        run_k6(
            "feed_reads",
            target=side.server,
            data=side.tokens_path,
            rate=options.rate,
            duration_s=options.warmup_s,
            work_dir=work_dir,
            kinds=("feed",),
        )


def measure_idle(sides: Sequence[Side], seconds: float) -> None:
    """Each server's CPU with no requests, all over the same window."""
    before: list[tuple[Side, Child, float]] = []
    for side in sides:
        assert side.server is not None
        before.append((side, side.server, side.server.cpu_seconds()))
    time.sleep(seconds)
    for side, server, cpu in before:
        side.idle_cpu_ms_per_s = (server.cpu_seconds() - cpu) / seconds * 1000


def read_reply(side: Side, child: Child, what: str, timeout_s: float) -> dict[str, Any]:
    """The next JSON line an in-process subprocess writes on its stdout."""
    stdout = child.process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout_s
    while not select.select([stdout], [], [], 0.5)[0]:
        if child.process.poll() is not None:
            break
        if time.monotonic() > deadline:
            raise SideFailed(side.name, f"{what} timed out", child.log_text()[-4000:])
    line = stdout.readline()
    if not line:
        raise SideFailed(
            side.name, f"{what} failed (the subprocess ended)", child.log_text()[-4000:]
        )
    reply: dict[str, Any] = json.loads(line)
    return reply


def start_inprocess(side: Side, options: Options, work_dir: Path) -> None:
    """Start the side's in-process subprocess (its own servers, the same settings as the
    e2e part's servers); ``wait_inprocess`` waits until it is ready."""
    side.inprocess = spawn_side(
        side,
        [
            INPROCESS_COMMAND,
            *("--requests", str(options.requests)),
            *("--warmup", str(options.warmup_requests)),
        ],
        data_dir=side.data_dir.with_name(f"{side.name}-inprocess-data"),
        overrides=SERVER_SETTINGS[RATE_LIMIT_MODES[options.rate_limits]],
        log_path=work_dir / f"inprocess-{side.name}.log",
        replies=True,
    )


def wait_inprocess(side: Side) -> None:
    assert side.inprocess is not None
    reply = read_reply(
        side, side.inprocess, "preparing the in-process part", HOLDER_START_TIMEOUT_S
    )
    check_modules(side, reply.pop("modules_outside"))
    side.inprocess_setup = InProcessSetup(**reply)
    log(
        f"{side.name}: in process, {side.inprocess_setup.users} users seeded in "
        f"{side.inprocess_setup.seed_seconds:.1f}s, ready in "
        f"{side.inprocess_setup.setup_seconds:.1f}s; viewer {side.inprocess_setup.viewer} "
        f"follows {side.inprocess_setup.following}"
    )


# --- measuring ----------------------------------------------------------------------------


def side_order(index: int) -> tuple[str, ...]:
    """Which side goes first alternates, so drifting noise hits both alike."""
    return tuple(alternating(SIDES, index))


def measure(sides: dict[str, Side], options: Options, work_dir: Path) -> list[E2ERun]:
    runs: list[E2ERun] = []
    for run_index in range(options.runs):
        for position, name in enumerate(side_order(run_index)):
            side = sides[name]
            assert side.server is not None
            assert side.tokens_path is not None
            time.sleep(PAUSE_SECONDS)
            result = run_k6(
                "feed_reads",
                target=side.server,
                data=side.tokens_path,
                rate=options.rate,
                duration_s=options.duration_s,
                work_dir=work_dir,
                kinds=("feed",),
            )
            run = E2ERun(
                server=name, rate=options.rate, run=run_index, order=position, result=result
            )
            runs.append(run)
            heading = f"run {run_index + 1}/{options.runs} {name}"
            log_run(heading, result, kind="feed", cpu_ms=run.cpu_ms_per_request)
    return runs


@dataclass
class SideSummary:
    name: str
    cpu_ms: list[float]  # per run
    pooled_ms: float
    p50_ms: float  # median over runs of k6's p50
    p99_ms: float  # median over runs of k6's p99
    requests: int
    failed: int
    dropped: int

    @property
    def median_cpu_ms(self) -> float:
        return median(self.cpu_ms)


def summarise(name: str, runs: Sequence[E2ERun]) -> SideSummary:
    mine = [run for run in runs if run.server == name]
    k6 = Runs([run.result for run in mine])
    return SideSummary(
        name=name,
        cpu_ms=[run.cpu_ms_per_request for run in mine],
        pooled_ms=pooled_ms(mine),
        p50_ms=k6.p50("feed"),
        p99_ms=k6.p99("feed"),
        requests=k6.requests,
        failed=k6.failed,
        dropped=k6.dropped,
    )


@dataclass(frozen=True)
class InProcessRound:
    side: str
    run: int  # the round
    order: int  # 0: this side went first in the round
    cpu_ms: float  # process CPU per timed request
    wall_ms: float
    requests: int
    failed: int
    warmup_failed: int
    edges: int  # of the last page


def measure_inprocess(sides: dict[str, Side], options: Options) -> list[InProcessRound]:
    rounds: list[InProcessRound] = []
    for index in range(options.runs):
        for position, name in enumerate(side_order(index)):
            side = sides[name]
            assert side.inprocess is not None
            stdin = side.inprocess.process.stdin
            assert stdin is not None
            stdin.write(b"round\n")
            stdin.flush()
            what = f"in-process round {index + 1}"
            reply = read_reply(side, side.inprocess, what, INPROCESS_ROUND_TIMEOUT_S)
            result = InProcessRound(side=name, run=index, order=position, **reply)
            rounds.append(result)
            log(
                f"round {index + 1}/{options.runs} {name}: CPU {result.cpu_ms:.3f} ms/request, "
                f"wall {result.wall_ms:.3f} ms, {result.failed}/{result.requests} failed, "
                f"{result.edges} edges"
            )
    return rounds


def paired_ratios(values: Iterable[tuple[int, str, float]]) -> list[float]:
    """current / baseline within each run or round, from (run, side, value): the two
    measured back to back."""
    by_run: dict[int, dict[str, float]] = {}
    for run_index, side, value in values:
        by_run.setdefault(run_index, {})[side] = value
    return [
        pair[CURRENT] / pair[BASELINE]
        for _, pair in sorted(by_run.items())
        if BASELINE in pair and CURRENT in pair and pair[BASELINE] > 0
    ]


# --- report ---------------------------------------------------------------------------------


@dataclass
class Report:
    command: str
    options: Options
    sides: dict[str, Side]
    runs: list[E2ERun]
    rounds: list[InProcessRound] = field(default_factory=list)
    # when -> the current tree's application files (path -> content hash)
    checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    load_before: float = 0.0
    load_after: float = 0.0
    seconds: float = 0.0


def same_page_sizes(sides: dict[str, Side]) -> str:
    """Viewers whose first page holds as many posts on both sides (the post ids differ:
    each side seeded its own databases)."""
    first = sides[BASELINE].warm
    second = sides[CURRENT].warm
    if first is None or second is None:
        return "-"
    compared = sorted(set(first.pages) & set(second.pages))
    same = sum(1 for index in compared if len(first.pages[index]) == len(second.pages[index]))
    return f"{same} of {len(compared)}"


def ratio_line(what: str, base: float, current: float, paired: Sequence[float], unit: str) -> str:
    """The headline: current / baseline of the medians, and the paired ratios' summary."""
    ratio = current / base if base else float("nan")
    higher = sum(1 for value in paired if value > 1)
    return (
        f"**Current / baseline, {what}: {ratio:.3f}** ({(ratio - 1) * 100:+.1f}%). "
        f"Paired by {unit} (the two sides back to back): median {fmt(median(paired), 3)}, "
        f"range {spread(paired, digits=3)}; current higher in {higher} of {len(paired)} {unit}s."
    )


def render_header(report: Report) -> list[str]:
    when = utc_now()
    return [
        "# Layering benchmark (issue 8): server CPU per warm home-feed page, "
        "before and after the refactor",
        "",
        f"- Command: `{report.command}`; finished {when}, wall time {report.seconds:.0f} s",
        *(
            f"- {side.name.capitalize()}: {side.revision.description}"
            for side in report.sides.values()
        ),
        *describe_machine(load_generator="k6"),
        f"- Load average (1 min): {report.load_before:.2f} before, {report.load_after:.2f} after",
    ]


def render_e2e(report: Report) -> list[str]:
    options = report.options
    sides = report.sides
    base, cur = (summarise(name, report.runs) for name in SIDES)
    paired = paired_ratios((run.run, run.server, run.cpu_ms_per_request) for run in report.runs)
    limits = SERVER_SETTINGS[RATE_LIMIT_MODES[options.rate_limits]]
    baseline_side = sides[BASELINE]
    lines = [
        "",
        "## End to end: k6 against one `aperture serve` per side",
        "",
        f"- Data (each side its own embedded PostgreSQL and Valkey, seeded by its own code): "
        f"`{options.edges.name}`, {baseline_side.users:,} users, {baseline_side.follows:,} "
        f"follows (both directions), 2 posts per user, every user active, "
        f"{baseline_side.viewers:,} viewers with a bearer token; seeded in "
        + " / ".join(f"{side.seed_seconds:.1f} s ({side.name})" for side in sides.values()),
        "- Servers: one `aperture serve` per side (one uvicorn process, "
        "`APERTURE_SERVE_RUNS_WORKERS=false`, "
        + ", ".join(f"`{key}={value}`" for key, value in limits.items())
        + "), both up throughout; each viewer's first page read once on each, then "
        f"{options.warmup_s} s of k6 per side",
        f"- Load: k6 `feed_reads.js` (`constant-arrival-rate`) at {options.rate} req/s, "
        f"`homeFeed(first: 20)` as a uniformly random viewer; {options.runs} runs of "
        f"{options.duration_s} s per side, interleaved (which side goes first alternates)",
        "",
        "| Side | Revision | CPU ms/request, median (min-max of runs) | Pooled ms | p50 ms "
        "| p99 ms | Failed / requests | Dropped | Idle CPU ms/s |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for summary in (base, cur):
        side = sides[summary.name]
        lines.append(
            f"| {summary.name} | {side.revision.label} | {fmt(summary.median_cpu_ms, 2)} "
            f"({spread(summary.cpu_ms)}) | {fmt(summary.pooled_ms, 2)} | {fmt(summary.p50_ms)} "
            f"| {fmt(summary.p99_ms)} | {summary.failed:,} / {summary.requests:,} "
            f"| {summary.dropped:,} | {fmt(side.idle_cpu_ms_per_s)} |"
        )
    lines += [
        "",
        ratio_line("median CPU per request", base.median_cpu_ms, cur.median_cpu_ms, paired, "run"),
        "",
        "| Run | Side | Order | CPU ms/request | p50 ms | p99 ms | Requests | Failed "
        "| Dropped | Server CPU |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in report.runs:
        p50, p99, _ = run.result.latency["feed"]
        lines.append(
            f"| {run.run + 1} | {run.server} | {run.order + 1} | {run.cpu_ms_per_request:.2f} "
            f"| {fmt(p50)} | {fmt(p99)} | {run.result.requests:,} | {run.result.failed:,} "
            f"| {run.result.dropped:,} | {run.result.server_cpu:.0%} |"
        )
    lines += [
        "",
        "- CPU/request: the `aperture serve` process's user+system CPU (/proc, 10 ms ticks) "
        "over the k6 run, k6's start-up included, divided by the requests k6 completed; "
        "pooled: all runs' CPU over all their requests. Server CPU: per wall second "
        "(100% = one core). Idle CPU: with no requests, both servers over the same "
        f"{options.idle_s:.0f} s.",
    ]
    for side in sides.values():
        if side.warm is not None:
            lines.append(
                f"- {side.name}: warm pass {side.warm.seconds:.1f} s, "
                f"{len(side.warm.errors)} errors"
            )
    lines.append(
        f"- First pages of the same size on both sides (viewer by viewer): "
        f"{same_page_sizes(sides)} viewers"
    )
    return lines


def page_check(report: Report) -> str:
    """Whether both sides' pages (the last of each round) held PAGE_SIZE edges."""
    sizes = {name: sorted({r.edges for r in report.rounds if r.side == name}) for name in SIDES}
    if all(size == [PAGE_SIZE] for size in sizes.values()):
        return f"{PAGE_SIZE} edges on both sides, every round"
    shown = "; ".join(
        f"{name} {', '.join(map(str, size)) or '-'} edges" for name, size in sizes.items()
    )
    return f"**not {PAGE_SIZE} edges on both sides**: {shown}"


def same_graph(sides: dict[str, Side]) -> str:
    """Whether both sides generated the same graph and picked the same viewer."""
    shapes = {
        name: (setup.users, setup.follows, setup.viewer, setup.following)
        for name, side in sides.items()
        if (setup := side.inprocess_setup) is not None
    }
    if len(set(shapes.values())) == 1:
        return "the same graph and viewer on both sides"
    shown = "; ".join(
        f"{name}: {users} users, {follows} follows, viewer {viewer} following {following}"
        for name, (users, follows, viewer, following) in shapes.items()
    )
    return f"**the sides' graphs differ**: {shown}"


def render_inprocess(report: Report) -> list[str]:
    options = report.options
    sides = report.sides
    rounds = report.rounds
    cpu = {name: [r.cpu_ms for r in rounds if r.side == name] for name in SIDES}
    wall = {name: [r.wall_ms for r in rounds if r.side == name] for name in SIDES}
    paired = paired_ratios((r.run, r.side, r.cpu_ms) for r in rounds)
    limits = SERVER_SETTINGS[RATE_LIMIT_MODES[options.rate_limits]]
    setup = sides[BASELINE].inprocess_setup
    lines = [
        "",
        "## In process: CPU per request through the ASGI app",
        "",
        "- Each side: one process run from its checkout, its own embedded PostgreSQL and "
        "Valkey, the app of `graphql_api.app.create_app` driven by `httpx.ASGITransport` "
        "(no HTTP server); the same settings on both sides (this checkout's defaults, "
        + ", ".join(f"`{key}={value}`" for key, value in limits.items())
        + ")",
    ]
    if setup is not None:
        lines.append(
            f"- Data (seeded by each side's own code): `generate_graph({INPROCESS_USERS}, "
            f"seed={INPROCESS_GRAPH_SEED}, mean_following={INPROCESS_MEAN_FOLLOWING})`, "
            f"{setup.follows:,} follows, {INPROCESS_POSTS_PER_USER} posts per user; the viewer "
            f"is `{setup.viewer}`, who follows {setup.following} accounts; "
            + same_graph(sides)
            + "; seeded in "
            + " / ".join(
                f"{side.inprocess_setup.seed_seconds:.1f} s ({side.name})"
                for side in sides.values()
                if side.inprocess_setup is not None
            )
        )
    lines += [
        f"- Per round and side: {options.warmup_requests:,} warm-up requests, then "
        f"{options.requests:,} timed `homeFeed(first: 20)` requests one after the other; "
        f"{options.runs} rounds per side, interleaved (which side goes first alternates)",
        "",
        "| Side | Revision | CPU ms/request, median (min-max of rounds) | Wall ms/request, "
        "median | Failed / requests |",
        "|---|---|--:|--:|--:|",
    ]
    for name in SIDES:
        mine = [r for r in rounds if r.side == name]
        lines.append(
            f"| {name} | {sides[name].revision.label} | {fmt(median(cpu[name]), 3)} "
            f"({spread(cpu[name], digits=3)}) | {fmt(median(wall[name]), 3)} "
            f"| {sum(r.failed for r in mine):,} / {sum(r.requests for r in mine):,} |"
        )
    lines += [
        "",
        ratio_line(
            "median in-process CPU per request",
            median(cpu[BASELINE]),
            median(cpu[CURRENT]),
            paired,
            "round",
        )
        + " Per round: "
        + ", ".join(f"{value:.3f}" for value in paired)
        + ".",
        "",
        "| Round | Side | Order | CPU ms/request | Wall ms/request | Requests | Failed | Edges |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.run + 1} | {r.side} | {r.order + 1} | {r.cpu_ms:.3f} | {r.wall_ms:.3f} "
            f"| {r.requests:,} | {r.failed:,} | {r.edges} |"
        )
    lines += [
        "",
        "- CPU/request: `time.process_time()` of the side's process over the timed requests "
        "(the app and the httpx client: the client's share is the same on both sides; "
        "PostgreSQL and Valkey are other processes, not counted) divided by the requests; "
        "wall: `time.perf_counter()`. A `gc.collect()` before each round's timed requests.",
        f"- Page size (the last page of each round): {page_check(report)}",
    ]
    return lines


def render(report: Report) -> str:
    parts = report.options.parts
    lines = render_header(report)
    if E2E in parts:
        lines += render_e2e(report)
    if INPROCESS in parts:
        lines += render_inprocess(report)
    edited = edited_between(report.checkpoints)
    if edited or report.sides[CURRENT].revision.app_changed:
        lines += [
            "",
            "- The current tree's application files were "
            + (
                "unchanged during the run"
                if not edited
                else "**edited during the run** (between the checkpoints: "
                + ", ".join(report.checkpoints)
                + "; the code the sides ran may differ from what the revision line "
                f"describes): {', '.join(f'`{path}`' for path in edited[:10])}"
                + (f" and {len(edited) - 10} more" if len(edited) > 10 else "")
            ),
        ]
    return "\n".join(lines) + "\n"


# --- running ----------------------------------------------------------------------------------


def raw_figures(report: Report) -> dict[str, Any]:
    return {
        "command": report.command,
        "options": {key: str(value) for key, value in asdict(report.options).items()},
        "revisions": {
            name: {
                "commit": side.revision.commit,
                "tree": str(side.revision.tree),
                "changed": list(side.revision.changed),
            }
            for name, side in report.sides.items()
        },
        "idle_cpu_ms_per_s": {name: side.idle_cpu_ms_per_s for name, side in report.sides.items()},
        "current_tree_checkpoints": report.checkpoints,
        "inprocess": {
            "setup": {
                name: asdict(side.inprocess_setup)
                for name, side in report.sides.items()
                if side.inprocess_setup is not None
            },
            "rounds": [asdict(round_) for round_ in report.rounds],
        },
        "runs": [
            {
                "side": run.server,
                "run": run.run,
                "order": run.order,
                "cpu_ms_per_request": run.cpu_ms_per_request,
                "k6": asdict(run.result),
            }
            for run in report.runs
        ],
        "seconds": report.seconds,
    }


def stop_sides(sides: dict[str, Side]) -> None:
    for side in sides.values():
        try:
            side.stop()
        except Exception as error:  # the other side's processes must still stop
            log(f"{side.name}: stopping failed: {error!r}")


def run_e2e(
    sides: dict[str, Side],
    options: Options,
    work_dir: Path,
    checkpoints: dict[str, dict[str, str]],
) -> list[E2ERun]:
    """The e2e part: holders, servers, warm-up, idle CPU, k6 runs; stops them after."""
    for side in sides.values():
        log(f"{side.name}: starting servers, migrating and seeding")
        start_holder(side, options, work_dir)
        log(f"{side.name}: {side.users} users, {side.viewers} viewer tokens")
    for side in sides.values():
        start_server(side, options, work_dir)
    checkpoints["servers started"] = app_files(options.current_tree)
    for side in sides.values():
        warm_up(side, options, work_dir)
    measure_idle(list(sides.values()), options.idle_s)
    for side in sides.values():
        log(f"{side.name}: idle CPU {side.idle_cpu_ms_per_s:.1f} ms/s")
    runs = measure(sides, options, work_dir)
    stop_sides(sides)  # the in-process part runs alone
    return runs


def run_inprocess(
    sides: dict[str, Side],
    options: Options,
    work_dir: Path,
    checkpoints: dict[str, dict[str, str]],
) -> list[InProcessRound]:
    """The in-process part: a subprocess per side (both prepared at once), then the
    rounds; stops them after."""
    for side in sides.values():
        log(f"{side.name}: in process: starting servers, migrating, seeding")
        start_inprocess(side, options, work_dir)
    for side in sides.values():
        wait_inprocess(side)
    checkpoints["in-process ready"] = app_files(options.current_tree)
    rounds = measure_inprocess(sides, options)
    stop_sides(sides)
    return rounds


def run(options: Options, command: str) -> Report:
    started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix="apt-layering-"))
    work_dir = temp / "work"
    work_dir.mkdir()
    baseline_tree = temp / "baseline-src"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report = Report(command=command, options=options, sides={}, runs=[])
    report.load_before = os.getloadavg()[0]
    sides: dict[str, Side] = {}
    try:
        add_worktree(options.baseline, baseline_tree)
        trees = {BASELINE: baseline_tree, CURRENT: options.current_tree}
        for name in SIDES:
            revision = read_revision(name, trees[name])
            sides[name] = Side(name=name, revision=revision, data_dir=temp / f"{name}-data")
            log(f"{name}: {revision.description}")
        report.sides = sides
        report.checkpoints["start"] = app_files(options.current_tree)
        if E2E in options.parts:
            report.runs = run_e2e(sides, options, work_dir, report.checkpoints)
        if INPROCESS in options.parts:
            report.rounds = run_inprocess(sides, options, work_dir, report.checkpoints)
        report.checkpoints["end"] = app_files(options.current_tree)
    finally:
        stop_sides(sides)
        keep_logs(work_dir, "layering-logs", fresh=True)
        remove_worktree(baseline_tree)
        shutil.rmtree(temp, ignore_errors=True)
    report.load_after = os.getloadavg()[0]
    report.seconds = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(arguments)
    command = command_line("bench.layering", arguments, interpreter=True)
    try:
        report = run(options, command)
    except SideFailed as error:
        log(f"FAILED: {error}")
        raise SystemExit(1) from None
    write_report(RESULTS_PATH, [render(report)])
    DATA_PATH.write_text(json.dumps(raw_figures(report), indent=1, default=str))
    log(f"wrote {DATA_PATH.name} in {report.seconds:.0f}s")


if __name__ == "__main__":
    main()
