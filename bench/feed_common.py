"""Shared plumbing of the home-feed benchmark (``bench.feed``): data resets, tokens,
``aperture serve`` / ``aperture worker`` subprocesses, k6 runs and small statistics."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import select

from aperture.seed import Progress
from bench import machine
from db.accounts.models import User
from db.feed.activity import ACTIVE_USERS_KEY
from db.runtime import Runtime
from db.session import ShardSessions
from domain.accounts.sessions import start_session
from domain.state import AppState
from infra.servers import Servers, servers_environment
from infra.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
K6_BINARY = Path(sys.executable).parent / "k6"
K6_SCRIPTS = Path(__file__).resolve().parent / "k6"

FEED_QUERY_20 = (
    "query { homeFeed(first: 20) { edges { node { id caption author { username } "
    "likeCount commentCount viewerHasLiked } } } }"
)
FEED_QUERY_10 = FEED_QUERY_20.replace("first: 20", "first: 10")


def log(message: str) -> None:
    print(f"[bench.feed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def progress_printer(label: str) -> Progress:
    """A ``load_graph`` progress callback that prints every 10% of each stage."""
    shown: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if shown.get(stage, -1) < tenth:
            shown[stage] = tenth
            log(f"{label}: {stage} {done}/{total}")

    return report


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- data ---------------------------------------------------------------------------


def reset_data(servers: Servers) -> None:
    """Empty every shard table and Redis: each part starts from nothing."""
    for dsn in servers.database_urls:
        with psycopg.connect(dsn, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'shard_%' "
                "AND tablename NOT LIKE 'alembic%'"
            ).fetchall()
            if rows:
                tables = ", ".join(f'"{schema}"."{table}"' for schema, table in rows)
                connection.execute(f"TRUNCATE {tables}")
    import redis

    client = redis.Redis.from_url(servers.redis_url)
    try:
        client.flushall()
    finally:
        client.close()


async def mark_active(runtime: Runtime, user_ids: Sequence[int]) -> None:
    """Every user active now, so fan-out reaches them (``ACTIVE_USERS_KEY``)."""
    now = time.time()
    for start in range(0, len(user_ids), 10_000):
        chunk = user_ids[start : start + 10_000]
        await runtime.redis.zadd(ACTIVE_USERS_KEY, {str(user_id): now for user_id in chunk})


async def make_tokens(
    state: AppState, user_ids: Sequence[int], *, concurrency: int = 16
) -> list[str]:
    """A bearer token per user, through the real session insert (no password check)."""
    sessions = ShardSessions(state.runtime.databases)
    users: dict[int, User] = {}
    for shard, ids in sessions.group_by_shard(user_ids).items():
        async with sessions.shard(shard) as session:
            for start in range(0, len(ids), 5000):
                found = await session.scalars(
                    select(User).where(User.id.in_(ids[start : start + 5000]))
                )
                users.update({user.id: user for user in found})
    gate = asyncio.Semaphore(concurrency)

    async def one(user_id: int) -> str:
        async with gate:
            return await start_session(ShardSessions(state.runtime.databases), users[user_id])

    return list(await asyncio.gather(*(one(user_id) for user_id in user_ids)))


# --- the code under test ---------------------------------------------------------------

APP_PATHS = ("aperture", "graphql_api", "domain", "db", "migrations", "workers", "recommender")
APP_FILES = ("alembic.ini", "pyproject.toml")


@dataclass(frozen=True)
class CodeSnapshot:
    """A copy of the application taken when the benchmark starts: servers and workers run
    from it, so commits landing in the checkout during a run cannot mix code versions."""

    root: Path
    description: str


def snapshot_code(dest: Path) -> CodeSnapshot:
    dest.mkdir(parents=True)
    for name in APP_PATHS:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(
                PROJECT_ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__")
            )
    for name in APP_FILES:
        if (PROJECT_ROOT / name).is_file():
            shutil.copy(PROJECT_ROOT / name, dest / name)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", *APP_PATHS, *APP_FILES)
    subject = git("log", "-1", "--format=%s")
    if len(subject) > 72:
        subject = subject[:69] + "..."
    return CodeSnapshot(
        root=dest,
        description=f"commit `{commit}` ({subject})"
        + (" with uncommitted changes in the app" if dirty else ""),
    )


@dataclass(frozen=True)
class BenchEnv:
    """What every part runs against: our embedded servers, the code snapshot, a work dir."""

    settings: Settings
    servers: Servers
    code: CodeSnapshot
    work_dir: Path
    web_processes: int = 1


# --- subprocesses ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(
    settings: Settings, servers: Servers, code: CodeSnapshot, overrides: dict[str, str]
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("APERTURE_")}
    env.update(
        {
            "PYTHONPATH": str(code.root),
            "APERTURE_DATA_DIR": str(settings.data_dir),
            "APERTURE_LOGICAL_SHARDS": str(settings.logical_shards),
            "APERTURE_FANOUT_FOLLOWER_THRESHOLD": str(settings.fanout_follower_threshold),
            **servers_environment(servers),
        }
    )
    env.update(overrides)
    return env


@dataclass
class Child:
    """An ``aperture`` subprocess in its own process group, logging to a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far by the live processes of its group (the
        process and, with several web processes, its uvicorn children), from /proc."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # process group id
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def spawn(command: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path) -> Child:
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "aperture.cli", *command],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(process=process, log_path=log_path)


def start_api_server(
    settings: Settings,
    servers: Servers,
    code: CodeSnapshot,
    overrides: dict[str, str],
    log_path: Path,
    *,
    processes: int = 1,
) -> Child:
    """``aperture serve`` on a free port against our servers; returns once /readyz is ok."""
    port = free_port()
    command = ["serve", "--port", str(port)]
    if processes != 1:
        command += ["--processes", str(processes)]
    child = spawn(command, server_env(settings, servers, code, overrides), code.root, log_path)
    child.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if child.process.poll() is not None:
            raise RuntimeError(f"aperture serve exited:\n{child.log_text()}")
        try:
            if httpx.get(f"{child.url}/readyz", timeout=2).status_code == 200:
                return child
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"aperture serve did not become ready:\n{child.log_text()}")
        time.sleep(0.1)


def start_worker(
    settings: Settings,
    servers: Servers,
    code: CodeSnapshot,
    overrides: dict[str, str],
    log_path: Path,
    *,
    queues: Sequence[str] = (),
) -> Child:
    """``aperture worker`` (of ``queues``, all by default) against our servers; returns
    once it says it is ready."""
    env = server_env(settings, servers, code, overrides)
    child = spawn(["worker", *(f"--queue={queue}" for queue in queues)], env, code.root, log_path)
    deadline = time.monotonic() + 90
    while "worker ready" not in child.log_text():
        if child.process.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"aperture worker did not start:\n{child.log_text()}")
        time.sleep(0.1)
    return child


# --- GraphQL over HTTP -----------------------------------------------------------------


@dataclass
class WarmPass:
    """Every viewer's first page once, before measuring: builds feeds, caches sessions."""

    seconds: float
    errors: list[str] = field(default_factory=list)
    pages: dict[int, list[str]] = field(default_factory=dict)  # token index -> post ids


async def warm_feeds(
    url: str, tokens: Sequence[str], query: str, *, concurrency: int = 8
) -> WarmPass:
    started = time.perf_counter()
    result = WarmPass(seconds=0.0)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(index: int, token: str) -> None:
            async with gate:
                response = await client.post(
                    "/graphql",
                    json={"query": query},
                    headers={"Authorization": f"Bearer {token}"},
                )
            body: dict[str, Any] = response.json() if response.status_code == 200 else {}
            if response.status_code != 200 or body.get("errors") or not body.get("data"):
                result.errors.append(f"HTTP {response.status_code}: {response.text[:300]}")
                return
            edges = body["data"]["homeFeed"]["edges"]
            result.pages[index] = [edge["node"]["id"] for edge in edges]

        await asyncio.gather(*(one(index, token) for index, token in enumerate(tokens)))
    result.seconds = time.perf_counter() - started
    return result


# --- k6 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class K6Result:
    rate: int
    duration_s: int
    requests: int
    failed: int
    dropped: int
    run_seconds: float
    latency: dict[str, tuple[float, float, int]]  # kind -> (p50 ms, p99 ms, count)
    failed_by_kind: dict[str, float]
    server_cpu: float  # server process CPU seconds per wall second during the run
    failure_samples: list[str]

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 1.0

    @property
    def achieved_rps(self) -> float:
        """Successful responses per second of the scenario's duration."""
        return (self.requests - self.failed) / self.duration_s

    def held(self, p99_limit_ms: float = 1000.0) -> bool:
        p99 = self.latency["all"][1]
        return self.failed == 0 and self.dropped == 0 and p99 < p99_limit_ms and self.requests > 0


def _metric(summary: dict[str, Any], name: str) -> dict[str, float]:
    metric = summary.get("metrics", {}).get(name)
    values: dict[str, float] = metric["values"] if metric else {}
    return values


def k6_command(script: str, **variables: object) -> list[str]:
    """``k6 run`` of ``bench/k6/<script>.js``, quiet, with ``variables`` as its ``-e``s."""
    command = [str(K6_BINARY), "run", "--quiet", "--no-usage-report", "--no-color"]
    for name, value in variables.items():
        command += ["-e", f"{name}={value}"]
    return [*command, str(K6_SCRIPTS / f"{script}.js")]


def run_k6(
    script: str,
    *,
    target: Child,
    data: Path,
    rate: int,
    duration_s: int,
    work_dir: Path,
    kinds: Sequence[str],
    timeout: str = "5s",
    extra: dict[str, object] | None = None,
) -> K6Result:
    """One k6 run; ``kinds`` names the latency trends (``latency_<kind>``) to collect;
    ``extra`` adds the script's own ``-e`` variables."""
    summary_path = work_dir / f"k6-{script}-{rate}-{time.monotonic_ns()}.json"
    stderr_path = summary_path.with_suffix(".log")
    pre_vus = max(20, rate // 4)
    max_vus = max(200, rate * 2)
    command = k6_command(
        script,
        TARGET=target.url,
        DATA=data,
        RATE=rate,
        DURATION=duration_s,
        PRE_VUS=pre_vus,
        MAX_VUS=max_vus,
        TIMEOUT=timeout,
        SUMMARY=summary_path,
        **(extra or {}),
    )
    cpu_before = target.cpu_seconds()
    started = time.perf_counter()
    with stderr_path.open("wb") as errors:
        completed = subprocess.run(
            command, stdout=errors, stderr=subprocess.STDOUT, check=False, timeout=duration_s + 120
        )
    elapsed = time.perf_counter() - started
    cpu = (target.cpu_seconds() - cpu_before) / elapsed
    if not summary_path.exists():
        output = stderr_path.read_text()[-3000:]
        raise RuntimeError(f"k6 exited {completed.returncode} without a summary:\n{output}")
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    requests = int(_metric(summary, "http_reqs").get("count", 0))
    failed_rate = _metric(summary, "failed_requests")
    failed = round(failed_rate.get("rate", 0.0) * requests)
    dropped = int(_metric(summary, "dropped_iterations").get("count", 0))
    latency: dict[str, tuple[float, float, int]] = {}
    for kind in kinds:
        values = _metric(summary, f"latency_{kind}")
        latency[kind] = (
            float(values.get("med", float("nan"))),
            float(values.get("p(99)", float("nan"))),
            int(values.get("count", 0)),
        )
    if "all" not in latency:
        latency["all"] = latency[kinds[0]]
    failed_by_kind = {
        kind: float(_metric(summary, f"failed_{kind}").get("rate", 0.0)) for kind in kinds
    }
    samples = [
        line.strip()
        for line in stderr_path.read_text(errors="replace").splitlines()
        if "FAILED" in line
    ][:5]
    return K6Result(
        rate=rate,
        duration_s=duration_s,
        requests=requests,
        failed=failed,
        dropped=dropped,
        run_seconds=elapsed,
        latency=latency,
        failed_by_kind=failed_by_kind,
        server_cpu=cpu,
        failure_samples=samples,
    )


# --- report ----------------------------------------------------------------------------


def describe_machine() -> list[str]:
    k6 = (
        subprocess.run([str(K6_BINARY), "version"], capture_output=True, text=True, check=False)
        .stdout.split("(")[0]
        .strip()
    )
    return machine.describe_machine(load_generator=k6 or "k6")


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"
