"""What every benchmark rests on: the platform's servers (embedded PostgreSQL, Valkey and
SeaweedFS in a fresh temporary directory, migrated, and the application's web processes
and workers as subprocesses run from a copy of the code), the machine's description, one
``log``, seeding helpers, GraphQL over HTTP, k6 at fixed arrival rates and its summary,
statistics over runs, and the report files under ``bench/results/``.

The layering benchmark's side processes (``bench/layering_side.py``) run from other
checkouts and import none of this: it need not exist in old revisions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psycopg
import redis
from sqlalchemy import select

from aperture.seed import Progress
from db.accounts.models import User
from db.accounts.records import user_record
from db.feed.activity import ACTIVE_USERS_KEY
from db.runtime import Runtime, shard_map_for, start_servers
from db.session import ShardSessions
from domain.accounts.sessions import start_session
from domain.state import AppState
from infra.servers import Servers, servers_environment
from infra.settings import Settings
from migrations.runner import migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
K6_BINARY = Path(sys.executable).parent / "k6"
K6_SCRIPTS = Path(__file__).resolve().parent / "k6"
DEFAULT_EDGES = PROJECT_ROOT.parent / "shared" / "data" / "social-graphs" / "socfb-Reed98.edges"
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")
READY_TIMEOUT_S = 90.0

FEED_QUERY_20 = (
    "query { homeFeed(first: 20) { edges { node { id caption author { username } "
    "likeCount commentCount viewerHasLiked } } } }"
)
FEED_QUERY_10 = FEED_QUERY_20.replace("first: 20", "first: 10")


# --- logging and reports --------------------------------------------------------------------


def benchmark_name() -> str:
    """The running benchmark's module (``bench.feed``), or its script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def log(message: str) -> None:
    """Progress on stderr: stdout is the report's."""
    print(
        f"[{benchmark_name()} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
    )


def k6_version() -> str:
    completed = subprocess.run(
        [str(K6_BINARY), "version"], capture_output=True, text=True, check=False
    )
    return completed.stdout.split("(")[0].strip()


def describe_machine(*, load_generator: str | None = None) -> list[str]:
    """The report's lines on the machine: CPUs, memory, OS, Python, the date; with
    ``load_generator`` (``"k6"``: its version), that it ran on the same machine."""
    model = platform.processor() or "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    if load_generator == "k6":
        load_generator = k6_version() or "k6"
    if load_generator:
        python += f"; load generator: {load_generator} on the same machine"
    return [
        f"- CPUs (`nproc`): {cpus}; CPU model: {model}; memory: {memory}",
        f"- OS: {platform.platform()}",
        f"- Python: {python}",
        f"- Date: {utc_now()}",
    ]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(module: str, arguments: Sequence[str], *, interpreter: bool = False) -> str:
    """How the benchmark was run, for its report: ``python -m bench.x ARGS``, or with
    ``interpreter`` this virtual environment's Python as the checkout names it."""
    python = "python"
    if interpreter:
        executable = Path(sys.executable)
        python = (
            str(executable.relative_to(PROJECT_ROOT))
            if executable.is_relative_to(PROJECT_ROOT)
            else str(executable)
        )
    return " ".join([python, "-m", module, shlex.join(arguments)]).strip()


def run_line(command: str, *, seconds: float, code: CodeSnapshot, load: str = "") -> str:
    """A report's first line: the command, when it finished, how long it took, the code
    measured and how busy the machine was (``load``; by default the load average now)."""
    load = load or f"load average {os.getloadavg()[0]:.2f} at the end"
    return (
        f"_`{command}`, finished {utc_now()}, {seconds:.0f} s; code: {code.description}; {load}._"
    )


def argument_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of ``python -m <module>``: its docstring's first line, and the
    defaults in ``--help``."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc.splitlines()[0] if doc else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--edges`` and ``--viewers``: the graph ``bench.edge.seed`` loads, and how many of
    its users get a bearer token."""
    parser.add_argument("--edges", type=Path, default=DEFAULT_EDGES, help="edge list to seed")
    parser.add_argument("--viewers", type=int, default=0, help="viewer tokens (0: every user)")


@dataclass(frozen=True)
class LoadOptions:
    """What a benchmark that seeds an edge list (``bench.edge.seed``) and drives servers
    with k6 at fixed arrival rates runs with; each adds its own."""

    quick: bool
    edges: Path
    viewers: int  # viewer tokens (0: every user)
    rates: tuple[int, ...]  # req/s
    runs: int  # per rate and point
    duration_s: int  # per k6 run
    warmup_s: int  # of k6, per server


def integers(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers (``--rates 50,100``)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_parts(
    parser: argparse.ArgumentParser, text: str, known: Sequence[str]
) -> tuple[str, ...]:
    """A comma-separated ``--parts`` value, each one of ``known`` (else a usage error)."""
    parts = tuple(part for part in text.split(",") if part)
    unknown = set(parts) - set(known)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(known)}")
    return parts


def write_report(path: Path, lines: Sequence[str]) -> str:
    """The report as Markdown: written to ``path`` and printed."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text, end="")
    log(f"wrote {path}")
    return text


def keep_logs(work_dir: Path, folder: str, *, fresh: bool = False) -> None:
    """Server, worker and k6 logs survive the temporary directory, for post-mortems, in
    ``bench/results/<folder>/`` (with ``fresh``, this run's only)."""
    logs = RESULTS_DIR / folder
    if fresh:
        shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    for path in work_dir.glob("*.log"):
        shutil.copy(path, logs / path.name)


# --- statistics -----------------------------------------------------------------------------


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


def alternating(items: Sequence[T], index: int) -> Sequence[T]:
    """``items`` in their order for an even ``index`` (a run, a round), reversed for an odd
    one: which goes first alternates, so drifting noise hits every item alike."""
    return items if index % 2 == 0 else items[::-1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def spread(values: Sequence[float], *, digits: int = 2, scale: float = 1.0) -> str:
    """``min-max`` of the runs' values (times ``scale``)."""
    if not values:
        return "-"
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


# --- the code under test --------------------------------------------------------------------

APP_PATHS = (
    "aperture",
    "graphql_api",
    "workers",
    "domain",
    "recommender",
    "migrations",
    "db",
    "infra",
)
APP_FILES = ("alembic.ini", "pyproject.toml")


def git(*args: str, tree: Path = PROJECT_ROOT, check: bool = False) -> str:
    """A git command's output in ``tree``: with ``check`` an error if it fails, else ""."""
    completed = subprocess.run(
        ["git", "--no-optional-locks", *args], cwd=tree, capture_output=True, text=True
    )
    if completed.returncode != 0:
        if check:
            raise RuntimeError(f"git {' '.join(args)} in {tree}: {completed.stderr.strip()}")
        return ""
    return completed.stdout.strip()


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
    return checkout_code(dest)


def checkout_code(root: Path = PROJECT_ROOT) -> CodeSnapshot:
    """The checkout's application as it is now (at ``root`` if copied there)."""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", *APP_PATHS, *APP_FILES)
    subject = git("log", "-1", "--format=%s")
    if len(subject) > 72:
        subject = subject[:69] + "..."
    return CodeSnapshot(
        root=root,
        description=f"commit `{commit}` ({subject})"
        + (" with uncommitted changes in the app" if dirty else ""),
    )


# --- the platform's servers -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchEnv:
    """What a benchmark runs against: our embedded servers, the code snapshot, a work dir
    for its data files and logs, all under ``root``, a temporary directory."""

    settings: Settings
    servers: Servers
    code: CodeSnapshot
    work_dir: Path
    root: Path
    web_processes: int = 1  # `aperture serve --processes` of the web servers it starts

    def connect(self, settings: Settings | None = None) -> AbstractAsyncContextManager[Runtime]:
        """This process's connections to the servers (``settings`` instead of ours)."""
        return connected(settings or self.settings, self.servers)


@contextmanager
def embedded_platform(
    name: str, *, logs: str | None = None, fresh_logs: bool = False, snapshot: bool = True
) -> Iterator[BenchEnv]:
    """Embedded PostgreSQL, Valkey and SeaweedFS in a fresh temporary directory, migrated,
    whatever ``APERTURE_*`` says (benchmarks empty them), and a copy of the application
    to run servers from (without ``snapshot``, for a benchmark that only runs the app in
    its own process: none, the checkout is the code); on the way out, the work dir's logs
    kept in ``bench/results/<logs>/`` (with ``fresh_logs``, this run's only), the servers
    stopped, the directory deleted."""
    started = time.perf_counter()
    # A short path: Unix socket paths must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=f"apt-{name}-"))
    work_dir = root / "work"
    work_dir.mkdir()
    try:
        settings = Settings(data_dir=root / "data", database_urls=[], redis_url=None)
        servers = start_servers(settings, postgres_cleanup="delete")
        try:
            code = snapshot_code(root / "code") if snapshot else checkout_code()
            migrate(shard_map_for(settings, servers))
            log(f"servers up and migrated in {time.perf_counter() - started:.1f}s")
            log(f"code under test: {code.description}")
            yield BenchEnv(
                settings=settings, servers=servers, code=code, work_dir=work_dir, root=root
            )
        finally:
            servers.stop()
    finally:
        if logs is not None:
            keep_logs(work_dir, logs, fresh=fresh_logs)
        shutil.rmtree(root, ignore_errors=True)


@asynccontextmanager
async def connected(settings: Settings, servers: Servers) -> AsyncIterator[Runtime]:
    """A ``Runtime`` on the servers, closed on the way out."""
    runtime = Runtime.connect(settings, servers)
    try:
        yield runtime
    finally:
        await runtime.close()


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
    client = redis.Redis.from_url(servers.redis_url)
    try:
        client.flushall()
    finally:
        client.close()


# --- data -------------------------------------------------------------------------------------


def progress_printer(label: str) -> Progress:
    """A ``load_graph`` progress callback that logs every 10% of each stage."""
    shown: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if shown.get(stage, -1) < tenth:
            shown[stage] = tenth
            log(f"{label}: {stage} {done}/{total}")

    return report


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
            return await start_session(
                ShardSessions(state.runtime.databases), user_record(users[user_id])
            )

    return list(await asyncio.gather(*(one(user_id) for user_id in user_ids)))


def write_data(path: Path, **fields: object) -> Path:
    """A JSON file for k6's ``SharedArray`` (``tokens``, ``usernames``, ...)."""
    path.write_text(json.dumps(fields))
    return path


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(
    settings: Settings, servers: Servers, code: CodeSnapshot, overrides: Mapping[str, str]
) -> dict[str, str]:
    """A subprocess's environment: the code snapshot on its path, pointed at our servers,
    with our settings that differ by benchmark, and ``overrides``."""
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


@dataclass(frozen=True)
class ProcessStat:
    """One process's line of /proc/<pid>/stat, the fields the benchmarks read."""

    parent: int
    group: int
    ticks: int  # user + system CPU
    reaped_ticks: int  # of the children it waited for
    comm: str


def _parse_stat(text: str) -> ProcessStat:
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    return ProcessStat(
        parent=int(fields[1]),
        group=int(fields[2]),
        ticks=int(fields[11]) + int(fields[12]),
        reaped_ticks=int(fields[13]) + int(fields[14]),
        comm=head.partition("(")[2],
    )


def process_table() -> dict[int, ProcessStat]:
    """Every live process, by pid."""
    table: dict[int, ProcessStat] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            table[int(stat.parent.name)] = _parse_stat(stat.read_text())
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(roots: Sequence[int], table: Mapping[int, ProcessStat]) -> set[int]:
    """The live ``roots`` and every live process under them."""
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.parent, []).append(pid)
    found: set[int] = set()
    stack = [root for root in roots if root in table]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    return _parse_stat(Path(f"/proc/{pid}/stat").read_text()).ticks / CLK_TCK


def status_kib(pid: int, name: str) -> int:
    """A KiB figure of /proc/<pid>/status: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} for {pid}")


def rss_kib(pid: int) -> int:
    return status_kib(pid, "VmRSS")


def raise_open_files(needed: int) -> Callable[[], None]:
    """A ``preexec_fn`` lifting the child's open-file limit to ``needed`` (the soft limit
    to the hard one; the hard one too where we may)."""

    def raise_limit() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = max(soft, needed)
        if want > hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
                return
            except (ValueError, OSError):
                want = hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    return raise_limit


@dataclass
class Child:
    """A Python subprocess in its own process group, logging to a file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far by the live processes of its group (the
        process and, with several web processes, its uvicorn children), from /proc."""
        pid = self.process.pid
        ticks = sum(stat.ticks for stat in process_table().values() if stat.group == pid)
        return ticks / CLK_TCK

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


def spawn(
    arguments: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    stdin: int | None = None,
    replies: bool = False,
    open_files: int = 0,
) -> Child:
    """This Python with ``arguments``, in a session of its own, its output in ``log_path``
    (with ``replies``, only stderr there: stdout is a pipe to read from)."""
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE if replies else output,
            stderr=output if replies else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=raise_open_files(open_files) if open_files else None,
        )
    return Child(process=process, log_path=log_path)


def wait_ready(child: Child, name: str) -> Child:
    """Until ``child.url`` answers /readyz with 200; stopped, and an error, if it exits
    or takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if child.process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{child.log_text()}")
        try:
            if httpx.get(f"{child.url}/readyz", timeout=2).status_code == 200:
                return child
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"{name} did not become ready:\n{child.log_text()}")
        time.sleep(0.1)


def start_api_server(
    settings: Settings,
    servers: Servers,
    code: CodeSnapshot,
    overrides: Mapping[str, str],
    log_path: Path,
    *,
    processes: int = 1,
) -> Child:
    """``aperture serve`` on a free port against our servers; returns once /readyz is ok."""
    port = free_port()
    command = ["-m", "aperture.cli", "serve", "--port", str(port)]
    if processes != 1:
        command += ["--processes", str(processes)]
    env = server_env(settings, servers, code, overrides)
    child = spawn(command, env=env, cwd=code.root, log_path=log_path)
    child.url = f"http://127.0.0.1:{port}"
    return wait_ready(child, "aperture serve")


def start_worker(
    settings: Settings,
    servers: Servers,
    code: CodeSnapshot,
    overrides: Mapping[str, str],
    log_path: Path,
    *,
    queues: Sequence[str] = (),
) -> Child:
    """``aperture worker`` (of ``queues``, all by default) against our servers; returns
    once it says it is ready."""
    env = server_env(settings, servers, code, overrides)
    command = ["-m", "aperture.cli", "worker", *(f"--queue={queue}" for queue in queues)]
    child = spawn(command, env=env, cwd=code.root, log_path=log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "worker ready" not in child.log_text():
        if child.process.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"aperture worker did not start:\n{child.log_text()}")
        time.sleep(0.1)
    return child


# --- GraphQL over HTTP ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A GraphQL response: ``data`` is None unless it was a 200 with data and no errors."""

    status: int
    body: dict[str, Any]  # {} when the response was not JSON
    text: str

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = {}
        return cls(response.status_code, body if isinstance(body, dict) else {}, response.text)

    @property
    def data(self) -> dict[str, Any] | None:
        data = self.body.get("data")
        if self.status != 200 or self.body.get("errors") or not data:
            return None
        return dict(data)

    @property
    def error(self) -> str:
        return f"HTTP {self.status}: {self.text[:300]}"


def graphql_request(
    query: str, *, token: str | None = None, variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``httpx`` keyword arguments of a GraphQL POST, as ``token``'s bearer if given."""
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = dict(variables)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"json": payload, "headers": headers}


async def ask(
    client: httpx.AsyncClient,
    query: str,
    *,
    token: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Answer:
    """One GraphQL request on ``client`` (its base URL the server's)."""
    response = await client.post(
        "/graphql", **graphql_request(query, token=token, variables=variables)
    )
    return Answer.of(response)


def ask_once(url: str, query: str, *, token: str | None = None, timeout: float = 30) -> Answer:
    """One GraphQL request to the server at ``url``, on a connection of its own."""
    response = httpx.post(f"{url}/graphql", timeout=timeout, **graphql_request(query, token=token))
    return Answer.of(response)


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
                answer = await ask(client, query, token=token)
            if answer.data is None:
                result.errors.append(answer.error)
                return
            edges = answer.data["homeFeed"]["edges"]
            result.pages[index] = [edge["node"]["id"] for edge in edges]

        await asyncio.gather(*(one(index, token) for index, token in enumerate(tokens)))
    result.seconds = time.perf_counter() - started
    return result


# --- k6 ---------------------------------------------------------------------------------------

COUNTER_STATS = frozenset({"count", "rate", "passes", "fails"})


@dataclass(frozen=True)
class K6Summary:
    """k6's end-of-test summary (``handleSummary``'s JSON): metric -> stat -> value."""

    metrics: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> K6Summary:
        loaded: dict[str, Any] = json.loads(path.read_text())
        return cls(metrics=loaded.get("metrics", {}))

    def stat(self, metric: str, name: str) -> float:
        """One of a metric's values; a count or rate that k6 never recorded is 0, any
        other stat NaN."""
        found = self.metrics.get(metric)
        values: dict[str, float] = found["values"] if found else {}
        return float(values.get(name, 0.0 if name in COUNTER_STATS else float("nan")))

    def count(self, metric: str) -> int:
        return int(self.stat(metric, "count"))


def k6_command(script: str, **variables: object) -> list[str]:
    """``k6 run`` of ``bench/k6/<script>.js``, quiet, with ``variables`` as its ``-e``s."""
    command = [str(K6_BINARY), "run", "--quiet", "--no-usage-report", "--no-color"]
    for name, value in variables.items():
        command += ["-e", f"{name}={value}"]
    return [*command, str(K6_SCRIPTS / f"{script}.js")]


@dataclass
class K6Process:
    """k6 running a script: its summary, its output and (``console``) its console.log
    lines go to files of the work dir."""

    process: subprocess.Popen[bytes]
    summary_path: Path
    log_path: Path
    console_path: Path | None

    def finish(self, timeout: float) -> K6Summary:
        """Its summary once it exits (killed after ``timeout`` seconds)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if not self.summary_path.exists():
            output = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"k6 exited {self.process.returncode} without a summary:\n{output}")
        return K6Summary.read(self.summary_path)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def console_lines(self) -> list[str]:
        path = self.console_path
        return path.read_text(errors="replace").splitlines() if path and path.exists() else []

    def failure_samples(self, count: int = 5) -> list[str]:
        """Lines that k6's scripts print for a failed request."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line.strip() for line in lines if "FAILED" in line][:count]


def start_k6(
    script: str,
    work_dir: Path,
    variables: Mapping[str, object],
    *,
    name: str | None = None,
    console: bool = False,
    pipe: bool = False,
    open_files: int = 0,
) -> K6Process:
    """``bench/k6/<script>.js`` in the background, with ``variables`` as its ``-e``s
    (``SUMMARY`` set here). ``console``: console.log lines to a file of their own;
    ``pipe``: the output on ``process.stdout`` for the caller to read (and copy to the
    log); ``open_files``: the open-file limit k6 needs."""
    stem = f"k6-{name or script}-{time.monotonic_ns()}"
    summary_path = work_dir / f"{stem}.json"
    log_path = work_dir / f"{stem}.log"
    console_path = work_dir / f"{stem}.console.log" if console else None
    command = k6_command(script, **variables, SUMMARY=summary_path)
    if console_path is not None:
        command[2:2] = ["--log-format", "raw", "--console-output", str(console_path)]
    output: IO[bytes] | int = subprocess.PIPE
    if not pipe:
        output = log_path.open("wb")
    try:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_open_files(open_files) if open_files else None,
        )
    finally:
        if not isinstance(output, int):
            output.close()
    return K6Process(process, summary_path, log_path, console_path)


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

    @property
    def server_cpu_seconds(self) -> float:
        return self.server_cpu * self.run_seconds

    @property
    def cpu_ms_per_answered(self) -> float:
        """Server CPU per request answered without failure, ms."""
        answered = self.requests - self.failed
        return self.server_cpu_seconds * 1000 / answered if answered else float("nan")

    def held(self, p99_limit_ms: float = 1000.0) -> bool:
        p99 = self.latency["all"][1]
        return self.failed == 0 and self.dropped == 0 and p99 < p99_limit_ms and self.requests > 0


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
    extra: Mapping[str, object] | None = None,
) -> K6Result:
    """One k6 run at a fixed arrival rate against ``target`` (``constant-arrival-rate``,
    ``bench/k6/common.js``); ``kinds`` names the latency trends (``latency_<kind>``) to
    collect; ``extra`` adds the script's own ``-e`` variables."""
    cpu_before = target.cpu_seconds()
    started = time.perf_counter()
    k6 = start_k6(
        script,
        work_dir,
        {
            "TARGET": target.url,
            "DATA": data,
            "RATE": rate,
            "DURATION": duration_s,
            "PRE_VUS": max(20, rate // 4),
            "MAX_VUS": max(200, rate * 2),
            "TIMEOUT": timeout,
            **(extra or {}),
        },
        name=f"{script}-{rate}",
    )
    summary = k6.finish(timeout=duration_s + 120)
    elapsed = time.perf_counter() - started
    cpu = (target.cpu_seconds() - cpu_before) / elapsed
    requests = summary.count("http_reqs")
    latency = {
        kind: (
            summary.stat(f"latency_{kind}", "med"),
            summary.stat(f"latency_{kind}", "p(99)"),
            summary.count(f"latency_{kind}"),
        )
        for kind in kinds
    }
    if "all" not in latency:
        latency["all"] = latency[kinds[0]]
    return K6Result(
        rate=rate,
        duration_s=duration_s,
        requests=requests,
        failed=round(summary.stat("failed_requests", "rate") * requests),
        dropped=summary.count("dropped_iterations"),
        run_seconds=elapsed,
        latency=latency,
        failed_by_kind={kind: summary.stat(f"failed_{kind}", "rate") for kind in kinds},
        server_cpu=cpu,
        failure_samples=k6.failure_samples(),
    )


def log_run(
    heading: str, result: K6Result, *, kind: str = "all", cpu_ms: float | None = None
) -> None:
    """One k6 run on the log: the server's CPU per request (``cpu_ms``, if given), the
    latency of ``kind``, failures and drops, the server's CPU share; a few failures."""
    p50, p99, _ = result.latency[kind]
    cpu = "" if cpu_ms is None else f"CPU {cpu_ms:.2f} ms/request, "
    log(
        f"{heading}: {cpu}p50 {p50:.1f} ms p99 {p99:.1f} ms, "
        f"{result.failed}/{result.requests} failed, {result.dropped} dropped, "
        f"server CPU {result.server_cpu:.0%}"
    )
    for sample in result.failure_samples[:2]:
        log(f"  {sample[:300]}")


@dataclass
class Runs:
    """The k6 runs of one point (a rate, a server, a read), summarised over runs: each
    run's p50 and p99, and their medians; counts summed."""

    runs: list[K6Result] = field(default_factory=list)

    def p50s(self, kind: str = "all") -> list[float]:
        return [run.latency[kind][0] for run in self.runs]

    def p99s(self, kind: str = "all") -> list[float]:
        return [run.latency[kind][1] for run in self.runs]

    def p50(self, kind: str = "all") -> float:
        return median(self.p50s(kind))

    def p99(self, kind: str = "all") -> float:
        return median(self.p99s(kind))

    def achieved(self) -> float:
        return median([run.achieved_rps for run in self.runs])

    def server_cpu(self) -> float:
        return median([run.server_cpu for run in self.runs])

    def cpu_ms_per_answered(self) -> list[float]:
        return [run.cpu_ms_per_answered for run in self.runs]

    @property
    def requests(self) -> int:
        return sum(run.requests for run in self.runs)

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def dropped(self) -> int:
        return sum(run.dropped for run in self.runs)

    def worst_error_rate(self) -> float:
        return max(run.error_rate for run in self.runs)

    def most_dropped(self) -> int:
        return max(run.dropped for run in self.runs)
