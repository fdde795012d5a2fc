"""The offline evaluation: textbook metrics on hand-computed cases, the split, the CLI."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender import evaluate
from recommender.evaluate import main, ranking_metrics, split_per_user

MOVIELENS = Path(__file__).resolve().parents[3] / "shared/data/ml-latest-small/ratings.csv"


def relevant(rows: list[list[int]], items: int = 30) -> sp.csr_matrix:
    data = [(u, i) for u, row in enumerate(rows) for i in row]
    return sp.csr_matrix(
        (np.ones(len(data)), ([u for u, _ in data], [i for _, i in data])), shape=(len(rows), items)
    )


def test_metrics_are_textbook_on_a_hand_computed_example() -> None:
    recommended = np.array(
        [
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # hits at ranks 2 and 5 of 3 relevant
            [7, 1, 2, 3, 4, 5, 6, 8, 9, 10],  # its only relevant item first
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # no relevant item: not counted
            [11, -1, -1, -1, -1, -1, -1, -1, -1, -1],  # padded; 12 relevant, 1 hit
        ]
    )
    truth = relevant([[2, 5, 20], [7], [], list(range(11, 23))])
    got = ranking_metrics(recommended, truth, 10)

    assert got.users == 3
    precision = [2 / 10, 1 / 10, 1 / 10]
    recall = [2 / 3, 1 / 1, 1 / 12]  # hits / |test|: 1/12, not implicit's 1/min(10, 12)
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    idcg10 = sum(1 / math.log2(r + 1) for r in range(1, 11))  # ideal over min(10, 12) = 10
    ndcg = [(1 / math.log2(3) + 1 / math.log2(6)) / idcg3, 1.0, 1.0 / idcg10]
    assert got.precision == pytest.approx(np.mean(precision))
    assert got.recall == pytest.approx(np.mean(recall))
    assert got.ndcg == pytest.approx(np.mean(ndcg))


def test_a_perfect_ranking_scores_one() -> None:
    recommended = np.array([list(range(10))])
    got = ranking_metrics(recommended, relevant([list(range(10))]), 10)
    assert (got.precision, got.recall) == (1.0, 1.0)
    assert got.ndcg == pytest.approx(1.0)
    short = ranking_metrics(np.array([[4, 9, 0, 1, 2, 3, 5, 6, 7, 8]]), relevant([[4, 9]]), 10)
    assert (short.precision, short.recall) == (0.2, 1.0)
    assert short.ndcg == pytest.approx(1.0)


def test_split_is_per_user_disjoint_and_complete() -> None:
    sizes = [10, 1, 2, 25]
    positives = relevant([list(range(n)) for n in sizes], items=30)
    split = split_per_user(positives, np.random.default_rng(0), 0.2, 0.2)
    total = split.train + split.validation + split.test
    assert (total != positives).nnz == 0  # every positive exactly once
    assert total.max() == 1
    counts = [
        (int(split.test[u].nnz), int(split.validation[u].nnz), int(split.train[u].nnz))
        for u in range(4)
    ]
    # n=10: test 2, validation 1 of 8; n=1: train only; n=2: one to test; n=25: 5, 4, 16
    assert counts == [(2, 1, 7), (0, 0, 1), (1, 0, 1), (5, 4, 16)]
    again = split_per_user(positives, np.random.default_rng(0), 0.2, 0.2)
    assert (again.test != split.test).nnz == 0  # a seed fixes the split


def write_ratings(path: Path, rng: np.random.Generator) -> None:
    """Two taste groups of 30 users over 40 movies, plus 3 movies everyone rates."""
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["userId", "movieId", "rating", "timestamp"])
        for user in range(60):
            group = user % 2
            for movie in rng.choice(20, size=10, replace=False):
                out.writerow([user + 1, 100 + group * 20 + int(movie), 4.5, 1_000_000 + user])
            for movie in (900, 901, 902):
                out.writerow([user + 1, movie, 3.0, 1_000_000])


def test_main_prints_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = tmp_path / "ratings.csv"
    write_ratings(ratings, np.random.default_rng(0))
    markdown = tmp_path / "result.md"
    assert (
        main(["--ratings", str(ratings), "--quick", "--seeds", "2", "--markdown", str(markdown)])
        == 0
    )
    printed = capsys.readouterr().out
    for name in ("most-popular", "ALS (implicit)", "BPR (implicit)", "item-kNN BM25 (implicit)"):
        assert f"| {name} |" in printed
    assert "| Model | precision@10 | recall@10 | nDCG@10 |" in markdown.read_text()
    assert "±" in printed


def test_main_threshold_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--ratings", str(tmp_path / "absent.csv")]) == 2
    ratings = tmp_path / "ratings.csv"
    write_ratings(ratings, np.random.default_rng(1))
    args = evaluate.parse_args(["--ratings", str(ratings), "--min-rating", "4"])
    positives = evaluate.positives_matrix(evaluate.load_ratings(args.ratings), args.min_rating)
    assert positives.nnz == 600  # the 3.0 ratings fall below the threshold


@pytest.mark.slow
@pytest.mark.skipif(not MOVIELENS.is_file(), reason=f"MovieLens not found at {MOVIELENS}")
def test_movielens_quick_run_beats_most_popular() -> None:
    args = evaluate.parse_args(["--ratings", str(MOVIELENS), "--quick", "--seeds", "1"])
    report = evaluate.run(args)
    assert report.users == 671
    assert report.interactions == 100_004
    ndcg = {name: o.test[0].ndcg for name, o in report.outcomes.items()}
    assert ndcg["ALS (implicit)"] > 1.3 * ndcg["most-popular"]
    for outcome in report.outcomes.values():
        m = outcome.test[0]
        assert 0 < m.precision <= 1
        assert 0 < m.recall <= 1
        assert 0 < m.ndcg <= 1


def test_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "recommender.evaluate", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "aperture recommender evaluate" in done.stdout
    assert "--ratings" in done.stdout
