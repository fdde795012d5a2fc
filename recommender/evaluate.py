"""Offline evaluation on MovieLens as implicit feedback: ALS against most-popular, BPR and
item-kNN, with hyperparameters chosen on a validation split and figures from a test split.

    aperture recommender evaluate --ratings ../shared/data/ml-latest-small/ratings.csv
    python -m recommender.evaluate --ratings ../shared/data/ml-latest-small/ratings.csv

Protocol (docs/recommender.md):

1. Every rating with ``rating >= --min-rating`` (default 0: every rating) is one positive
   interaction of weight 1. Values and timestamps are not used.
2. For each seed, each user's positives are shuffled; ``--test-fraction`` of them (at least
   one when the user has two or more) go to test, then ``--validation-fraction`` of the
   rest (same rule) to validation; the remainder is train.
3. Every model's hyperparameters are chosen on validation (trained on train; ranking
   excludes train items) by nDCG@10. Test is not looked at.
4. With the chosen values, each model is retrained on train + validation and ranks every
   item not in train + validation; figures on test.
5. Metrics per user with at least one test item, then the mean over users; the table
   shows the mean and standard deviation of that over the seeds.

Metrics, textbook, binary relevance, k = 10:

- precision@k = hits / k
- recall@k = hits / |test items|
- nDCG@k = DCG / IDCG, DCG = Σ_{rank r ≤ k, hit} 1 / log2(r + 1),
  IDCG = Σ_{r ≤ min(k, |test|)} 1 / log2(r + 1)
"""

from __future__ import annotations

import os

# implicit threads itself: BLAS threads on top oversubscribe (implicit warns). Set before
# numpy loads when run as a module; ``main`` also limits BLAS threads at run time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import itertools
import logging
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import implicit.bpr  # type: ignore[import-untyped]
import implicit.nearest_neighbours  # type: ignore[import-untyped]
import implicit.utils  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from recommender.interactions import CSRMatrix, Float64Array, Int64Array
from recommender.model import ALSConfig, fit_factors
from recommender.scoring import popularity, top_k

log = logging.getLogger("recommender.evaluate")

K = 10
DEFAULT_RATINGS = Path("../shared/data/ml-latest-small/ratings.csv")


# -- data ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ratings:
    users: Int64Array
    items: Int64Array
    ratings: Float64Array


def load_ratings(path: Path) -> Ratings:
    """``userId,movieId,rating,timestamp`` rows (extra columns, if any, are ignored)."""
    users: list[int] = []
    items: list[int] = []
    ratings: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if [h.strip() for h in header[:3]] != ["userId", "movieId", "rating"]:
            raise ValueError(f"{path}: expected a userId,movieId,rating,... header")
        for row in reader:
            if not row:
                continue
            users.append(int(row[0]))
            items.append(int(row[1]))
            ratings.append(float(row[2]))
    return Ratings(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        ratings=np.asarray(ratings, dtype=np.float64),
    )


def positives_matrix(ratings: Ratings, min_rating: float) -> CSRMatrix:
    """Binary users x items CSR of the ratings at or above the threshold (dense indices)."""
    keep = ratings.ratings >= min_rating
    _, rows = np.unique(ratings.users[keep], return_inverse=True)
    _, cols = np.unique(ratings.items[keep], return_inverse=True)
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows, cols)),
        shape=(int(rows.max()) + 1, int(cols.max()) + 1),
    )
    matrix.data[:] = 1.0  # duplicates of a (user, item) pair count once
    matrix.sort_indices()
    return matrix


@dataclass(frozen=True, slots=True)
class Split:
    train: CSRMatrix
    validation: CSRMatrix
    test: CSRMatrix

    @property
    def train_validation(self) -> CSRMatrix:
        return (self.train + self.validation).tocsr()


def _take(n: int, fraction: float) -> int:
    """How many of n to hold out: the fraction rounded down, but one when n >= 2."""
    if n < 2:
        return 0
    return max(1, int(n * fraction))


def split_per_user(
    positives: CSRMatrix, rng: np.random.Generator, test_fraction: float, val_fraction: float
) -> Split:
    parts: dict[str, tuple[list[int], list[int]]] = {
        "train": ([], []),
        "validation": ([], []),
        "test": ([], []),
    }
    for user in range(positives.shape[0]):
        items = positives.indices[positives.indptr[user] : positives.indptr[user + 1]]
        items = rng.permutation(items)
        n_test = _take(len(items), test_fraction)
        rest = items[n_test:]
        n_val = _take(len(rest), val_fraction)
        for name, chunk in (
            ("test", items[:n_test]),
            ("validation", rest[:n_val]),
            ("train", rest[n_val:]),
        ):
            rows, cols = parts[name]
            rows.extend([user] * len(chunk))
            cols.extend(int(c) for c in chunk)

    def matrix(name: str) -> CSRMatrix:
        rows, cols = parts[name]
        built = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=positives.shape
        )
        built.sort_indices()
        return built

    return Split(train=matrix("train"), validation=matrix("validation"), test=matrix("test"))


# -- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metrics:
    precision: float
    recall: float
    ndcg: float
    users: int


def ranking_metrics(recommended: npt.NDArray[np.int64], relevant: CSRMatrix, k: int) -> Metrics:
    """Textbook precision@k, recall@k and nDCG@k, averaged over users with a relevant item.

    ``recommended`` is users x (at least k) item indices, best first (-1 pads); ``relevant``
    the held-out items per user (CSR, same rows).
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision: list[float] = []
    recall: list[float] = []
    ndcg: list[float] = []
    for user in range(relevant.shape[0]):
        truth = relevant.indices[relevant.indptr[user] : relevant.indptr[user + 1]]
        if len(truth) == 0:
            continue
        ranked = recommended[user, :k]
        hits = np.isin(ranked, truth) & (ranked >= 0)
        n_hits = int(hits.sum())
        precision.append(n_hits / k)
        recall.append(n_hits / len(truth))
        ideal = float(discounts[: min(k, len(truth))].sum())
        ndcg.append(float((hits * discounts[: len(ranked)]).sum()) / ideal)
    if not precision:
        return Metrics(0.0, 0.0, 0.0, 0)
    return Metrics(
        precision=float(np.mean(precision)),
        recall=float(np.mean(recall)),
        ndcg=float(np.mean(ndcg)),
        users=len(precision),
    )


# -- models -------------------------------------------------------------------------------

Params = dict[str, Any]
# train matrix, seed, params, exclusions -> users x K item indices
Ranker = Callable[[CSRMatrix, int, Params, CSRMatrix], Int64Array]


def rank_most_popular(
    train: CSRMatrix, seed: int, params: Params, exclude: CSRMatrix
) -> Int64Array:
    scores = popularity(train).astype(np.float32)[:, None]
    users = np.ones((train.shape[0], 1), dtype=np.float32)
    indices, _ = top_k(users, scores, K, exclude=exclude, xp=np)
    return indices


def rank_als(train: CSRMatrix, seed: int, params: Params, exclude: CSRMatrix) -> Int64Array:
    config = ALSConfig(
        factors=params["factors"],
        regularization=params["regularization"],
        alpha=params["alpha"],
        iterations=params["iterations"],
        seed=seed,
        num_threads=params.get("num_threads", 0),
    )
    user_factors, item_factors, _ = fit_factors(
        train, config, use_gpu=params.get("use_gpu", False), calculate_training_loss=False
    )
    indices, _ = top_k(user_factors, item_factors, K, exclude=exclude, xp=np)
    return indices


def rank_bpr(train: CSRMatrix, seed: int, params: Params, exclude: CSRMatrix) -> Int64Array:
    model = implicit.bpr.BayesianPersonalizedRanking(
        factors=params["factors"],
        learning_rate=params["learning_rate"],
        regularization=params["regularization"],
        iterations=params["iterations"],
        use_gpu=False,
        num_threads=params.get("num_threads", 0),
        random_state=seed,
    )
    model.fit(train, show_progress=False)
    indices, _ = top_k(model.user_factors, model.item_factors, K, exclude=exclude, xp=np)
    return indices


def rank_item_knn(train: CSRMatrix, seed: int, params: Params, exclude: CSRMatrix) -> Int64Array:
    threads = params.get("num_threads", 0)
    model: Any
    if params["similarity"] == "bm25":
        model = implicit.nearest_neighbours.BM25Recommender(
            K=params["K"], K1=params.get("K1", 1.2), B=params.get("B", 0.75), num_threads=threads
        )
    else:
        model = implicit.nearest_neighbours.CosineRecommender(K=params["K"], num_threads=threads)
    with warnings.catch_warnings():
        # BM25 weighting hands implicit's kNN a COO matrix, and implicit warns about it.
        warnings.simplefilter("ignore", category=implicit.utils.ParameterWarning)
        model.fit(train, show_progress=False)
    if exclude is not train:
        raise ValueError("item-kNN ranks from, and excludes, the same history matrix")
    # Scores come from the user's row of ``train``; implicit drops those items itself.
    ids, _ = model.recommend(np.arange(train.shape[0]), train, N=K, filter_already_liked_items=True)
    return np.asarray(ids, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    ranker: Ranker
    grid: list[Params]


def grid(**axes: Sequence[Any]) -> list[Params]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def candidates(quick: bool) -> list[Candidate]:
    """The models and their hyperparameter grids (``quick``: a small grid, for tests)."""
    if quick:
        return [
            Candidate("most-popular", rank_most_popular, [{}]),
            Candidate(
                "ALS (implicit)",
                rank_als,
                grid(factors=[32], regularization=[1.0], alpha=[5.0, 20.0], iterations=[10]),
            ),
            Candidate(
                "BPR (implicit)",
                rank_bpr,
                grid(factors=[32], learning_rate=[0.05], regularization=[0.01], iterations=[50]),
            ),
            Candidate("item-kNN BM25 (implicit)", rank_item_knn, grid(similarity=["bm25"], K=[50])),
        ]
    return [
        Candidate("most-popular", rank_most_popular, [{}]),
        Candidate(
            "ALS (implicit)",
            rank_als,
            grid(
                factors=[64, 128],
                regularization=[10.0, 30.0, 100.0],
                alpha=[1.0, 3.0, 10.0],
                iterations=[10, 20],
            ),
        ),
        Candidate(
            "BPR (implicit)",
            rank_bpr,
            grid(
                factors=[64, 128],
                learning_rate=[0.01, 0.05],
                regularization=[0.01],
                iterations=[50, 100],
            ),
        ),
        Candidate(
            "item-kNN cosine (implicit)",
            rank_item_knn,
            grid(similarity=["cosine"], K=[20, 50, 100, 200]),
        ),
        Candidate(
            "item-kNN BM25 (implicit)",
            rank_item_knn,
            grid(similarity=["bm25"], K=[50, 200, 500], B=[0.5, 0.75]),
        ),
    ]


# -- the run ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    name: str
    test: list[Metrics] = field(default_factory=list)
    chosen: list[Params] = field(default_factory=list)
    validation_ndcg: list[float] = field(default_factory=list)
    seconds: float = 0.0


def evaluate_seed(
    positives: CSRMatrix,
    seed: int,
    models: list[Candidate],
    outcomes: dict[str, Outcome],
    *,
    test_fraction: float,
    val_fraction: float,
    threads: int,
) -> None:
    split = split_per_user(positives, np.random.default_rng(seed), test_fraction, val_fraction)
    train_validation = split.train_validation
    for candidate in models:
        started = time.perf_counter()
        best: tuple[float, Params] | None = None
        for params in candidate.grid:
            run = {**params, "num_threads": threads}
            ranked = candidate.ranker(split.train, seed, run, split.train)
            score = ranking_metrics(ranked, split.validation, K).ndcg
            if best is None or score > best[0]:
                best = (score, params)
        assert best is not None
        final = {**best[1], "num_threads": threads}
        ranked = candidate.ranker(train_validation, seed, final, train_validation)
        metrics = ranking_metrics(ranked, split.test, K)
        outcome = outcomes.setdefault(candidate.name, Outcome(candidate.name))
        outcome.test.append(metrics)
        outcome.chosen.append(best[1])
        outcome.validation_ndcg.append(best[0])
        outcome.seconds += time.perf_counter() - started
        log.info(
            "seed %d %-28s validation nDCG@10 %.4f  test P@10 %.4f R@10 %.4f nDCG@10 %.4f  %s",
            seed,
            candidate.name,
            best[0],
            metrics.precision,
            metrics.recall,
            metrics.ndcg,
            _params(best[1]),
        )


def _params(params: Params) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _mean_std(values: Sequence[float]) -> str:
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return f"{array.mean():.4f} ± {std:.4f}"


def markdown_table(outcomes: dict[str, Outcome]) -> str:
    baseline = outcomes.get("most-popular")
    lines = [
        "| Model | precision@10 | recall@10 | nDCG@10 | nDCG@10 ÷ most-popular "
        "| chosen on validation (seeds) |",
        "|---|---|---|---|---|---|",
    ]
    for outcome in outcomes.values():
        ndcg = [m.ndcg for m in outcome.test]
        if baseline is not None:
            ratios = [
                a / b if b else float("nan")
                for a, b in zip(ndcg, baseline_ndcg(baseline), strict=True)
            ]
            ratio = _mean_std(ratios) + "x"
        else:
            ratio = "n/a"
        counts = Counter(_params(p) or "—" for p in outcome.chosen)
        chosen = "; ".join(
            text if len(counts) == 1 else f"{text} ({n} of {len(outcome.chosen)})"
            for text, n in counts.most_common()
        )
        lines.append(
            f"| {outcome.name} | {_mean_std([m.precision for m in outcome.test])} "
            f"| {_mean_std([m.recall for m in outcome.test])} | {_mean_std(ndcg)} "
            f"| {ratio} | {chosen} |"
        )
    return "\n".join(lines)


def baseline_ndcg(baseline: Outcome) -> list[float]:
    return [m.ndcg for m in baseline.test]


def goal_verdict(outcomes: dict[str, Outcome]) -> str:
    als = outcomes.get("ALS (implicit)")
    popular = outcomes.get("most-popular")
    if als is None or popular is None:
        return "Goal not assessed: ALS or most-popular missing."
    als_ndcg = float(np.mean([m.ndcg for m in als.test]))
    pop_ndcg = float(np.mean([m.ndcg for m in popular.test]))
    ratio = als_ndcg / pop_ndcg if pop_ndcg else float("inf")
    others = {
        name: float(np.mean([m.ndcg for m in o.test]))
        for name, o in outcomes.items()
        if name not in ("ALS (implicit)", "most-popular")
    }
    ahead = all(als_ndcg > v for v in others.values())
    parts = [
        f"ALS nDCG@10 {als_ndcg:.4f} is {ratio:.2f}x most-popular ({pop_ndcg:.4f}): "
        + ("meets" if ratio >= 2.0 else f"short of (by {2.0 - ratio:.2f}x)")
        + " the 2.0x goal.",
    ]
    for name, value in others.items():
        relation = "ahead of" if als_ndcg > value else "behind"
        parts.append(f"ALS is {relation} {name} ({value:.4f}).")
    met = ratio >= 2.0 and ahead
    parts.append("Goal met." if met else "Goal NOT met.")
    return " ".join(parts)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aperture recommender evaluate",
        description="Offline evaluation of the Explore recommender on MovieLens ratings "
        "as implicit feedback (docs/recommender.md).",
    )
    parser.add_argument("--ratings", type=Path, default=DEFAULT_RATINGS, help="ratings.csv")
    parser.add_argument(
        "--min-rating",
        type=float,
        default=0.0,
        help="ratings at or above this count as interactions (default 0: every rating)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (splits)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=0, help="implicit's threads (0: every core)")
    parser.add_argument(
        "--quick", action="store_true", help="a small grid: a smoke test, not a result"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        help="evaluate only models whose name contains this (repeatable; most-popular is "
        "always kept)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-seed progress")
    return parser.parse_args(list(argv))


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: dict[str, Outcome]
    table: str
    verdict: str
    seconds: float
    users: int
    items: int
    interactions: int


def run(args: argparse.Namespace) -> Report:
    started = time.perf_counter()
    ratings = load_ratings(args.ratings)
    positives = positives_matrix(ratings, args.min_rating)
    models = candidates(args.quick)
    if args.only:
        models = [
            m
            for m in models
            if m.name == "most-popular" or any(o.lower() in m.name.lower() for o in args.only)
        ]
    outcomes: dict[str, Outcome] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            evaluate_seed(
                positives,
                seed,
                models,
                outcomes,
                test_fraction=args.test_fraction,
                val_fraction=args.validation_fraction,
                threads=args.threads,
            )
    table = markdown_table(outcomes)
    return Report(
        outcomes=outcomes,
        table=table,
        verdict=goal_verdict(outcomes),
        seconds=time.perf_counter() - started,
        users=int(positives.shape[0]),
        items=int(positives.shape[1]),
        interactions=int(positives.nnz),
    )


def main(argv: list[str] | None = None) -> int:
    """``aperture recommender evaluate``: prints the table; 0 when it ran (goal or not)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("recommender.model").setLevel(logging.WARNING)
    if not args.ratings.is_file():
        print(f"no ratings file at {args.ratings}", file=sys.stderr)
        return 2
    report = run(args)
    header = (
        f"MovieLens {args.ratings.name}: {report.users} users, {report.items} items, "
        f"{report.interactions} interactions (rating >= {args.min_rating:g}); "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}; "
        f"test {args.test_fraction:g} / validation {args.validation_fraction:g} per user; "
        f"{report.seconds:.0f} s"
        + ("; --quick: a one-point grid, a smoke test, not a result" if args.quick else "")
    )
    print(header)
    print()
    print(report.table)
    print()
    print(report.verdict)
    for outcome in report.outcomes.values():
        print(f"  {outcome.name}: {outcome.seconds:.1f} s (grid search and final fits)")
    if args.markdown is not None:
        args.markdown.write_text(f"{header}\n\n{report.table}\n\n{report.verdict}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
