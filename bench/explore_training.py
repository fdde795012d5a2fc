"""Explore training overhead (issue 12): CPU seconds per ALS iteration through
``recommender`` (interaction columns → weights with decay → our confidence scaling →
implicit), next to bare ``implicit`` fitting the same confidence matrix, in the same
run, interleaved, on generated interactions with heavy-tailed (Zipf) item popularity.
Also the time to fold one person in, and batch top-k scoring on the CPU.

    .venv/bin/python -m bench.explore_training [--sizes 1000000,10000000] [--runs 3]

The report is printed and written to ``bench/results/explore_training.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import implicit  # type: ignore[import-untyped]
import numpy as np

from bench.machine import describe_machine
from recommender.interactions import InteractionArrays, build_matrix
from recommender.model import ALSConfig, ALSRecommender, confidence

RESULTS = Path(__file__).resolve().parent / "results" / "explore_training.md"


def generate(size: int, *, seed: int) -> InteractionArrays:
    """``size`` interactions: people with log-normal activity, items by Zipf(1.1)."""
    rng = np.random.default_rng(seed)
    users = max(1000, size // 40)
    items = max(1000, size // 20)
    user_ids = rng.integers(0, users, size=size, dtype=np.int64) + 10**15
    ranks = rng.zipf(1.1, size=size)
    item_ids = (ranks % items).astype(np.int64) + 2 * 10**15
    # Indices into recommender.interactions.Signal: like, comment, save, reel and story view.
    signals = rng.choice(5, size=size, p=[0.6, 0.1, 0.05, 0.2, 0.05]).astype(np.int8)
    timestamps = 1.7e9 - rng.random(size) * 180 * 86_400
    return InteractionArrays(
        user_ids=user_ids, item_ids=item_ids, signals=signals, timestamps=timestamps
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(call: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    call()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def bench_size(size: int, runs: int, config: ALSConfig) -> list[str]:
    arrays = generate(size, seed=size)
    ours: list[float] = []
    ours_with_loss: list[float] = []
    bare: list[float] = []
    model: ALSRecommender | None = None
    for _ in range(runs):
        # Ours, from the tuples, as `aperture train` runs it (without and with the loss).
        def train_ours(loss: bool) -> None:
            nonlocal model
            matrix = build_matrix(arrays, now=1.7e9)
            model, _ = ALSRecommender.train(
                matrix, config, use_gpu=False, calculate_training_loss=loss
            )

        ours.append(measure(lambda: train_ours(False))[1] / config.iterations)
        ours_with_loss.append(measure(lambda: train_ours(True))[1] / config.iterations)
        # Bare implicit on the same confidence matrix, built outside the timing.
        conf = confidence(build_matrix(arrays, now=1.7e9).matrix, config.alpha)

        def train_bare(conf: object = conf) -> None:
            implicit.cpu.als.AlternatingLeastSquares(
                factors=config.factors,
                regularization=config.regularization,
                alpha=1.0,
                iterations=config.iterations,
                random_state=config.seed,
            ).fit(conf, show_progress=False)

        bare.append(measure(train_bare)[1] / config.iterations)
    assert model is not None
    folds = fold_in_ms(model, arrays)
    scoring = scoring_ms(model)
    ratio = [o / b for o, b in zip(ours, bare, strict=True)]
    ratio_loss = [o / b for o, b in zip(ours_with_loss, bare, strict=True)]
    shape = f"{len(model.users):,} people x {len(model.items):,} items"
    return [
        f"| {size:,} ({shape}) | {statistics.median(bare):.2f} "
        f"| {statistics.median(ours):.2f} | {statistics.median(ratio):.2f}x "
        f"(max {max(ratio):.2f}x) | {statistics.median(ours_with_loss):.2f} "
        f"| {statistics.median(ratio_loss):.2f}x | {statistics.median(folds):.2f} / "
        f"{np.percentile(folds, 99):.2f} | {scoring:.1f} |"
    ]


def fold_in_ms(model: ALSRecommender, arrays: InteractionArrays) -> list[float]:
    """A new person with 5 interactions, folded in, 200 times."""
    rng = np.random.default_rng(7)
    known = np.asarray(model.items.ids)
    times = []
    for person in range(200):
        picks = rng.choice(known, size=5, replace=False)
        rows = [(9 * 10**15 + person, int(item), "like", 1.7e9) for item in picks]
        started = time.perf_counter()
        model.fold_in(9 * 10**15 + person, rows, now=1.7e9)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def scoring_ms(model: ALSRecommender) -> float:
    """Top 300 for 1,024 people in one batch, through the array-module interface."""
    users = np.asarray(model.users.ids[:1024])
    started = time.perf_counter()
    model.recommend(users, 300)
    return (time.perf_counter() - started) * 1e3


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args(argv)
    config = ALSConfig(factors=args.factors, iterations=args.iterations, num_threads=0)
    lines = [
        "# Explore training overhead",
        "",
        *describe_machine(),
        "",
        f"implicit {implicit.__version__}, CPU, "
        f"{args.factors} factors, {args.iterations} iterations per run, {args.runs} runs "
        "(medians; ours and bare interleaved run by run). CPU seconds per iteration.",
        "",
        "| interactions | bare implicit | ours (columns → weights → model) | overhead "
        "| ours with the loss each iteration | overhead | fold-in ms p50 / p99 | top-300 for 1,024 "
        "people, ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in (int(text) for text in args.sizes.split(",")):
        lines += bench_size(size, args.runs, config)
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Command: `.venv/bin/python -m bench.explore_training --sizes {args.sizes} "
        f"--runs {args.runs}`",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
