"""Explore training overhead (issue 12): CPU seconds per ALS iteration through
``recommender`` next to bare ``implicit`` fitting the same confidence matrix, in the same
run, interleaved, on generated interactions with heavy-tailed (Zipf) item popularity.
Also the time to fold one person in, and batch top-k scoring on the CPU.

    .venv/bin/python -m bench.explore_training [--sizes 1000000,10000000] [--runs 3,2]

What is compared, per run (the order rotates from run to run):

- **ours**: what ``aperture train`` does after reading the log, from interaction columns:
  ``build_matrix`` (ids to dense indices, signal weights, time decay, COO → CSR), then
  ``ALSRecommender.train`` (our confidence scaling, our seeded starting factors, the BLAS
  limit, implicit's fit, the model object and its id maps);
- **bare**: implicit's ``AlternatingLeastSquares.fit`` on that same confidence matrix,
  built once outside the timing (implicit draws its own starting factors inside).

Both use ``ALSConfig(factors=64, iterations=15)``, the configuration ``aperture train``
runs by default (regularization 0.05, alpha 10, every core). ``aperture train`` computes
the training loss each iteration for its progress bar; the loss pair (ours and bare, both
with the loss) runs for the sizes in ``--loss-sizes``. CPU seconds (user + system, every
thread) per iteration; the overhead is ours / bare, run by run, and its median.

On a shared 2-core machine that ratio is noisy: implicit's OpenMP threads spin while they
wait for a core, and whichever fit another process overlapped costs more. So each run also
times both paths with 0 iterations (everything outside implicit's loop, which the two run
identically): ``1 + (ours - bare at 0 iterations) / (iterations x bare s/iter)`` is the
overhead from what ours adds, measured without the loop's noise.

The report is printed and written to ``bench/results/explore_training.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import implicit  # type: ignore[import-untyped]
import implicit.cpu.als  # type: ignore[import-untyped]
import numpy as np

from bench.harness import describe_machine
from recommender.interactions import CSRMatrix, InteractionArrays, build_matrix
from recommender.model import ALSConfig, ALSRecommender, confidence

RESULTS = Path(__file__).resolve().parent / "results" / "explore_training.md"
NOW = 1.7e9
SCORED_PEOPLE = 1024
SCORED_K = 300


def generate(size: int, *, seed: int) -> InteractionArrays:
    """``size`` interactions: people uniformly active, items by Zipf(1.1)."""
    rng = np.random.default_rng(seed)
    users = max(1000, size // 40)
    items = max(1000, size // 20)
    user_ids = rng.integers(0, users, size=size, dtype=np.int64) + 10**15
    ranks = rng.zipf(1.1, size=size)
    item_ids = (ranks % items).astype(np.int64) + 2 * 10**15
    # Indices into recommender.interactions.Signal: like, comment, save, reel and story view.
    signals = rng.choice(5, size=size, p=[0.6, 0.1, 0.05, 0.2, 0.05]).astype(np.int8)
    timestamps = NOW - rng.random(size) * 180 * 86_400
    return InteractionArrays(
        user_ids=user_ids, item_ids=item_ids, signals=signals, timestamps=timestamps
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(call: Callable[[], object]) -> float:
    """CPU seconds of one call, after a collection so garbage from the last one is gone."""
    gc.collect()
    cpu = cpu_seconds()
    call()
    return cpu_seconds() - cpu


@dataclass
class SizeResult:
    size: int
    runs: int
    shape: str = ""
    nnz: int = 0
    cpu: dict[str, list[float]] = field(default_factory=dict)  # per iteration
    build: list[float] = field(default_factory=list)  # build_matrix alone, seconds
    # Each path with 0 iterations (everything but implicit's loop), seconds.
    fixed: dict[str, list[float]] = field(default_factory=dict)
    fold_ms: list[float] = field(default_factory=list)
    first_fold_ms: float = 0.0
    scoring_ms: list[float] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0

    def ratio(self, ours: str, bare: str) -> list[float]:
        return [o / b for o, b in zip(self.cpu[ours], self.cpu[bare], strict=True)]

    def fixed_overhead(self, iterations: int) -> float:
        """1 + (ours - bare at 0 iterations) / (the iterations of bare): the overhead
        from everything outside implicit's loop, which both paths run identically."""
        extra = statistics.median(self.fixed["ours"]) - statistics.median(self.fixed["bare"])
        return 1 + extra / (iterations * statistics.median(self.cpu["bare"]))


def bench_size(size: int, runs: int, config: ALSConfig, with_loss: bool) -> SizeResult:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    result = SizeResult(size, runs)
    arrays = generate(size, seed=size)
    reference = build_matrix(arrays, now=NOW)
    conf: CSRMatrix = confidence(reference.matrix, config.alpha)
    result.shape = f"{reference.shape[0]:,} people x {reference.shape[1]:,} items"
    result.nnz = reference.nnz
    model: ALSRecommender | None = None

    def ours(loss: bool, iterations: int = config.iterations) -> None:
        nonlocal model
        matrix = build_matrix(arrays, now=NOW)
        trained, _ = ALSRecommender.train(
            matrix,
            replace(config, iterations=iterations),
            use_gpu=False,
            calculate_training_loss=loss,
        )
        if iterations:
            model = trained

    def bare(loss: bool, iterations: int = config.iterations) -> None:
        implicit.cpu.als.AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.regularization,
            alpha=1.0,  # the confidences are already 1 + alpha * weight
            iterations=iterations,
            calculate_training_loss=loss,
            num_threads=config.num_threads,
            random_state=config.seed,
        ).fit(conf, show_progress=False)

    tasks: list[tuple[str, Callable[[], None]]] = [
        ("ours", lambda: ours(False)),
        ("bare", lambda: bare(False)),
    ]
    if with_loss:
        tasks += [("ours+loss", lambda: ours(True)), ("bare+loss", lambda: bare(True))]
    result.cpu = {name: [] for name, _ in tasks}
    result.fixed = {"ours": [], "bare": []}
    for run in range(runs):
        shift = run % len(tasks)
        for name, task in tasks[shift:] + tasks[:shift]:
            result.cpu[name].append(measure(task) / config.iterations)
        result.build.append(measure(lambda: build_matrix(arrays, now=NOW)))
        result.fixed["ours"].append(measure(lambda: ours(False, 0)))
        result.fixed["bare"].append(measure(lambda: bare(False, 0)))
        print(
            f"  {size:,} run {run + 1}/{runs}: "
            + ", ".join(f"{name} {values[-1]:.3f}" for name, values in result.cpu.items())
            + f" s/iter; build {result.build[-1]:.2f} s; 0 iterations: ours "
            f"{result.fixed['ours'][-1]:.2f} s, bare {result.fixed['bare'][-1]:.2f} s",
            flush=True,
        )
    assert model is not None
    result.first_fold_ms, result.fold_ms = fold_in_ms(model)
    result.scoring_ms = scoring_ms(model, reference.matrix)
    result.load = (load_before, os.getloadavg()[0])
    result.seconds = time.perf_counter() - started
    return result


def fold_in_ms(model: ALSRecommender, people: int = 200) -> tuple[float, list[float]]:
    """New people with 5 likes each, folded in one after the other: the first call (it
    makes implicit's solver, the item Gram matrix and the id dict) and the rest."""
    rng = np.random.default_rng(7)
    known = np.asarray(model.items.ids)
    times = []
    for person in range(people + 1):
        picks = rng.choice(known, size=5, replace=False)
        rows = [(9 * 10**15 + person, int(item), "like", NOW) for item in picks]
        started = time.perf_counter()
        model.fold_in(9 * 10**15 + person, rows, now=NOW)
        times.append((time.perf_counter() - started) * 1e3)
    return times[0], times[1:]


def scoring_ms(model: ALSRecommender, weights: CSRMatrix, repeats: int = 5) -> list[float]:
    """Top 300 for 1,024 people, their own interactions left out (as training's candidate
    precompute asks), through the array-module interface; one warm-up, then ``repeats``."""
    users = np.asarray(model.users.ids[:SCORED_PEOPLE])
    exclude = weights[:SCORED_PEOPLE]
    model.recommend(users, SCORED_K, exclude=exclude)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.recommend(users, SCORED_K, exclude=exclude)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def table(results: list[SizeResult], iterations: int) -> list[str]:
    lines = [
        "| interactions | bare implicit s/iter | ours s/iter | overhead (min-max) "
        "| bare, loss on | ours, loss on | overhead, loss on | build_matrix s "
        "| 0 iterations: ours / bare s | overhead from the 0-iteration difference "
        "| fold-in ms p50 / p99 (first) | top-300 for 1,024 people ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = r.ratio("ours", "bare")
        if "ours+loss" in r.cpu:
            with_loss = r.ratio("ours+loss", "bare+loss")
            loss_cells = (
                f"{statistics.median(r.cpu['bare+loss']):.3f} "
                f"| {statistics.median(r.cpu['ours+loss']):.3f} "
                f"| {statistics.median(with_loss):.3f}x ({min(with_loss):.3f}-{max(with_loss):.3f})"
            )
        else:
            loss_cells = "not run | not run | not run"
        lines.append(
            f"| {r.size:,} ({r.shape}, {r.nnz:,} stored) "
            f"| {statistics.median(r.cpu['bare']):.3f} | {statistics.median(r.cpu['ours']):.3f} "
            f"| {statistics.median(ratio):.3f}x ({min(ratio):.3f}-{max(ratio):.3f}) "
            f"| {loss_cells} | {statistics.median(r.build):.2f} "
            f"| {statistics.median(r.fixed['ours']):.2f} "
            f"/ {statistics.median(r.fixed['bare']):.2f} "
            f"| {r.fixed_overhead(iterations):.3f}x "
            f"| {np.percentile(r.fold_ms, 50):.2f} / {np.percentile(r.fold_ms, 99):.2f} "
            f"({r.first_fold_ms:.0f}) "
            f"| {statistics.median(r.scoring_ms):.0f} (min {min(r.scoring_ms):.0f}) |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument(
        "--runs", default="3,2", help="runs per size: one number, or one per size (default 3,2)"
    )
    parser.add_argument(
        "--loss-sizes",
        default="1000000",
        help="sizes that also run the pair with the loss on (default 1000000; 'all', 'none')",
    )
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args(argv)
    sizes = [int(text) for text in args.sizes.split(",")]
    runs = [int(text) for text in args.runs.split(",")]
    runs = runs * len(sizes) if len(runs) == 1 else runs
    if len(runs) != len(sizes):
        parser.error("--runs needs one number, or one per size")
    if args.loss_sizes == "all":
        loss_sizes = set(sizes)
    elif args.loss_sizes == "none":
        loss_sizes = set()
    else:
        loss_sizes = {int(text) for text in args.loss_sizes.split(",")}
    config = ALSConfig(factors=args.factors, iterations=args.iterations)

    results = []
    for size, count in zip(sizes, runs, strict=True):
        results.append(bench_size(size, count, config, size in loss_sizes))
        print("\n".join(table(results[-1:], config.iterations)), flush=True)
    lines = [
        "# Explore training overhead",
        "",
        *describe_machine(),
        "",
        f"implicit {implicit.__version__}, CPU; ALSConfig(factors={config.factors}, "
        f"iterations={config.iterations}, regularization={config.regularization}, "
        f"alpha={config.alpha}, num_threads={config.num_threads}); runs per size: "
        + ", ".join(f"{s:,}: {n}" for s, n in zip(sizes, runs, strict=True))
        + " (ours and bare interleaved, the order rotating; medians). CPU seconds per "
        "iteration.",
        "",
        *table(results, config.iterations),
        "",
        *(
            f"- {r.size:,}: {r.seconds / 60:.1f} min; load average (1 min) "
            f"{r.load[0]:.2f} before, {r.load[1]:.2f} after"
            for r in results
        ),
        "",
        f"Command: `.venv/bin/python -m bench.explore_training --sizes {args.sizes} "
        f"--runs {args.runs} --loss-sizes {args.loss_sizes}`",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
