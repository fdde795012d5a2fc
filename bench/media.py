"""Media benchmark (issue 10), end to end against ``aperture serve`` and ``aperture worker``
subprocesses on embedded PostgreSQL, Valkey and SeaweedFS, driven by k6 at fixed arrival
rates (``constant-arrival-rate``):

* ``upload``: a photo's whole path as a client takes it (``bench/k6/media_upload.js``):
  ``createUpload``, the presigned multipart POST straight to SeaweedFS,
  ``finalizeUpload``, then ``media(id)`` polled every 50 ms until READY. Two photos: a
  12-megapixel camera JPEG (4000x3000), and the 1080x1350 JPEG that Instagram's app
  sends after resizing on the phone. The web server runs no jobs; one ``aperture
  worker`` processes uploads, and the peak RSS (``VmHWM``) of it and of each of its
  decoder processes is read from /proc.
* ``reads``: 500 accounts followed by every viewer, 100 of them with 1 to 3 live stories,
  every post carrying seeded media (``aperture.seed.seed_media``). In the same server and
  the same run, interleaved run by run (``bench/k6/media_reads.js``): the warm
  ``homeFeed(first: 20)`` of ``bench.read_path`` (the baseline), the same page with
  every media item's size, placeholder and 640 px URL and the authors' avatars, and
  ``storiesTray(first: 20)`` with three stories per account. Server CPU per request is
  the serve process's user+system CPU from /proc over the run, divided by the requests
  it answered.

The report is printed and written to ``bench/results/media.md``.

    .venv/bin/python -m bench.media [--parts upload,reads] [--runs 3] [--duration 20]
        [--feed-rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aperture.seed import Graph, load_graph, seed_media
from bench.edge import LIMITED, SERVER_SETTINGS
from bench.feed_common import (
    FEED_QUERY_20,
    BenchEnv,
    Child,
    K6Result,
    describe_machine,
    fmt,
    k6_command,
    log,
    make_tokens,
    mark_active,
    median,
    progress_printer,
    reset_data,
    run_k6,
    snapshot_code,
    start_api_server,
    start_worker,
    warm_feeds,
)
from bench.media_ceiling import FEED_MEDIA_QUERY, media_ceiling_schema
from bench.read_path import ceiling_round, ceiling_schema
from db.runtime import Runtime, check_reachable, shard_map_for, start_servers
from db.session import ShardSessions
from domain.media.jobs import MEDIA_QUEUE
from domain.media.processing import generate_demo_image
from domain.state import AppState
from infra.settings import Settings
from migrations.runner import migrate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_PATH = RESULTS_DIR / "media.md"
PARTS = ("upload", "reads")
PHOTOS = {"12 MP camera JPEG (4000x3000)": (4000, 3000), "phone upload (1080x1350)": (1080, 1350)}
UPLOAD_POINTS = (  # (photo, uploads per second)
    ("phone upload (1080x1350)", 4),
    ("12 MP camera JPEG (4000x3000)", 2),
    ("12 MP camera JPEG (4000x3000)", 4),
    ("12 MP camera JPEG (4000x3000)", 6),
)
READ_KINDS = ("feed", "feed_media", "tray")
TRAY_RATE = 20  # requests per second; the feed's rate is --feed-rate (both feed kinds)
TRAY_QUERY = (
    "query { storiesTray(first: 20) { pageInfo { hasNextPage endCursor } edges { node { "
    "user { username avatar { url(width: 320) } } hasUnseen unseenCount storyCount "
    "stories(first: 3) { id createdAt viewerHasSeen media { aspectRatio placeholder "
    "url(width: 640) } } } } } }"
)
# What a client lays a post out with: every media item's size, placeholder and the
# rendition for a 640 px wide screen, and the author's avatar.
READ_QUERIES = {"feed": FEED_QUERY_20, "feed_media": FEED_MEDIA_QUERY, "tray": TRAY_QUERY}
CEILING_REQUESTS = 1000
FOLLOWED = 500
LIVE = 100
VIEWERS = 100
SERVE_SETTINGS = {**SERVER_SETTINGS[LIMITED], "APERTURE_SERVE_RUNS_WORKERS": "false"}


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...]
    runs: int
    duration: int
    feed_rate: int

    @property
    def read_rates(self) -> dict[str, int]:
        return {"feed": self.feed_rate, "feed_media": self.feed_rate, "tray": TRAY_RATE}


# --- upload to ready ----------------------------------------------------------------------


@dataclass(frozen=True)
class UploadRun:
    photo: str
    rate: int
    iterations: int
    ready: int
    failed: int
    dropped: int
    p50_ms: float
    p99_ms: float
    processing_p50_ms: float
    processing_p99_ms: float
    storage_p50_ms: float
    polls_per_upload: float
    worker_peak: WorkerMemory
    failure_samples: list[str]


def memory_kib(child: Child, field: str) -> dict[int, int]:
    """``field`` (VmHWM, VmRSS) of ``child`` and of every process under it, by pid: the
    worker itself and its decoder processes (which run in sessions of their own)."""
    parents: dict[int, int] = {}
    values: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            stat = (status.parent / "stat").read_text().rsplit(")", 1)[1].split()
            pid = int(status.parent.name)
            parents[pid] = int(stat[1])
            for line in status.read_text().splitlines():
                if line.startswith(f"{field}:"):
                    values[pid] = int(line.split()[1])
        except OSError:
            continue

    def under_child(pid: int) -> bool:
        while pid > 1:
            if pid == child.process.pid:
                return True
            pid = parents.get(pid, 0)
        return False

    return {pid: value for pid, value in values.items() if under_child(pid)}


@dataclass(frozen=True)
class WorkerMemory:
    """MiB: the job runner (the ``aperture worker`` process) and its decoder processes."""

    runner: float
    decoders: list[float]

    @classmethod
    def read(cls, worker: Child, field: str) -> WorkerMemory:
        by_pid = memory_kib(worker, field)
        runner = by_pid.pop(worker.process.pid, 0)
        return cls(runner / 1024, sorted((kib / 1024 for kib in by_pid.values()), reverse=True))

    def describe(self) -> str:
        decoders = ", ".join(f"{mib:.0f}" for mib in self.decoders) or "none"
        return (
            f"job runner {self.runner:.0f} MiB; decoder processes {decoders} MiB; all "
            f"together {self.runner + sum(self.decoders):.0f} MiB"
        )


def wait_until_idle(worker: Child, *, limit_s: float = 180) -> None:
    """Until the worker has used under 2% of a core for a second: a run that left a
    backlog (or what k6's gracefulStop cut off) must not slow the next one."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = worker.cpu_seconds()
        time.sleep(1)
        if worker.cpu_seconds() - before < 0.02:
            return
    raise RuntimeError(f"the worker was still busy {limit_s:.0f} s after a run")


def _trend(summary: dict[str, Any], name: str) -> dict[str, float]:
    metric = summary.get("metrics", {}).get(name)
    values: dict[str, float] = metric["values"] if metric else {}
    return values


def run_upload_point(
    *, server: Child, worker: Child, data: Path, photo: Path, label: str, rate: int, duration: int
) -> UploadRun:
    summary_path = data.parent / f"k6-upload-{rate}-{time.monotonic_ns()}.json"
    output_path = summary_path.with_suffix(".log")
    command = k6_command(
        "media_upload",
        TARGET=server.url,
        DATA=data,
        PHOTO=photo,
        RATE=rate,
        DURATION=duration,
        PRE_VUS=max(10, rate * 3),
        MAX_VUS=max(40, rate * 20),
        SUMMARY=summary_path,
    )
    with output_path.open("wb") as output:
        subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=duration + 180)
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    ready = _trend(summary, "latency_ready")
    processing = _trend(summary, "latency_processing")
    failed = _trend(summary, "failed_requests")
    checked = int(failed.get("passes", 0) + failed.get("fails", 0))
    completed = int(ready.get("count", 0))
    polls = _trend(summary, "status_polls").get("count", 0.0)
    return UploadRun(
        photo=label,
        rate=rate,
        iterations=int(_trend(summary, "iterations").get("count", 0)),
        ready=completed,
        failed=checked - completed,
        dropped=int(_trend(summary, "dropped_iterations").get("count", 0)),
        p50_ms=float(ready.get("med", float("nan"))),
        p99_ms=float(ready.get("p(99)", float("nan"))),
        processing_p50_ms=float(processing.get("med", float("nan"))),
        processing_p99_ms=float(processing.get("p(99)", float("nan"))),
        storage_p50_ms=float(_trend(summary, "latency_storage").get("med", float("nan"))),
        polls_per_upload=polls / max(checked, 1),
        worker_peak=WorkerMemory.read(worker, "VmHWM"),
        failure_samples=[
            line.strip() for line in output_path.read_text().splitlines() if "FAILED" in line
        ][:3],
    )


async def upload_tokens(env: BenchEnv, count: int) -> list[str]:
    runtime = Runtime.connect(env.settings, env.servers)
    try:
        graph = Graph(users=count, edges=[])
        user_ids = await load_graph(ShardSessions(runtime.databases), graph, posts_per_user=0)
        return await make_tokens(AppState(runtime), user_ids)
    finally:
        await runtime.close()


def run_uploads(env: BenchEnv, options: Options) -> list[str]:
    reset_data(env.servers)
    tokens = asyncio.run(upload_tokens(env, 50))
    data = env.work_dir / "upload-tokens.json"
    data.write_text(json.dumps({"tokens": tokens}))
    photos: dict[str, Path] = {}
    for index, (label, (width, height)) in enumerate(PHOTOS.items()):
        photos[label] = env.work_dir / f"photo-{index}.jpg"
        photos[label].write_bytes(generate_demo_image(seed=11 + index, width=width, height=height))
    server = start_api_server(
        env.settings, env.servers, env.code, SERVE_SETTINGS, env.work_dir / "serve-upload.log"
    )
    worker = start_worker(
        env.settings,
        env.servers,
        env.code,
        {},
        env.work_dir / "worker-upload.log",
        # A media worker, as deployed: one that also ran Explore's training would carry
        # numpy, scipy and implicit (about 55 MiB more) from its first retrain on.
        queues=[MEDIA_QUEUE],
    )
    try:
        idle = WorkerMemory.read(worker, "VmRSS")
        runs: list[UploadRun] = []
        for round_index in range(options.runs):
            points = UPLOAD_POINTS if round_index % 2 == 0 else UPLOAD_POINTS[::-1]
            for label, rate in points:
                log(f"upload: {label} at {rate}/s, run {round_index + 1}")
                result = run_upload_point(
                    server=server,
                    worker=worker,
                    data=data,
                    photo=photos[label],
                    label=label,
                    rate=rate,
                    duration=options.duration,
                )
                log(
                    f"  ready {result.ready}/{result.iterations}, dropped {result.dropped}, "
                    f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms"
                )
                runs.append(result)
                wait_until_idle(worker)
        peak = WorkerMemory.read(worker, "VmHWM")
    finally:
        worker.stop()
        server.stop()
    sizes = {label: path.stat().st_size for label, path in photos.items()}
    return render_uploads(runs, options, idle=idle, peak=peak, sizes=sizes)


def render_uploads(
    runs: Sequence[UploadRun],
    options: Options,
    *,
    idle: WorkerMemory,
    peak: WorkerMemory,
    sizes: dict[str, int],
) -> list[str]:
    lines = [
        "### Upload to ready",
        "",
        f"k6 `constant-arrival-rate` for {options.duration} s per run, {options.runs} runs per "
        "point, interleaved, each run starting once the worker is idle; one web process (no "
        "jobs) and one `aperture worker --queue media`. Latency: "
        "createUpload sent to READY seen (p50 / p99 of each run); processing: finalizeUpload "
        "sent to READY. Photos: "
        + ", ".join(f"{label} {size / 1e6:.2f} MB" for label, size in sizes.items())
        + ".",
        "",
        "| Photo | Uploads/s | Ready / started (runs) | Dropped | p50 ms (runs) | "
        "p99 ms (runs) | Processing p50 / p99 ms (medians) | Storage POST p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, rate in UPLOAD_POINTS:
        point = [run for run in runs if run.photo == label and run.rate == rate]
        if not point:
            continue
        lines.append(
            f"| {label} | {rate} | "
            + ", ".join(f"{run.ready}/{run.iterations}" for run in point)
            + f" | {sum(run.dropped for run in point)} | "
            + ", ".join(fmt(run.p50_ms, 0) for run in point)
            + " | "
            + ", ".join(fmt(run.p99_ms, 0) for run in point)
            + f" | {fmt(median([r.processing_p50_ms for r in point]), 0)} / "
            f"{fmt(median([r.processing_p99_ms for r in point]), 0)} | "
            f"{fmt(median([r.storage_p50_ms for r in point]), 0)} |"
        )
    lines += [
        "",
        f"Worker memory, resident once ready (`VmRSS`): {idle.describe()}.",
        "",
        f"Peak of each process over every run above (`VmHWM`; the sum is an upper bound, "
        f"the peaks need not coincide): {peak.describe()}.",
    ]
    samples = [sample for run in runs for sample in run.failure_samples][:3]
    if samples:
        lines += ["", "Failure samples:", "", *[f"    {sample[:300]}" for sample in samples]]
    return lines


# --- the feed with media, and the stories tray --------------------------------------------


async def reads_data(env: BenchEnv) -> list[str]:
    """``FOLLOWED`` authors (two posts each, with media), ``LIVE`` of them with stories,
    and ``VIEWERS`` viewers who follow every author; returns the viewers' tokens."""
    runtime = Runtime.connect(env.settings, env.servers)
    try:
        sessions = ShardSessions(runtime.databases)
        edges = [
            (viewer, author)
            for viewer in range(FOLLOWED, FOLLOWED + VIEWERS)
            for author in range(FOLLOWED)
        ]
        graph = Graph(users=FOLLOWED + VIEWERS, edges=edges)
        user_ids = await load_graph(
            sessions, graph, posts_per_user=2, progress=progress_printer("reads graph")
        )
        report = await seed_media(
            sessions,
            runtime.object_store,
            graph,
            user_ids,
            story_authors=set(user_ids[:LIVE]),
            progress=progress_printer("reads media"),
        )
        log(f"reads media: {report}")
        viewers = user_ids[FOLLOWED:]
        await mark_active(runtime, user_ids)
        return await make_tokens(AppState(runtime), viewers)
    finally:
        await runtime.close()


def run_reads(env: BenchEnv, options: Options) -> list[str]:
    reset_data(env.servers)
    tokens = asyncio.run(reads_data(env))
    data = env.work_dir / "reads-tokens.json"
    data.write_text(json.dumps({"tokens": tokens}))
    server = start_api_server(
        env.settings, env.servers, env.code, SERVE_SETTINGS, env.work_dir / "serve-reads.log"
    )
    try:
        warm = asyncio.run(warm_feeds(server.url, tokens, FEED_QUERY_20))
        if warm.errors:
            raise RuntimeError(f"warm pass failed: {warm.errors[:3]}")
        ceilings = {
            "feed": (ceiling_schema(validation_cache=True), FEED_QUERY_20),
            "feed_media": (
                media_ceiling_schema(sample_page(server.url, tokens[0])),
                FEED_MEDIA_QUERY,
            ),
        }
        ceiling_ms: dict[str, list[float]] = {kind: [] for kind in ceilings}
        results: dict[str, list[K6Result]] = {kind: [] for kind in READ_KINDS}
        for round_index in range(options.runs + 1):  # the first round warms every kind
            kinds = READ_KINDS if round_index % 2 == 0 else READ_KINDS[::-1]
            for kind in kinds:
                result = run_k6(
                    "media_reads",
                    target=server,
                    data=data,
                    rate=options.read_rates[kind],
                    duration_s=options.duration if round_index else 5,
                    work_dir=env.work_dir,
                    kinds=["all"],
                    extra={"KIND": kind, "QUERY": READ_QUERIES[kind]},
                )
                log(
                    f"reads: {kind} run {round_index}: p50 {result.latency['all'][0]:.1f} ms, "
                    f"p99 {result.latency['all'][1]:.1f} ms, failed {result.failed}"
                )
                if round_index:
                    results[kind].append(result)
            if round_index:
                for kind, (schema, query) in ceilings.items():
                    measured = ceiling_round(
                        schema, CEILING_REQUESTS, f"{kind}, round {round_index}", query=query
                    )
                    ceiling_ms[kind].append(measured.cpu_ms)
    finally:
        server.stop()
    return render_reads(results, ceiling_ms, options)


def sample_page(url: str, token: str) -> dict[str, Any]:
    """One real answer to the feed-with-media document: the ceiling's values."""
    response = httpx.post(
        f"{url}/graphql",
        json={"query": FEED_MEDIA_QUERY},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    page: dict[str, Any] = response.json()
    if page.get("errors") or not page.get("data"):
        raise RuntimeError(f"the sample feed page failed: {response.text[:500]}")
    return page


def cpu_ms_per_request(result: K6Result) -> float:
    answered = result.requests - result.failed
    return result.server_cpu * result.run_seconds * 1000 / answered if answered else float("nan")


def render_reads(
    results: dict[str, list[K6Result]], ceiling_ms: dict[str, list[float]], options: Options
) -> list[str]:
    names = {
        "feed": "`homeFeed(first: 20)`, no media fields (baseline)",
        "feed_media": "the same page with media fields and avatars",
        "tray": "`storiesTray(first: 20)`, 3 stories each",
    }
    lines = [
        "### The feed with media, and the stories tray",
        "",
        f"{VIEWERS} viewers, each following the same {FOLLOWED} accounts (two posts each, all "
        f"with seeded media: single photos, carousels, reels); {LIVE} of the accounts have 1 "
        f"to 3 live stories. One web process; k6 at "
        + ", ".join(f"{rate} req/s for `{kind}`" for kind, rate in options.read_rates.items())
        + f", {options.duration} s per run, {options.runs} runs per kind, interleaved, after a "
        "5 s warm-up run of each.",
        "",
        "| Read | p50 ms (runs) | p99 ms (runs) | Failed | Server CPU ms/request (runs) |",
        "|---|---|---|---|---|",
    ]
    for kind in READ_KINDS:
        runs = results[kind]
        lines.append(
            f"| {names[kind]} | "
            + ", ".join(fmt(run.latency["all"][0]) for run in runs)
            + " | "
            + ", ".join(fmt(run.latency["all"][1]) for run in runs)
            + f" | {sum(run.failed + run.dropped for run in runs)} | "
            + ", ".join(fmt(cpu_ms_per_request(run), 2) for run in runs)
            + " |"
        )
    baseline = median([cpu_ms_per_request(run) for run in results["feed"]])
    with_media = median([cpu_ms_per_request(run) for run in results["feed_media"]])
    lines += [
        "",
        f"Median CPU per page: {baseline:.2f} ms without media fields, {with_media:.2f} ms "
        f"with them ({with_media / baseline:.2f}x).",
        "",
        "Against the in-memory ceiling of each shape, measured after every round in the "
        f"benchmark's own process ({CEILING_REQUESTS} executions of stock Strawberry with its "
        "parser and validation caches over the same values in memory, `bench/media_ceiling.py`"
        "): the read-path budget of issue 9 is at most 3 ms and at most 3x the ceiling.",
        "",
        "| Read | Ceiling CPU ms/request (rounds) | Server CPU ms/request (median) | Ratio |",
        "|---|---|--:|--:|",
    ]
    for kind, served in (("feed", baseline), ("feed_media", with_media)):
        ceiling = median(ceiling_ms[kind])
        lines.append(
            f"| {names[kind]} | "
            + ", ".join(f"{value:.2f}" for value in ceiling_ms[kind])
            + f" | {served:.2f} | {served / ceiling:.1f}x |"
        )
    return lines


# --- driver ---------------------------------------------------------------------------------


def run(options: Options, command: str) -> None:
    started = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(prefix="apt-media-"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    try:
        settings = Settings(data_dir=data_dir, database_urls=[], redis_url=None)
        servers = start_servers(settings, postgres_cleanup="delete")
        try:
            check_reachable(servers, settings)
            code = snapshot_code(data_dir / "code")
            migrate(shard_map_for(settings, servers))
            work_dir = data_dir / "work"
            work_dir.mkdir()
            env = BenchEnv(settings=settings, servers=servers, code=code, work_dir=work_dir)
            log(f"servers up in {time.perf_counter() - started:.1f}s; code: {code.description}")
            for part in options.parts:
                log(f"part {part}")
                lines = run_uploads(env, options) if part == "upload" else run_reads(env, options)
                sections += ["", *lines]
                for path in work_dir.glob("*.log"):
                    logs = RESULTS_DIR / "media-logs"
                    logs.mkdir(exist_ok=True)
                    shutil.copy(path, logs / path.name)
        finally:
            servers.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = [
        f"_`{command}`, finished {when}, {time.perf_counter() - started:.0f} s; code: "
        f"{code.description}; load average {os.getloadavg()[0]:.2f} at the end._",
        "",
        *describe_machine(),
        *sections,
    ]
    RESULTS_PATH.write_text("\n".join(report) + "\n")
    print("\n".join(report))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument(
        "--feed-rate", type=int, default=200, help="req/s of both feed reads (the tray: 20)"
    )
    arguments = parser.parse_args(argv)
    parts = tuple(part for part in arguments.parts.split(",") if part)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    options = Options(
        parts=parts,
        runs=arguments.runs,
        duration=arguments.duration,
        feed_rate=arguments.feed_rate,
    )
    command = "python -m bench.media " + shlex.join(sys.argv[1:] if argv is None else argv)
    run(options, command.strip())


if __name__ == "__main__":
    main()
