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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aperture.seed import Graph, load_graph, seed_media
from bench.edge import LIMITED, SERVER_SETTINGS
from bench.harness import (
    FEED_QUERY_20,
    RESULTS_DIR,
    BenchEnv,
    Child,
    K6Result,
    Runs,
    alternating,
    ask_once,
    command_line,
    descendants,
    describe_machine,
    embedded_platform,
    fmt,
    log,
    log_run,
    make_tokens,
    mark_active,
    median,
    parse_parts,
    process_table,
    progress_printer,
    reset_data,
    run_k6,
    run_line,
    start_api_server,
    start_k6,
    start_worker,
    status_kib,
    warm_feeds,
    write_data,
    write_report,
)
from bench.media_ceiling import FEED_MEDIA_QUERY, media_ceiling_schema
from bench.read_path import ceiling_round, ceiling_schema
from db.session import ShardSessions
from domain.media.jobs import MEDIA_QUEUE
from domain.media.processing import generate_demo_image
from domain.state import AppState

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
    values: dict[int, int] = {}
    for pid in descendants([child.process.pid], process_table()):
        try:
            values[pid] = status_kib(pid, field)
        except (OSError, RuntimeError):  # gone, or a zombie
            continue
    return values


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


def run_upload_point(
    *, server: Child, worker: Child, data: Path, photo: Path, label: str, rate: int, duration: int
) -> UploadRun:
    k6 = start_k6(
        "media_upload",
        data.parent,
        {
            "TARGET": server.url,
            "DATA": data,
            "PHOTO": photo,
            "RATE": rate,
            "DURATION": duration,
            "PRE_VUS": max(10, rate * 3),
            "MAX_VUS": max(40, rate * 20),
        },
        name=f"upload-{rate}",
    )
    summary = k6.finish(timeout=duration + 180)
    checked = int(
        summary.stat("failed_requests", "passes") + summary.stat("failed_requests", "fails")
    )
    completed = summary.count("latency_ready")
    return UploadRun(
        photo=label,
        rate=rate,
        iterations=summary.count("iterations"),
        ready=completed,
        failed=checked - completed,
        dropped=summary.count("dropped_iterations"),
        p50_ms=summary.stat("latency_ready", "med"),
        p99_ms=summary.stat("latency_ready", "p(99)"),
        processing_p50_ms=summary.stat("latency_processing", "med"),
        processing_p99_ms=summary.stat("latency_processing", "p(99)"),
        storage_p50_ms=summary.stat("latency_storage", "med"),
        polls_per_upload=summary.stat("status_polls", "count") / max(checked, 1),
        worker_peak=WorkerMemory.read(worker, "VmHWM"),
        failure_samples=k6.failure_samples(3),
    )


async def upload_tokens(env: BenchEnv, count: int) -> list[str]:
    async with env.connect() as runtime:
        graph = Graph(users=count, edges=[])
        user_ids = await load_graph(ShardSessions(runtime.databases), graph, posts_per_user=0)
        return await make_tokens(AppState(runtime), user_ids)


def run_uploads(env: BenchEnv, options: Options) -> list[str]:
    reset_data(env.servers)
    tokens = asyncio.run(upload_tokens(env, 50))
    data = write_data(env.work_dir / "upload-tokens.json", tokens=tokens)
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
            for label, rate in alternating(UPLOAD_POINTS, round_index):
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
    async with env.connect() as runtime:
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


def run_reads(env: BenchEnv, options: Options) -> list[str]:
    reset_data(env.servers)
    tokens = asyncio.run(reads_data(env))
    data = write_data(env.work_dir / "reads-tokens.json", tokens=tokens)
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
            for kind in alternating(READ_KINDS, round_index):
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
                log_run(f"reads: {kind} run {round_index}", result)
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
    answer = ask_once(url, FEED_MEDIA_QUERY, token=token)
    if answer.data is None:
        raise RuntimeError(f"the sample feed page failed: {answer.text[:500]}")
    return answer.body


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
        runs = Runs(results[kind])
        lines.append(
            f"| {names[kind]} | "
            + ", ".join(fmt(value) for value in runs.p50s())
            + " | "
            + ", ".join(fmt(value) for value in runs.p99s())
            + f" | {runs.failed + runs.dropped} | "
            + ", ".join(fmt(value, 2) for value in runs.cpu_ms_per_answered())
            + " |"
        )
    baseline = median(Runs(results["feed"]).cpu_ms_per_answered())
    with_media = median(Runs(results["feed_media"]).cpu_ms_per_answered())
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
    sections: list[str] = []
    with embedded_platform("media", logs="media-logs") as env:
        for part in options.parts:
            log(f"part {part}")
            lines = run_uploads(env, options) if part == "upload" else run_reads(env, options)
            sections += ["", *lines]
    seconds = time.perf_counter() - started
    write_report(
        RESULTS_PATH,
        [
            run_line(command, seconds=seconds, code=env.code),
            "",
            *describe_machine(load_generator="k6"),
            *sections,
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument(
        "--feed-rate", type=int, default=200, help="req/s of both feed reads (the tray: 20)"
    )
    arguments = parser.parse_args(argv)
    options = Options(
        parts=parse_parts(parser, arguments.parts, PARTS),
        runs=arguments.runs,
        duration=arguments.duration,
        feed_rate=arguments.feed_rate,
    )
    run(options, command_line("bench.media", sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
