"""Layering benchmark (issue 8): the server CPU of a warm ``homeFeed(first: 20)`` page,
before the refactor and now, measured in the same run.

Two sides, each run entirely from its own checkout with this virtual environment's Python:

* **baseline**: ``--baseline`` (default ``2cc49ef``, the code before the refactor), checked
  out with ``git worktree add`` into the run's temporary directory and removed at the end;
* **current**: ``--current-tree`` (default: this checkout, uncommitted changes included).

For each side a *holder* subprocess (this file run by path with ``cwd`` and
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
divided by the requests k6 completed, k6's p50 and p99 and its failed requests.

The report is printed and written to ``bench/results/layering.md`` (raw figures in
``layering.json``, holder, server and k6 logs in ``layering-logs/``).

    python -m bench.layering [--quick] [--runs 5] [--rate 50] [--duration 15]
        [--baseline 2cc49ef] [--current-tree PATH] [--rate-limits off|on]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aperture.runtime import Servers, shard_map_for, start_servers
from aperture.settings import Settings
from bench.edge import (
    DEFAULT_EDGES,
    LIMITED,
    PAUSE_SECONDS,
    SERVER_SETTINGS,
    UNLIMITED,
    E2ERun,
    pooled_ms,
)
from bench.edge import parse_options as edge_options
from bench.edge import seed as edge_seed
from bench.feed_common import (
    FEED_QUERY_20,
    PROJECT_ROOT,
    Child,
    CodeSnapshot,
    WarmPass,
    describe_machine,
    fmt,
    median,
    run_k6,
    server_env,
    start_api_server,
    warm_feeds,
)
from migrations.runner import migrate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_PATH = RESULTS_DIR / "layering.md"
DATA_PATH = RESULTS_DIR / "layering.json"
LOGS_DIR = RESULTS_DIR / "layering-logs"
BASELINE_REV = "2cc49ef"
BASELINE = "baseline"
CURRENT = "current"
SIDES = (BASELINE, CURRENT)
HOLD_COMMAND = "hold-side"
HOLDER_START_TIMEOUT_S = 600.0
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
# Packages of the application (and of the bench helpers the holder seeds with): in a
# holder, every module of these must come from its own checkout.
CHECKOUT_PACKAGES = frozenset(
    {"aperture", "graphql_api", "db", "domain", "migrations", "workers", "recommender", "bench"}
)
RATE_LIMIT_MODES = {"off": UNLIMITED, "on": LIMITED}


def log(message: str) -> None:
    print(f"[bench.layering {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.layering",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 runs of 5 s, 2 s k6 warm-up"
    )
    parser.add_argument("--edges", type=Path, default=DEFAULT_EDGES, help="edge list to seed")
    parser.add_argument("--viewers", type=int, default=0, help="viewer tokens (0: every user)")
    parser.add_argument("--rate", type=int, default=50, help="k6 arrival rate, req/s")
    parser.add_argument("--runs", type=int, default=5, help="k6 runs per side")
    parser.add_argument("--duration", type=int, default=15, help="seconds per k6 run")
    parser.add_argument("--warmup", type=int, default=5, help="k6 warm-up seconds per side")
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds the servers' idle CPU is measured"
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
    if not args.edges.is_file():
        parser.error(f"{args.edges} is not a file")
    current_tree = args.current_tree.resolve()
    if not (current_tree / "aperture" / "cli.py").is_file():
        parser.error(f"{current_tree} is not an Aperture checkout")
    quick = bool(args.quick)
    runs = 2 if quick else args.runs
    if runs < 1 or args.rate < 1:
        parser.error("give at least one run and a positive rate")
    return Options(
        quick=quick,
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
    )


# --- the holder: one side's servers and data, run from that side's checkout ---------------


def _leave(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def modules_outside(checkout: Path) -> list[str]:
    """Modules of the checkout's packages that were imported from anywhere else (the
    virtual environment's editable install points at the main checkout)."""
    outside: list[str] = []
    for name, module in sorted(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if (
            name.split(".")[0] in CHECKOUT_PACKAGES
            and origin
            and not Path(origin).resolve().is_relative_to(checkout)
        ):
            outside.append(f"{name} ({origin})")
    return outside


def hold_side(argv: Sequence[str]) -> None:
    """Start the servers, migrate, seed, write what the benchmark needs to ``--out``, then
    keep the servers up until stdin closes (or SIGTERM). Everything here but this file
    comes from the checkout in ``cwd``/``PYTHONPATH``."""
    parser = argparse.ArgumentParser(prog=f"layering.py {HOLD_COMMAND}")
    parser.add_argument("--edges", type=Path, required=True)
    parser.add_argument("--viewers", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _leave)
    checkout = Path.cwd().resolve()
    settings = Settings()
    servers = start_servers(settings, postgres_cleanup="delete")
    try:
        migrate(shard_map_for(settings, servers))
        seed_options = edge_options(["--edges", str(args.edges), "--viewers", str(args.viewers)])
        seeded = asyncio.run(edge_seed(settings, servers, seed_options))
        outside = modules_outside(checkout)
        partial = args.out.with_suffix(".partial")
        partial.write_text(
            json.dumps(
                {
                    "database_urls": list(servers.database_urls),
                    "redis_url": servers.redis_url,
                    "users": seeded.users,
                    "follows": seeded.follows,
                    "seed_seconds": seeded.seconds,
                    "tokens": seeded.tokens,
                    "modules_outside": outside,
                }
            )
        )
        partial.rename(args.out)
        log(f"{checkout}: seeded {seeded.users} users in {seeded.seconds:.1f}s; holding")
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        servers.stop()


# --- revisions ------------------------------------------------------------------------------


def git(tree: Path, *args: str, check: bool = True) -> str:
    completed = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(tree), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {tree}: {completed.stderr.strip()}")
    return completed.stdout


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
    tracked = git(tree, "diff", "HEAD", "--name-only", "-z").split("\0")
    untracked = git(tree, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return tuple(sorted({path for path in (*tracked, *untracked) if path}))


def read_revision(side: str, tree: Path) -> Revision:
    return Revision(
        side=side,
        tree=tree,
        commit=git(tree, "rev-parse", "HEAD").strip(),
        subject=git(tree, "log", "-1", "--format=%s").strip(),
        changed=changed_paths(tree),
    )


def app_files(tree: Path) -> dict[str, str]:
    """Every application file of the tree (tracked or not, unless ignored), path -> hash of
    its content: tells whether the code under test changed while the benchmark ran,
    commits or not."""
    listed = git(tree, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
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
    git(PROJECT_ROOT, "worktree", "add", "--detach", str(path), rev)


def remove_worktree(path: Path) -> None:
    git(PROJECT_ROOT, "worktree", "remove", "--force", str(path), check=False)


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

    def stop(self) -> None:
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            if self.holder is not None:
                stop_holder(self.holder)


def side_settings(data_dir: Path, servers: Servers | None = None) -> Settings:
    """The same settings for both sides (this checkout's defaults and environment, which
    ``server_env`` passes on: logical shards, fan-out threshold), their own data dir."""
    if servers is None:
        return Settings(data_dir=data_dir, database_urls=[], redis_url=None)
    return Settings(
        data_dir=data_dir, database_urls=list(servers.database_urls), redis_url=servers.redis_url
    )


def start_holder(side: Side, options: Options, work_dir: Path) -> None:
    tree = side.revision.tree
    out = work_dir / f"{side.name}-data.json"
    log_path = work_dir / f"prepare-{side.name}.log"
    env = server_env(
        side_settings(side.data_dir),
        Servers(database_urls=[], redis_url=""),
        CodeSnapshot(root=tree, description=side.revision.description),
        {},
    )
    # No server addresses: the holder starts embedded servers in its data dir.
    env.pop("APERTURE_DATABASE_URLS")
    env.pop("APERTURE_REDIS_URL")
    command = [
        sys.executable,
        "-P",  # not this file's directory on sys.path: only the checkout's packages
        str(Path(__file__).resolve()),
        HOLD_COMMAND,
        *("--edges", str(options.edges)),
        *("--viewers", str(options.viewers)),
        *("--out", str(out)),
    ]
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=tree,
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    side.holder = Child(process=process, log_path=log_path)
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
    if data["modules_outside"]:
        raise SideFailed(
            side.name,
            "modules came from outside the checkout: " + "; ".join(data["modules_outside"][:10]),
        )
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


def stop_holder(holder: Child) -> None:
    """Close its stdin: it stops its servers and exits; SIGTERM to its group if it hangs."""
    stdin = holder.process.stdin
    if stdin is not None and not stdin.closed:
        stdin.close()
    try:
        holder.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        holder.stop()


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


# --- measuring ----------------------------------------------------------------------------


def measure(sides: dict[str, Side], options: Options, work_dir: Path) -> list[E2ERun]:
    runs: list[E2ERun] = []
    for run_index in range(options.runs):
        # Which side goes first alternates, so drifting noise hits both alike.
        order = SIDES if run_index % 2 == 0 else SIDES[::-1]
        for position, name in enumerate(order):
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
            p50, p99, _ = result.latency["feed"]
            log(
                f"run {run_index + 1}/{options.runs} {name}: CPU "
                f"{run.cpu_ms_per_request:.2f} ms/request, p50 {p50:.1f} ms p99 {p99:.1f} ms, "
                f"{result.failed}/{result.requests} failed, {result.dropped} dropped"
            )
            for sample in result.failure_samples[:2]:
                log(f"  {sample[:300]}")
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
    return SideSummary(
        name=name,
        cpu_ms=[run.cpu_ms_per_request for run in mine],
        pooled_ms=pooled_ms(mine),
        p50_ms=median([run.result.latency["feed"][0] for run in mine]),
        p99_ms=median([run.result.latency["feed"][1] for run in mine]),
        requests=sum(run.result.requests for run in mine),
        failed=sum(run.result.failed for run in mine),
        dropped=sum(run.result.dropped for run in mine),
    )


def paired_ratios(runs: Sequence[E2ERun]) -> list[float]:
    """current / baseline CPU per request within each run (the two measured back to back)."""
    ratios: list[float] = []
    for run_index in sorted({run.run for run in runs}):
        pair = {run.server: run.cpu_ms_per_request for run in runs if run.run == run_index}
        if BASELINE in pair and CURRENT in pair and pair[BASELINE] > 0:
            ratios.append(pair[CURRENT] / pair[BASELINE])
    return ratios


# --- report ---------------------------------------------------------------------------------


def _spread(values: Sequence[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else "-"


@dataclass
class Report:
    command: str
    options: Options
    sides: dict[str, Side]
    runs: list[E2ERun]
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


def render(report: Report) -> str:
    options = report.options
    sides = report.sides
    base, cur = (summarise(name, report.runs) for name in SIDES)
    ratio = cur.median_cpu_ms / base.median_cpu_ms if base.median_cpu_ms else float("nan")
    paired = paired_ratios(report.runs)
    higher = sum(1 for value in paired if value > 1)
    limits = SERVER_SETTINGS[RATE_LIMIT_MODES[options.rate_limits]]
    edited = edited_between(report.checkpoints)
    baseline_side = sides[BASELINE]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Layering benchmark (issue 8): server CPU per warm home-feed page, "
        "before and after the refactor",
        "",
        f"- Command: `{report.command}`; finished {when}, wall time {report.seconds:.0f} s",
        *(f"- {side.name.capitalize()}: {side.revision.description}" for side in sides.values()),
        *describe_machine(),
        f"- Load average (1 min): {report.load_before:.2f} before, {report.load_after:.2f} after",
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
            f"({_spread(summary.cpu_ms)}) | {fmt(summary.pooled_ms, 2)} | {fmt(summary.p50_ms)} "
            f"| {fmt(summary.p99_ms)} | {summary.failed:,} / {summary.requests:,} "
            f"| {summary.dropped:,} | {fmt(side.idle_cpu_ms_per_s)} |"
        )
    lines += [
        "",
        f"**Current / baseline, median CPU per request: {ratio:.3f}** "
        f"({(ratio - 1) * 100:+.1f}%). Paired by run (the two sides back to back): "
        f"median {fmt(median(paired), 3)}, range {_spread(paired, 3)}; current higher in "
        f"{higher} of {len(paired)} runs.",
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
    if edited or sides[CURRENT].revision.app_changed:
        lines.append(
            "- The current tree's application files were "
            + (
                "unchanged during the run"
                if not edited
                else "**edited during the run** (between the start, the servers' start-up and "
                "the end; the code the servers run may differ from what the revision line "
                f"describes): {', '.join(f'`{path}`' for path in edited[:10])}"
                + (f" and {len(edited) - 10} more" if len(edited) > 10 else "")
            )
        )
    return "\n".join(lines) + "\n"


# --- running ----------------------------------------------------------------------------------


def keep_logs(work_dir: Path) -> None:
    """Holder, server and k6 logs survive the temporary directory (this run's only)."""
    shutil.rmtree(LOGS_DIR, ignore_errors=True)
    LOGS_DIR.mkdir(parents=True)
    for path in work_dir.glob("*.log"):
        shutil.copy(path, LOGS_DIR / path.name)


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
        for side in sides.values():
            log(f"{side.name}: starting servers, migrating and seeding")
            start_holder(side, options, work_dir)
            log(f"{side.name}: {side.users} users, {side.viewers} viewer tokens")
        for side in sides.values():
            start_server(side, options, work_dir)
        report.checkpoints["servers started"] = app_files(options.current_tree)
        for side in sides.values():
            warm_up(side, options, work_dir)
        measure_idle(list(sides.values()), options.idle_s)
        for side in sides.values():
            log(f"{side.name}: idle CPU {side.idle_cpu_ms_per_s:.1f} ms/s")
        report.runs = measure(sides, options, work_dir)
        report.checkpoints["end"] = app_files(options.current_tree)
    finally:
        for side in sides.values():
            try:
                side.stop()
            except Exception as error:  # the other side's servers must still stop
                log(f"{side.name}: stopping failed: {error!r}")
        keep_logs(work_dir)
        remove_worktree(baseline_tree)
        shutil.rmtree(temp, ignore_errors=True)
    report.load_after = os.getloadavg()[0]
    report.seconds = time.perf_counter() - started
    return report


def display_command(arguments: Sequence[str]) -> str:
    python = Path(sys.executable)
    shown = (
        str(python.relative_to(PROJECT_ROOT))
        if python.is_relative_to(PROJECT_ROOT)
        else str(python)
    )
    return " ".join([shown, "-m bench.layering", shlex.join(arguments)]).strip()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [HOLD_COMMAND]:
        hold_side(arguments[1:])
        return
    options = parse_options(arguments)
    command = display_command(arguments)
    try:
        report = run(options, command)
    except SideFailed as error:
        log(f"FAILED: {error}")
        raise SystemExit(1) from None
    text = render(report)
    RESULTS_PATH.write_text(text)
    DATA_PATH.write_text(json.dumps(raw_figures(report), indent=1, default=str))
    print(text)
    log(f"wrote {RESULTS_PATH} and {DATA_PATH.name} in {report.seconds:.0f}s")


if __name__ == "__main__":
    main()
