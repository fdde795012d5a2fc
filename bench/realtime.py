"""Realtime delivery (issue 11): how many subscribed sockets one server process holds,
what an idle one costs, how fast a message reaches a subscriber on another process, and
whether a client whose socket keeps dropping misses anything.

Starts embedded PostgreSQL, Valkey and SeaweedFS in a fresh temporary directory,
migrates, seeds every account the parts need at once (``load_graph``, no follows, no
posts) and gives each a bearer token (``make_tokens``). Two uvicorn processes
(``aperture.web:app_from_environment --factory``, ``APERTURE_SERVE_RUNS_WORKERS=false``,
rate-limit buckets nothing can empty) run from a copy of the code taken at start: **A**
takes the ``sendMessage`` mutations over HTTP, **B** holds the websockets
(``graphql-transport-ws``; the token in ``connection_init``). Load comes from k6
(``.venv/bin/k6``) and its event-loop websockets module, several sockets per VU.

Parts:

* ``connections`` (``bench/k6/realtime_sockets.js``): per run, a fresh B; after a warm-up,
  its RSS with no socket; then ``--connections`` sockets, one per user, each subscribed to
  ``messageEvents`` and ``notificationEvents``, opened at ``--ramp-rate`` per second. All
  subscribed = every user's channel subscribed in Valkey (``PUBSUB CHANNELS rt:user:*``);
  then B's RSS (``VmRSS``) and CPU over ``--hold`` idle seconds; then a message through A to
  ``--sample`` random socket owners, which must arrive on both subscriptions; then every
  VU counts its sockets still open.
* ``latency`` (``bench/k6/realtime_latency.js``): ``--pairs`` one-to-one threads, the
  receivers subscribed on B; k6 sends through A at a constant arrival rate, each message
  carrying ``Date.now()`` at the mutation's start, and the receiver takes the difference
  when its ``next`` frame arrives. Each rate of ``--rates`` runs ``--runs`` times for
  ``--duration`` s; stepping stops after the first rate not held, except that the goal's
  rate (500/s) is always measured.
* ``loss`` (``bench/k6/realtime_loss.js``): ``--loss-receivers`` receivers, one thread
  each, force ``--reconnects`` reconnects in all while k6 sends at ``--loss-rate``: close
  at a random moment, stay away a moment, reconnect, subscribe, catch up with
  ``messages(threadId:, first: 100, after: <last seq seen>)``. Each receiver's view is
  compared with the rows in PostgreSQL.

The report is printed and written to ``bench/results/realtime.md`` (server and k6 logs in
``bench/results/realtime-logs/``).

    .venv/bin/python -m bench.realtime [--parts connections,latency,loss] [--runs 3]
        [--duration 10] [--connection-runs 2] [--ws-ping-interval 0] [--tag T] [--help]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from websockets.asyncio.client import connect

from aperture.cli import WS_PING_INTERVAL_SECONDS
from aperture.seed import Graph, load_graph
from bench.edge import LIMITED, SERVER_SETTINGS
from bench.harness import (
    RESULTS_DIR,
    BenchEnv,
    Child,
    K6Process,
    ask,
    command_line,
    cpu_seconds,
    describe_machine,
    embedded_platform,
    fmt,
    free_port,
    integers,
    log,
    make_tokens,
    median,
    parse_parts,
    rss_kib,
    run_line,
    server_env,
    spawn,
    start_k6,
    wait_ready,
    write_data,
    write_report,
)
from db.session import ShardSessions
from domain.state import AppState
from graphql_api.relay import to_global_id

RESULTS_PATH = RESULTS_DIR / "realtime.md"
PARTS = ("connections", "latency", "loss")
GOAL_CONNECTIONS = 10_000
GOAL_KIB_PER_CONNECTION = 50
GOAL_RATE = 500
GOAL_P99_MS = 50.0
STALL_S = 30
SERVE_SETTINGS = {**SERVER_SETTINGS[LIMITED], "APERTURE_SERVE_RUNS_WORKERS": "false"}
SEND = (
    "mutation($u: ID, $t: ID, $text: String) { sendMessage(input: {userId: $u, threadId: $t, "
    "text: $text}) { message { seq threadId } } }"
)
MESSAGE_EVENTS = "subscription { messageEvents { kind threadId seq message { id seq text } } }"
NOTIFICATION_EVENTS = "subscription { notificationEvents { kind unreadCount } }"


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...]
    runs: int
    duration: int
    connections: int
    connection_runs: int
    ramp_rate: int
    per_vu: int
    hold: int
    sample: int
    rates: tuple[int, ...]
    pairs: int
    reconnects: int
    loss_receivers: int
    loss_rate: int
    loss_seconds: int
    loss_runs: int
    ws_ping_interval: float
    tag: str


@dataclass
class Accounts:
    """Every account the parts use, by role: (user id, bearer token)."""

    sockets: list[tuple[int, str]]
    latency_senders: list[tuple[int, str]]
    latency_receivers: list[tuple[int, str]]
    loss_senders: list[tuple[int, str]]
    loss_receivers: list[tuple[int, str]]
    sampler: tuple[int, str]
    seed_seconds: float = 0.0


@dataclass
class Stage:
    """What every part runs with: the platform, the options, the accounts, server A (it
    takes the ``sendMessage`` mutations) and the goals table, which each part adds to."""

    env: BenchEnv
    options: Options
    accounts: Accounts
    sender: Child
    goals: list[str] = field(default_factory=list)


# --- processes ---------------------------------------------------------------------------


def start_uvicorn(
    env: BenchEnv,
    name: str,
    *,
    sockets: int,
    ws_ping_interval: float = WS_PING_INTERVAL_SECONDS,
) -> Child:
    """One uvicorn process of ``app_from_environment`` on a free port, ready, pinging its
    websockets every ``ws_ping_interval`` seconds (as `aperture serve`; 0: never)."""
    port = free_port()
    command = [
        "-m",
        "uvicorn",
        "aperture.web:app_from_environment",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--backlog",
        "4096",
        "--ws-per-message-deflate",
        "false",  # as `aperture serve` (aperture/cli.py uvicorn_options)
        "--ws-ping-interval",
        str(ws_ping_interval),
    ]
    child = spawn(
        command,
        env=server_env(env.settings, env.servers, env.code, SERVE_SETTINGS),
        cwd=env.code.root,
        log_path=env.work_dir / f"serve-{name}-{time.monotonic_ns()}.log",
        open_files=sockets + 1024,
    )
    child.url = f"http://127.0.0.1:{port}"
    return wait_ready(child, f"server {name}")


def nofile_limits() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def child_nofile(child: Child) -> int:
    for line in Path(f"/proc/{child.process.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


class Control:
    """A tiny HTTP endpoint the k6 socket holders poll: "hold" until told "stop"."""

    def __init__(self) -> None:
        self.answer = b"hold"
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(control.answer)))
                self.end_headers()
                self.wfile.write(control.answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_sockets_k6(script: str, work_dir: Path, sockets: int, **variables: object) -> K6Process:
    """k6 in the background with the open files ``sockets`` need, its console.log lines
    (each VU's report) in a file of their own."""
    return start_k6(script, work_dir, variables, console=True, open_files=sockets + 1024)


def failure_samples(lines: Sequence[str]) -> list[str]:
    return [line.strip()[:300] for line in lines if line.startswith("FAILED")][:3]


# --- data --------------------------------------------------------------------------------


async def seed_accounts(env: BenchEnv, options: Options) -> Accounts:
    started = time.perf_counter()
    counts = [
        options.connections if "connections" in options.parts else 0,
        options.pairs if "latency" in options.parts else 0,
        options.pairs if "latency" in options.parts else 0,
        options.loss_receivers if "loss" in options.parts else 0,
        options.loss_receivers if "loss" in options.parts else 0,
        1,
    ]
    async with env.connect() as runtime:
        graph = Graph(users=sum(counts), edges=[])
        user_ids = await load_graph(ShardSessions(runtime.databases), graph, posts_per_user=0)
        log(f"seeded {len(user_ids):,} accounts; starting their sessions")
        tokens = await make_tokens(AppState(runtime), user_ids)
    pairs = list(zip(user_ids, tokens, strict=True))
    groups: list[list[tuple[int, str]]] = []
    offset = 0
    for count in counts:
        groups.append(pairs[offset : offset + count])
        offset += count
    return Accounts(
        sockets=groups[0],
        latency_senders=groups[1],
        latency_receivers=groups[2],
        loss_senders=groups[3],
        loss_receivers=groups[4],
        sampler=groups[5][0],
        seed_seconds=time.perf_counter() - started,
    )


async def send_messages(
    url: str, sends: Sequence[tuple[str, int, str]], *, concurrency: int = 4
) -> list[str]:
    """``sendMessage`` as each (sender token, recipient user id, text); the thread ids."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(token: str, recipient: int, text: str) -> str:
            variables = {"u": to_global_id("User", recipient), "text": text}
            async with gate:
                answer = await ask(client, SEND, token=token, variables=variables)
            if answer.data is None:
                raise RuntimeError(f"sendMessage failed: {answer.text[:300]}")
            thread_id: str = answer.data["sendMessage"]["message"]["threadId"]
            return thread_id

        return list(await asyncio.gather(*(one(*send) for send in sends)))


def pair_data(
    stage: Stage,
    name: str,
    senders: Sequence[tuple[int, str]],
    receivers: Sequence[tuple[int, str]],
    text: str,
) -> Path:
    """One one-to-one thread per (sender, receiver), started with a first message; the
    k6 data file of tokens and thread ids."""
    sends = [
        (token, receiver, text.format(index=index))
        for index, ((_, token), (receiver, _)) in enumerate(zip(senders, receivers, strict=True))
    ]
    threads = asyncio.run(send_messages(stage.sender.url, sends))
    return write_data(
        stage.env.work_dir / f"{name}-pairs.json",
        threads=threads,
        senders=[token for _, token in senders],
        receivers=[token for _, token in receivers],
    )


async def warm_sockets(url: str, tokens: Sequence[str]) -> None:
    """A few sockets through the whole handshake and both subscriptions, then closed:
    the code paths are loaded before the baseline RSS is read."""
    ws_url = url.replace("http://", "ws://", 1) + "/graphql"

    async def one(token: str) -> None:
        async with connect(
            ws_url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            open_timeout=10,
            proxy=None,
        ) as socket:
            await socket.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"warm-up socket refused: {ack}")
            for index, query in enumerate((MESSAGE_EVENTS, NOTIFICATION_EVENTS), 1):
                await socket.send(
                    json.dumps({"id": str(index), "type": "subscribe", "payload": {"query": query}})
                )
            await asyncio.sleep(0.5)

    await asyncio.gather(*(one(token) for token in tokens))


def channels_subscribed(client: redis.Redis) -> int:
    return len(client.pubsub_channels("rt:user:*"))


# --- part: connections --------------------------------------------------------------------


@dataclass
class ConnectionRun:
    target: int
    opened: int
    acked: int
    subscribed: int
    open_at_end: int
    closed_early: int
    failures: int
    seconds_to_subscribed: float
    ramp_cpu_s: float
    rss_before_kib: int
    rss_with_kib: int
    idle_cpu_before: float  # fraction of a core, no sockets
    idle_cpu_with: float  # fraction of a core, all sockets idle
    hold_s: float
    sample: int
    sample_message_events: int
    sample_notification_events: int
    ack_p50_ms: float
    ack_p99_ms: float
    live: int  # sockets that got messageEvents' first GAP: live, nothing missed after it
    live_p50_ms: float
    live_p99_ms: float
    k6_rss_kib: int
    server_nofile: int
    samples: list[str] = field(default_factory=list)
    # (subscribed, seconds since k6 started, RSS KiB, server CPU seconds since then)
    milestones: list[tuple[int, float, int, float]] = field(default_factory=list)

    @property
    def kib_per_connection(self) -> float:
        count = self.subscribed or self.acked
        return (self.rss_with_kib - self.rss_before_kib) / count if count else float("nan")


def idle_cpu(child: Child, seconds: float) -> float:
    before = cpu_seconds(child.process.pid)
    started = time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(child.process.pid) - before) / (time.monotonic() - started)


def one_connection_run(
    env: BenchEnv, options: Options, accounts: Accounts, sender: Child, data: Path, run: int
) -> ConnectionRun:
    target = len(accounts.sockets)
    server = start_uvicorn(
        env, f"sockets-{run}", sockets=target, ws_ping_interval=options.ws_ping_interval
    )
    valkey = redis.Redis.from_url(env.servers.redis_url)
    control = Control()
    k6: K6Process | None = None
    try:
        asyncio.run(warm_sockets(server.url, [token for _, token in accounts.sockets[:20]]))
        time.sleep(2)
        rss_before = rss_kib(server.process.pid)
        cpu_before = idle_cpu(server, 5)
        log(
            f"connections run {run}: server RSS {rss_before / 1024:.1f} MiB with no socket, "
            f"idle CPU {cpu_before:.1%}; opening {target:,} sockets at {options.ramp_rate}/s"
        )
        ramp_cpu_start = cpu_seconds(server.process.pid)
        k6 = start_sockets_k6(
            "realtime_sockets",
            env.work_dir,
            target,
            TARGET=server.url,
            DATA=data,
            PER_VU=options.per_vu,
            RATE=options.ramp_rate,
            CONTROL=control.url,
            HOLD_MAX=1200,  # the benchmark says "stop" long before
        )
        started = time.monotonic()
        milestones: list[tuple[int, float, int, float]] = []
        marks = [target // 4, target // 2, target * 3 // 4, target]
        subscribed = 0
        k6_rss = 0
        # Until every user's channel is subscribed, or no progress for STALL_S seconds.
        progress_at, deadline = started, started + target / options.ramp_rate + 900
        while time.monotonic() < min(deadline, progress_at + STALL_S) and k6.process.poll() is None:
            time.sleep(1)
            count = channels_subscribed(valkey)
            if count > subscribed:
                progress_at = time.monotonic()
            subscribed = count
            k6_rss = max(k6_rss, rss_kib(k6.process.pid))
            while marks and subscribed >= marks[0]:
                milestones.append(
                    (
                        marks.pop(0),
                        time.monotonic() - started,
                        rss_kib(server.process.pid),
                        cpu_seconds(server.process.pid) - ramp_cpu_start,
                    )
                )
            if subscribed >= target:
                break
        seconds_to_subscribed = time.monotonic() - started
        ramp_cpu = cpu_seconds(server.process.pid) - ramp_cpu_start
        log(
            f"  {subscribed:,} of {target:,} users' channels subscribed after "
            f"{seconds_to_subscribed:.1f} s (server CPU {ramp_cpu:.1f} s)"
        )
        time.sleep(3)  # the last handshakes' work settles
        hold_started = time.monotonic()
        cpu_with = idle_cpu(server, options.hold)
        hold_s = time.monotonic() - hold_started
        rss_with = rss_kib(server.process.pid)
        k6_rss = max(k6_rss, rss_kib(k6.process.pid)) if k6.process.poll() is None else k6_rss
        log(
            f"  holding: server RSS {rss_with / 1024:.1f} MiB "
            f"({(rss_with - rss_before) / max(subscribed, 1):.1f} KiB per socket), "
            f"idle CPU {cpu_with:.1%}"
        )
        chosen = random.Random(run).sample(accounts.sockets, min(options.sample, target))
        sampler_token = accounts.sampler[1]
        asyncio.run(
            send_messages(
                sender.url,
                [(sampler_token, user_id, f"sample {run}") for user_id, _ in chosen],
            )
        )
        time.sleep(3)
        control.answer = b"stop"
        summary = k6.finish(timeout=120)
        lines = k6.console_lines()
        return ConnectionRun(
            target=target,
            opened=summary.count("sockets_opened"),
            acked=summary.count("sockets_acked"),
            subscribed=subscribed,
            open_at_end=summary.count("sockets_open_at_end"),
            closed_early=summary.count("sockets_closed_early"),
            failures=summary.count("socket_failures"),
            seconds_to_subscribed=seconds_to_subscribed,
            ramp_cpu_s=ramp_cpu,
            rss_before_kib=rss_before,
            rss_with_kib=rss_with,
            idle_cpu_before=cpu_before,
            idle_cpu_with=cpu_with,
            hold_s=hold_s,
            sample=len(chosen),
            sample_message_events=summary.count("events_message"),
            sample_notification_events=summary.count("events_notification"),
            ack_p50_ms=summary.stat("ack_ms", "med"),
            ack_p99_ms=summary.stat("ack_ms", "p(99)"),
            live=summary.count("live"),
            live_p50_ms=summary.stat("live_ms", "med"),
            live_p99_ms=summary.stat("live_ms", "p(99)"),
            k6_rss_kib=k6_rss,
            server_nofile=child_nofile(server),
            samples=failure_samples(lines),
            milestones=milestones,
        )
    finally:
        if k6 is not None:
            k6.stop()
        control.close()
        valkey.close()
        server.stop()


def run_connections(stage: Stage) -> list[str]:
    env, options, accounts = stage.env, stage.options, stage.accounts
    data = env.work_dir / "socket-tokens.json"
    write_data(data, tokens=[token for _, token in accounts.sockets])
    runs: list[ConnectionRun] = []
    for run in range(1, options.connection_runs + 1):
        result = one_connection_run(env, options, accounts, stage.sender, data, run)
        log(
            f"  run {run}: acked {result.acked:,}, open at end {result.open_at_end:,}, "
            f"closed early {result.closed_early}, failures {result.failures}, sample events "
            f"{result.sample_message_events}/{result.sample_notification_events} of "
            f"{result.sample}"
        )
        runs.append(result)
    worst_open = min(run.open_at_end for run in runs)
    all_held = all(
        run.acked == run.target == run.subscribed == run.open_at_end == run.live
        and run.sample_message_events >= run.sample
        and run.sample_notification_events >= run.sample
        for run in runs
    )
    kib = median([run.kib_per_connection for run in runs])
    cpu = median([run.idle_cpu_with for run in runs])
    stage.goals += [
        f"| {GOAL_CONNECTIONS:,} authenticated sockets, each subscribed to both, on one "
        f"process | {runs[0].target:,} opened per run: acked "
        + ", ".join(f"{run.acked:,}" for run in runs)
        + f"; all still open at the end in the worst run: {worst_open:,}; sample delivered on "
        f"both subscriptions: {'yes' if all_held else 'no'} | "
        f"{'**yes**' if all_held and runs[0].target >= GOAL_CONNECTIONS else '**no**'} |",
        f"| <= {GOAL_KIB_PER_CONNECTION} KiB of server RSS per idle subscribed socket | "
        f"{kib:.1f} KiB (median of {len(runs)} runs) | "
        f"{'**yes**' if kib <= GOAL_KIB_PER_CONNECTION else '**no**'} |",
        f"| Server CPU ~0 while the sockets idle | {cpu:.2%} of a core (median) | "
        f"{'**yes**' if cpu < 0.02 else '**no**'} |",
    ]
    return render_connections(runs, options)


def render_connections(runs: Sequence[ConnectionRun], options: Options) -> list[str]:
    soft, hard = nofile_limits()
    lines = [
        "### Connections and idle cost (one server process)",
        "",
        f"{options.connection_runs} runs, each on a fresh server process B: {runs[0].target:,} "
        f"sockets, one per user, each subscribed to `messageEvents` and `notificationEvents`, "
        f"opened by k6 at {options.ramp_rate}/s ({options.per_vu} per VU); B's RSS with no "
        "socket is read after 20 warm-up sockets (handshake and both subscriptions) have come "
        "and gone. *Subscribed* = users whose channel B has subscribed in Valkey. Idle CPU is "
        f"B's user+system CPU over {options.hold} s with every socket open and nothing sent. "
        f"Then {options.sample} random socket owners get a message (sent through A), which "
        "must arrive on both of their subscriptions. Open-file limit: ours "
        f"{soft:,} soft / {hard:,} hard; B's (raised for the child) "
        f"{runs[0].server_nofile:,}. uvicorn's websocket keepalive ping: "
        + ("off" if options.ws_ping_interval == 0 else f"every {options.ws_ping_interval:g} s")
        + ".",
        "",
        "| Run | Acked | Subscribed | Live (first GAP) | Open at end | Closed early | Failures "
        "| Seconds to all subscribed | Server CPU ms per connect | RSS no sockets MiB "
        "| RSS with sockets MiB | KiB per socket | Idle CPU, no sockets | Idle CPU, all sockets "
        "| Sample delivered "
        "(messages / notifications) | k6 RSS MiB |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for index, run in enumerate(runs, 1):
        lines.append(
            f"| {index} | {run.acked:,} | {run.subscribed:,} | {run.live:,} | "
            f"{run.open_at_end:,} | "
            f"{run.closed_early} | {run.failures} | {run.seconds_to_subscribed:.1f} | "
            f"{run.ramp_cpu_s * 1000 / max(run.subscribed, 1):.2f} | "
            f"{run.rss_before_kib / 1024:.1f} | {run.rss_with_kib / 1024:.1f} | "
            f"{run.kib_per_connection:.1f} | {run.idle_cpu_before:.2%} | "
            f"{run.idle_cpu_with:.2%} | {run.sample_message_events} / "
            f"{run.sample_notification_events} of {run.sample} | {run.k6_rss_kib / 1024:.0f} |"
        )
    lines += [
        "",
        f"Median: {median([run.kib_per_connection for run in runs]):.1f} KiB per idle "
        f"subscribed socket; idle CPU {median([run.idle_cpu_with for run in runs]):.2%} of a "
        f"core with all sockets open ({median([run.idle_cpu_before for run in runs]):.2%} "
        f"with none); handshake (`connection_init` to `connection_ack`) p50 "
        f"{median([run.ack_p50_ms for run in runs]):.1f} ms, p99 "
        f"{median([run.ack_p99_ms for run in runs]):.1f} ms; subscribe to live (the first "
        f"GAP) p50 {median([run.live_p50_ms for run in runs]):.1f} ms, p99 "
        f"{median([run.live_p99_ms for run in runs]):.1f} ms (medians over runs).",
    ]
    first = runs[0]
    if first.milestones:
        lines += [
            "",
            "As the sockets came (run 1):",
            "",
            "| Subscribed | Seconds since k6 started | Server RSS MiB | Server CPU s so far | "
            "CPU ms per connect in this step |",
            "|--:|--:|--:|--:|--:|",
        ]
        previous = (0, 0.0, first.rss_before_kib, 0.0)
        for count, seconds, rss, cpu in first.milestones:
            step = (cpu - previous[3]) * 1000 / max(count - previous[0], 1)
            lines.append(
                f"| {count:,} | {seconds:.0f} | {rss / 1024:.1f} | {cpu:.1f} | {step:.1f} |"
            )
            previous = (count, seconds, rss, cpu)
    samples = [sample for run in runs for sample in run.samples][:3]
    if samples:
        lines += ["", "Failure samples:", "", *[f"    {sample}" for sample in samples]]
    return lines


# --- part: latency ------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyRun:
    rate: int
    sent_ok: int
    failed: int
    dropped: int
    received: int
    received_twice: int
    delivery_p50: float
    delivery_p99: float
    delivery_max: float
    send_p50: float
    send_p99: float
    acked: int
    closed_early: int
    cpu_sender: float
    cpu_receiver: float
    samples: list[str]

    @property
    def held(self) -> bool:
        return (
            self.failed == 0
            and self.dropped == 0
            and self.sent_ok > 0
            and self.received == self.sent_ok
            and self.delivery_p99 < 1000
        )


def one_latency_run(
    env: BenchEnv,
    options: Options,
    sender: Child,
    receiver: Child,
    data: Path,
    rate: int,
) -> LatencyRun:
    warm, drain = 4, 3
    cpu_a, cpu_b = sender.cpu_seconds(), receiver.cpu_seconds()
    started = time.monotonic()
    k6 = start_sockets_k6(
        "realtime_latency",
        env.work_dir,
        options.pairs,
        TARGET=receiver.url,
        SENDER=sender.url,
        DATA=data,
        RATE=rate,
        DURATION=options.duration,
        WARM=warm,
        DRAIN=drain,
        PER_VU=25,
        PRE_VUS=max(20, rate // 5),
        MAX_VUS=max(200, rate),
        TIMEOUT="5s",
    )
    summary = k6.finish(timeout=options.duration + 120)
    lines = k6.console_lines()
    elapsed = time.monotonic() - started
    sent_ok = summary.count("sent_ok")
    requests = summary.count("send_ms")
    return LatencyRun(
        rate=rate,
        sent_ok=sent_ok,
        failed=requests - sent_ok,
        dropped=summary.count("dropped_iterations"),
        received=summary.count("received"),
        received_twice=summary.count("received_twice"),
        delivery_p50=summary.stat("delivery_ms", "med"),
        delivery_p99=summary.stat("delivery_ms", "p(99)"),
        delivery_max=summary.stat("delivery_ms", "max"),
        send_p50=summary.stat("send_ms", "med"),
        send_p99=summary.stat("send_ms", "p(99)"),
        acked=summary.count("sockets_acked"),
        closed_early=summary.count("sockets_closed_early"),
        # CPU per second of sending (the sockets' set-up and drain are idle time).
        cpu_sender=(sender.cpu_seconds() - cpu_a) / min(elapsed, options.duration + warm),
        cpu_receiver=(receiver.cpu_seconds() - cpu_b) / min(elapsed, options.duration + warm),
        samples=failure_samples(lines),
    )


def run_latency(stage: Stage, receiver: Child) -> list[str]:
    env, options, accounts, sender = stage.env, stage.options, stage.accounts, stage.sender
    data = pair_data(
        stage, "latency", accounts.latency_senders, accounts.latency_receivers, "hello {index}"
    )
    log(f"latency: {options.pairs} threads; warm-up run")
    one_latency_run(env, options, sender, receiver, data, min(options.rates))
    results: dict[int, list[LatencyRun]] = {}
    stepping = True
    for rate in options.rates:
        if not stepping and rate != GOAL_RATE:
            continue
        results[rate] = []
        for run in range(1, options.runs + 1):
            result = one_latency_run(env, options, sender, receiver, data, rate)
            log(
                f"latency {rate}/s run {run}: delivered {result.received}/{result.sent_ok}, "
                f"failed {result.failed}, dropped {result.dropped}, p50 "
                f"{result.delivery_p50:.1f} ms, p99 {result.delivery_p99:.1f} ms; CPU A "
                f"{result.cpu_sender:.0%} B {result.cpu_receiver:.0%}"
            )
            results[rate].append(result)
            time.sleep(1)
        if sum(run.held for run in results[rate]) * 2 <= options.runs:
            stepping = False
    held = [rate for rate, runs in results.items() if sum(r.held for r in runs) * 2 > len(runs)]
    at_goal = results.get(GOAL_RATE, [])
    if at_goal:
        p99 = median([run.delivery_p99 for run in at_goal])
        goal_held = sum(run.held for run in at_goal) * 2 > len(at_goal)
        delivered = sum(run.received for run in at_goal)
        sent = sum(run.sent_ok for run in at_goal)
        attempted = sent + sum(run.failed + run.dropped for run in at_goal)
        stage.goals.append(
            f"| Delivery p99 < {GOAL_P99_MS:.0f} ms at {GOAL_RATE} messages/s (sender on A, "
            f"receivers on B) | at {GOAL_RATE}/s: p99 {fmt(p99)} ms (median of runs), "
            f"{sent:,} of {attempted:,} sends succeeded, {delivered:,} delivered live; "
            f"highest rate held: {max(held) if held else 'none'}/s | "
            f"{'**yes**' if goal_held and p99 < GOAL_P99_MS else '**no**'} |"
        )
    return render_latency(results, options)


def render_latency(results: dict[int, list[LatencyRun]], options: Options) -> list[str]:
    lines = [
        "### Delivery latency: sendMessage on A to the subscriber's socket on B",
        "",
        f"{options.pairs} one-to-one threads (each started with one message before measuring); "
        "every receiver's socket on B is subscribed to `messageEvents` and "
        "`notificationEvents`. k6 `constant-arrival-rate` sends through A for "
        f"{options.duration} s per run, {options.runs} runs per rate after one warm-up run; "
        "message i goes to thread i mod "
        f"{options.pairs}, so each thread gets rate/{options.pairs} messages per second. "
        "Latency = the receiver's `Date.now()` when the `next` frame arrives minus the "
        "sender's `Date.now()` just before the mutation was sent (one k6 process, one clock, "
        "millisecond resolution): it includes the HTTP request, the transaction, the "
        "publish, Valkey, B's delivery and the socket. Held = no failed send, no dropped "
        "iteration, every sent message delivered live, p99 < 1 s in a majority of runs; "
        f"stepping stops after the first rate not held, except that {GOAL_RATE}/s is always "
        "measured. CPU: user+system of each process per second of sending (100% = one core).",
        "",
        "| Rate msg/s | Delivered live / sent (runs) | Failed | Dropped | Delivery p50 ms | "
        "Delivery p99 ms | p99 of runs | Max ms | sendMessage p50 / p99 ms | CPU A (send) | "
        "CPU B (sockets) | Held (runs) |",
        "|--:|---|--:|--:|--:|--:|---|--:|---|--:|--:|---|",
    ]
    for rate, runs in results.items():
        held = sum(run.held for run in runs)
        lines.append(
            f"| {rate} | "
            + ", ".join(f"{run.received:,}/{run.sent_ok:,}" for run in runs)
            + f" | {sum(run.failed for run in runs)} | {sum(run.dropped for run in runs)} | "
            f"{fmt(median([run.delivery_p50 for run in runs]))} | "
            f"{fmt(median([run.delivery_p99 for run in runs]))} | "
            + ", ".join(fmt(run.delivery_p99, 0) for run in runs)
            + f" | {fmt(max(run.delivery_max for run in runs), 0)} | "
            f"{fmt(median([run.send_p50 for run in runs]))} / "
            f"{fmt(median([run.send_p99 for run in runs]))} | "
            f"{median([run.cpu_sender for run in runs]):.0%} | "
            f"{median([run.cpu_receiver for run in runs]):.0%} | "
            f"{'yes' if held * 2 > len(runs) else 'no'} ({held}/{len(runs)}) |"
        )
    held_rates = [
        rate for rate, runs in results.items() if sum(run.held for run in runs) * 2 > len(runs)
    ]
    fast_rates = [
        rate
        for rate, runs in results.items()
        if sum(run.held for run in runs) * 2 > len(runs)
        and median([run.delivery_p99 for run in runs]) < GOAL_P99_MS
    ]
    lines += [
        "",
        f"Highest rate held: {max(held_rates) if held_rates else 'none'} msg/s; highest with "
        f"a median p99 under {GOAL_P99_MS:.0f} ms: {max(fast_rates) if fast_rates else 'none'} "
        "msg/s. Messages delivered twice on a socket: "
        f"{sum(run.received_twice for runs in results.values() for run in runs)}; sockets "
        f"closed by the server: {sum(run.closed_early for rs in results.values() for run in rs)}.",
    ]
    samples = [sample for runs in results.values() for run in runs for sample in run.samples]
    if samples:
        lines += ["", "Failure samples:", "", *[f"    {sample}" for sample in samples[:3]]]
    return lines


# --- part: loss ----------------------------------------------------------------------------


def stored_messages(env: BenchEnv, prefix: str) -> dict[int, list[tuple[int, str]]]:
    """Every stored message whose text starts with ``prefix``, by receiver index (the
    text's second word): (seq, text), the truth to compare with."""
    found: dict[int, list[tuple[int, str]]] = {}
    for dsn in env.servers.database_urls:
        with psycopg.connect(dsn, autocommit=True) as connection:
            schemas = connection.execute(
                "SELECT schemaname FROM pg_tables WHERE schemaname LIKE 'shard_%' "
                "AND tablename = 'messages'"
            ).fetchall()
            for (schema,) in schemas:
                rows = connection.execute(
                    f'SELECT seq, body FROM "{schema}".messages WHERE body LIKE %s',
                    (f"{prefix} %",),
                ).fetchall()
                for seq, body in rows:
                    found.setdefault(int(body.split()[1]), []).append((int(seq), str(body)))
    return found


@dataclass(frozen=True)
class LossRun:
    receivers: int
    reconnects: int
    stored: int
    sent_ok: int
    failed_sends: int
    missing: int
    unexpected: int
    stored_twice: int
    shown_twice: int
    live: int
    caught_up: int
    overlap: int
    live_twice: int
    out_of_order: int
    jumps: int
    gaps: int
    catch_ups: int
    catch_up_p50: float
    catch_up_p99: float
    seconds: float
    cpu_receiver: float
    missing_samples: list[str]
    samples: list[str]


def one_loss_run(
    env: BenchEnv, options: Options, sender: Child, receiver: Child, data: Path, run: int
) -> LossRun:
    cycles = -(-options.reconnects // options.loss_receivers)
    # Mean socket lifetime so that the cycles roughly fill the sending time.
    hold_ms = max(100.0, options.loss_seconds * 1000 / cycles - 350)
    cpu_b = receiver.cpu_seconds()
    started = time.monotonic()
    k6 = start_sockets_k6(
        "realtime_loss",
        env.work_dir,
        options.loss_receivers * 2,
        TARGET=receiver.url,
        SENDER=sender.url,
        DATA=data,
        RATE=options.loss_rate,
        SEND_SECONDS=options.loss_seconds,
        WARM=3,
        CYCLES=cycles,
        HOLD_MS=f"{hold_ms:.0f}",
        DRAIN=3,
        TIMEOUT="5s",
    )
    summary = k6.finish(timeout=options.loss_seconds + cycles * 5 + 180)
    lines = k6.console_lines()
    seconds = time.monotonic() - started
    cpu = (receiver.cpu_seconds() - cpu_b) / seconds
    truth = stored_messages(env, "loss")
    views = [json.loads(line) for line in lines if line.startswith("{")]
    missing = unexpected = stored_twice = shown_twice = 0
    missing_samples: list[str] = []
    for index in range(options.loss_receivers):
        stored = truth.get(index, [])
        texts = Counter(text for _, text in stored)
        stored_twice += sum(count - 1 for count in texts.values())
        view = next((view for view in views if view["receiver"] == index), None)
        if view is None:
            missing += len(stored)
            missing_samples.append(f"receiver {index} reported nothing")
            continue
        seen = {(int(seq), str(text)) for seq, text in view["seen"]}
        shown = Counter(text for _, text in seen)
        shown_twice += sum(count - 1 for count in shown.values())
        lost = sorted(set(stored) - seen)
        missing += len(lost)
        unexpected += len(seen - set(stored))
        missing_samples += [f"receiver {index}: seq {seq} {text!r}" for seq, text in lost[:2]]
    total = sum(len(rows) for rows in truth.values())

    def view_sum(key: str) -> int:
        return sum(int(view[key]) for view in views)

    sent_ok = summary.count("sent_ok")
    return LossRun(
        receivers=len(views),
        reconnects=summary.count("reconnects"),
        stored=total,
        sent_ok=sent_ok,
        failed_sends=round(
            summary.stat("failed_sends", "rate")
            * (summary.stat("failed_sends", "passes") + summary.stat("failed_sends", "fails"))
        ),
        missing=missing,
        unexpected=unexpected,
        stored_twice=stored_twice,
        shown_twice=shown_twice,
        live=view_sum("live"),
        caught_up=view_sum("caughtUp"),
        overlap=view_sum("overlap"),
        live_twice=view_sum("liveTwice"),
        out_of_order=view_sum("outOfOrder"),
        jumps=view_sum("jumps"),
        gaps=view_sum("gaps"),
        catch_ups=summary.count("catch_ups"),
        catch_up_p50=summary.stat("catch_up_ms", "med"),
        catch_up_p99=summary.stat("catch_up_ms", "p(99)"),
        seconds=seconds,
        cpu_receiver=cpu,
        missing_samples=missing_samples[:5],
        samples=failure_samples(lines),
    )


def run_loss(stage: Stage, receiver: Child) -> list[str]:
    env, options, sender = stage.env, stage.options, stage.sender
    data = pair_data(
        stage,
        "loss",
        stage.accounts.loss_senders,
        stage.accounts.loss_receivers,
        "loss {index} first",
    )
    runs: list[LossRun] = []
    for run in range(1, options.loss_runs + 1):
        result = one_loss_run(env, options, sender, receiver, data, run)
        log(
            f"loss run {run}: {result.reconnects} reconnects, {result.stored} stored so far, "
            f"missing {result.missing}, stored twice {result.stored_twice}, shown twice "
            f"{result.shown_twice}, live {result.live}, caught up {result.caught_up}, "
            f"overlap {result.overlap}"
        )
        runs.append(result)
    missing = sum(run.missing for run in runs)
    twice = sum(run.shown_twice + run.stored_twice for run in runs)
    reconnects = sum(run.reconnects for run in runs)
    stage.goals.append(
        f"| 0 missing, 0 duplicated over {options.reconnects:,} forced reconnects while "
        f"messages flow | {reconnects:,} reconnects: {missing} missing, {twice} shown or "
        f"stored twice | {'**yes**' if missing == twice == 0 and reconnects >= options.reconnects else '**no**'} |"  # noqa: E501
    )
    return render_loss(runs, options)


def render_loss(runs: Sequence[LossRun], options: Options) -> list[str]:
    cycles = -(-options.reconnects // options.loss_receivers)
    lines = [
        "### Loss: forced reconnects while messages flow",
        "",
        f"{options.loss_receivers} receivers on B, one one-to-one thread each; k6 sends "
        f"{options.loss_rate} messages/s through A for {options.loss_seconds} s per run "
        f"(message i into thread i mod {options.loss_receivers}). Each receiver, {cycles} times "
        "per run: connect, subscribe to its thread's `messageEvents`, wait for its first `GAP` "
        "(live), catch up "
        'over HTTP (on B) with `messages(threadId:, first: 100, after: "<last seq seen>")` '
        "page by page, keep the socket for a random time, close it, stay away 50-300 ms. A "
        "`GAP` event triggers a catch-up too. After the sending it connects once more, "
        "catches up and waits 3 s. What it shows is keyed by seq (so what arrives both live "
        "and in a catch-up is shown once: *overlap*); that view is compared with the rows in "
        "PostgreSQL (every message of its thread, run after run, so later runs check earlier "
        f"runs' messages again). {options.loss_runs} run(s).",
        "",
        "| Run | Forced reconnects | Messages stored (cumulative) | Sent ok this run | Failed "
        "sends | **Missing** | **Shown twice** | Stored twice | Live | Caught up | Overlap "
        "(deduplicated) | Same seq twice on one socket | Out of order | Skipped live | GAP "
        "events | Catch-up p50 / p99 ms | CPU B |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for index, run in enumerate(runs, 1):
        lines.append(
            f"| {index} | {run.reconnects:,} | {run.stored:,} | {run.sent_ok:,} | "
            f"{run.failed_sends} | {run.missing} | {run.shown_twice} | {run.stored_twice} | "
            f"{run.live:,} | {run.caught_up:,} | {run.overlap:,} | {run.live_twice} | "
            f"{run.out_of_order} | {run.jumps} | {run.gaps} | {fmt(run.catch_up_p50)} / "
            f"{fmt(run.catch_up_p99)} | {run.cpu_receiver:.0%} |"
        )
    misses = [sample for run in runs for sample in run.missing_samples][:5]
    if misses:
        lines += ["", "Missing, for example:", "", *[f"    {sample}" for sample in misses]]
    samples = [sample for run in runs for sample in run.samples][:3]
    if samples:
        lines += ["", "Failure samples:", "", *[f"    {sample}" for sample in samples]]
    return lines


# --- driver --------------------------------------------------------------------------------


def run(options: Options, command: str) -> None:
    started = time.perf_counter()
    sections: list[str] = []
    load_before = Path("/proc/loadavg").read_text().split()[0]
    loads: list[float] = []
    sampling = threading.Event()

    def sample_load() -> None:  # the machine is shared: how busy was it meanwhile?
        while not sampling.wait(5):
            loads.append(float(Path("/proc/loadavg").read_text().split()[0]))

    threading.Thread(target=sample_load, daemon=True).start()
    with embedded_platform("realtime", logs="realtime-logs") as env:
        accounts = asyncio.run(seed_accounts(env, options))
        log(f"accounts and tokens in {accounts.seed_seconds:.1f} s")
        sections += [
            "",
            f"Seeded {sum(map(len, [accounts.sockets, accounts.latency_senders, accounts.latency_receivers, accounts.loss_senders, accounts.loss_receivers])) + 1:,} "  # noqa: E501
            f"accounts with a session each in {accounts.seed_seconds:.0f} s. Server A "
            "(HTTP, `sendMessage`) and server B (websockets) are one uvicorn process each "
            "(`uvicorn aperture.web:app_from_environment --factory --backlog 4096`, "
            "`APERTURE_SERVE_RUNS_WORKERS=false`, rate limits on with buckets nothing can "
            "empty), from a copy of the code taken at start.",
        ]
        stage = Stage(env, options, accounts, sender=start_uvicorn(env, "A", sockets=0))
        try:
            if "connections" in options.parts:
                log("part connections")
                sections += ["", *run_connections(stage)]
            if {"latency", "loss"} & set(options.parts):
                receiver = start_uvicorn(
                    env, "B", sockets=options.pairs + options.loss_receivers * 2
                )
                try:
                    if "latency" in options.parts:
                        log("part latency")
                        sections += ["", *run_latency(stage, receiver)]
                    if "loss" in options.parts:
                        log("part loss")
                        sections += ["", *run_loss(stage, receiver)]
                finally:
                    receiver.stop()
        finally:
            stage.sender.stop()
    sampling.set()
    load = (
        f"1-minute load average {load_before} before, "
        f"{Path('/proc/loadavg').read_text().split()[0]} at the end, median "
        f"{median(loads):.2f} (max {max(loads, default=float('nan')):.2f}) sampled every 5 s "
        "during the run (2 cores)"
    )
    path = RESULTS_PATH.with_name(f"realtime-{options.tag}.md") if options.tag else RESULTS_PATH
    write_report(
        path,
        [
            run_line(command, seconds=time.perf_counter() - started, code=env.code, load=load),
            "",
            *describe_machine(load_generator="k6"),
            *sections,
            "",
            "### Goals",
            "",
            "| Goal | Measured | Met? |",
            "|---|---|---|",
            *stage.goals,
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--runs", type=int, default=3, help="runs per latency rate")
    parser.add_argument("--duration", type=int, default=10, help="seconds per latency run")
    parser.add_argument("--connections", type=int, default=GOAL_CONNECTIONS)
    parser.add_argument("--connection-runs", type=int, default=2)
    parser.add_argument("--ramp-rate", type=int, default=100, help="sockets opened per second")
    parser.add_argument("--per-vu", type=int, default=100, help="sockets per k6 VU")
    parser.add_argument("--hold", type=int, default=20, help="idle seconds measured")
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--rates", default="10,20,50,100,200,500")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--reconnects", type=int, default=1000)
    parser.add_argument("--loss-receivers", type=int, default=50)
    parser.add_argument("--loss-rate", type=int, default=10)
    parser.add_argument("--loss-seconds", type=int, default=60)
    parser.add_argument("--loss-runs", type=int, default=1)
    parser.add_argument(
        "--ws-ping-interval",
        type=float,
        default=WS_PING_INTERVAL_SECONDS,
        help="uvicorn's websocket keepalive ping interval for the connections part's server "
        f"(default: {WS_PING_INTERVAL_SECONDS:g} s, as `aperture serve`; 0 turns the pings off)",
    )
    parser.add_argument("--tag", default="", help="write bench/results/realtime-TAG.md instead")
    arguments = parser.parse_args(argv)
    options = Options(
        parts=parse_parts(parser, arguments.parts, PARTS),
        runs=arguments.runs,
        duration=arguments.duration,
        connections=arguments.connections,
        connection_runs=arguments.connection_runs,
        ramp_rate=arguments.ramp_rate,
        per_vu=arguments.per_vu,
        hold=arguments.hold,
        sample=arguments.sample,
        rates=integers(arguments.rates),
        pairs=arguments.pairs,
        reconnects=arguments.reconnects,
        loss_receivers=arguments.loss_receivers,
        loss_rate=arguments.loss_rate,
        loss_seconds=arguments.loss_seconds,
        loss_runs=arguments.loss_runs,
        ws_ping_interval=arguments.ws_ping_interval,
        tag=arguments.tag,
    )
    run(options, command_line("bench.realtime", sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
