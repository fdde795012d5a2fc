"""Batch scoring through the array-module interface, on the CPU (NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender import scoring
from recommender.interactions import Interaction
from recommender.scoring import TrendingScorer, array_module, popularity, similar_items, top_k

DAY = 86_400.0
NOW = 1_800_000_000.0


def brute_force(
    users: np.ndarray, items: np.ndarray, k: int, exclude: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score everything, drop exclusions, full sort: the reference ranking."""
    ids, scores = [], []
    for u in range(users.shape[0]):
        s = items @ users[u]
        allowed = [i for i in range(items.shape[0]) if not exclude[u, i]]
        ranked = sorted(allowed, key=lambda i: -s[i])[:k]
        ids.append(ranked + [-1] * (k - len(ranked)))
        scores.append([s[i] for i in ranked] + [-np.inf] * (k - len(ranked)))
    return np.array(ids), np.array(scores, dtype=np.float32)


def test_array_module_is_numpy_without_cuda() -> None:
    assert array_module(prefer_gpu=False) is np
    if scoring._cupy_with_cuda() is None:
        assert array_module(prefer_gpu=True) is np


@pytest.mark.parametrize("batch_elements", [1 << 24, 64])  # one batch; many small ones
def test_cpu_top_k_equals_brute_force_with_exclusions(batch_elements: int) -> None:
    rng = np.random.default_rng(3)
    users = rng.normal(size=(37, 8)).astype(np.float32)
    items = rng.normal(size=(50, 8)).astype(np.float32)
    mask = rng.random((37, 50)) < 0.3
    mask[5, :] = True  # nothing left to rank
    mask[6, :47] = True  # fewer than k left
    exclude = sp.csr_matrix(mask.astype(np.float32))

    ids, scores = top_k(users, items, 10, exclude=exclude, xp=np, batch_elements=batch_elements)
    want_ids, want_scores = brute_force(users, items, 10, mask)

    assert ids.dtype == np.int64
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    assert (ids[5] == -1).all()
    assert (ids[6, 3:] == -1).all()
    assert not mask[np.arange(37)[:, None], np.maximum(ids, 0)][ids >= 0].any()


@pytest.mark.parametrize("k", [1, 7, 59, 60])
@pytest.mark.parametrize("batch_elements", [None, 60, 7 * 60, 1 << 24])  # 1 row; 7; one batch
def test_chunked_top_k_with_ties_equals_brute_force(k: int, batch_elements: int | None) -> None:
    """Integer factors make many exactly equal scores: the threshold's ties must still
    give exactly k per row, the lowest item index first among equals, whatever the
    batch size; excluded items never appear; an all-zero user (every score tied) and a
    user with everything excluded come out right too."""
    rng = np.random.default_rng(12)
    users = rng.integers(-1, 2, size=(23, 4)).astype(np.float32)
    users[3] = 0  # every score 0: one big tie
    items = rng.integers(-1, 2, size=(60, 4)).astype(np.float32)
    mask = rng.random((23, 60)) < 0.2
    mask[9, :] = True
    exclude = sp.csr_matrix(mask.astype(np.float32))

    ids, scores = top_k(users, items, k, exclude=exclude, xp=np, batch_elements=batch_elements)
    want_ids, want_scores = brute_force(users, items, k, mask)

    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    assert (ids[9] == -1).all()
    assert np.isneginf(scores[9]).all()
    assert not mask[np.arange(23)[:, None], np.maximum(ids, 0)][ids >= 0].any()
    # No item twice in a row.
    for row in ids:
        kept = row[row >= 0]
        assert len(set(kept.tolist())) == len(kept)


def test_top_k_of_a_skewed_trained_like_model_equals_a_full_sort() -> None:
    """Scores shaped like a trained model's (most items near zero, a few large) across
    several batches and a sparse exclusion matrix: the same as a full argsort."""
    rng = np.random.default_rng(13)
    users = rng.normal(size=(300, 16)).astype(np.float32)
    items = (rng.normal(size=(2_000, 16)) * rng.pareto(1.5, size=(2_000, 1)) * 1e-3).astype(
        np.float32
    )
    exclude = sp.random(300, 2_000, density=0.02, format="csr", random_state=2, dtype=np.float32)
    exclude.data[:] = 1.0
    ids, scores = top_k(users, items, 50, exclude=exclude, xp=np, batch_elements=1 << 16)

    full = users @ items.T
    full[exclude.toarray() > 0] = -np.inf
    order = np.argsort(-full, axis=1, kind="stable")[:, :50]
    np.testing.assert_array_equal(ids, order)
    # Batches of a different height may round the GEMM's last bit differently.
    np.testing.assert_allclose(scores, np.take_along_axis(full, order, axis=1), rtol=1e-5)


def test_top_k_without_exclusions_and_k_beyond_the_catalogue() -> None:
    rng = np.random.default_rng(4)
    users = rng.normal(size=(4, 3)).astype(np.float32)
    items = rng.normal(size=(6, 3)).astype(np.float32)
    ids, scores = top_k(users, items, 100, xp=np)
    assert ids.shape == (4, 6)
    want, _ = brute_force(users, items, 6, np.zeros((4, 6), dtype=bool))
    np.testing.assert_array_equal(ids, want)
    assert (np.diff(scores, axis=1) <= 0).all()
    empty_ids, _ = top_k(users, items, 0, xp=np)
    assert empty_ids.shape == (4, 0)


def test_top_k_refuses_a_misshapen_exclusion_matrix() -> None:
    with pytest.raises(ValueError, match="exclude"):
        top_k(np.ones((2, 2)), np.ones((3, 2)), 1, exclude=sp.csr_matrix((2, 4)), xp=np)


def test_similar_items_by_cosine_leaves_the_item_out() -> None:
    rng = np.random.default_rng(5)
    items = rng.normal(size=(30, 6)).astype(np.float32)
    items[7] = 0  # a zero vector must not poison the others with NaN
    ids, scores = similar_items(items, 3, 5, xp=np)
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[3]
    want = [i for i in np.argsort(-cosine) if i != 3][:5]
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(scores, cosine[want], rtol=1e-5)
    assert 3 not in ids


def test_popularity_counts_distinct_users() -> None:
    matrix = sp.csr_matrix(np.array([[2.0, 0, 1], [1, 0, 0], [5, 1, 0]], dtype=np.float32))
    assert popularity(matrix).tolist() == [3.0, 1.0, 1.0]


def test_trending_decays_engagement_and_respects_exclusions() -> None:
    rows = [
        # item 1: 3 likes a week ago; item 2: 1 save today; item 3: 1 like today
        *(Interaction(u, 1, "like", NOW - 7 * DAY) for u in range(3)),
        Interaction(9, 2, "save", NOW),
        Interaction(9, 3, "like", NOW),
    ]
    trending = TrendingScorer.from_interactions(rows, now=NOW)  # 2-day half-life by default
    top = trending.top(3)
    assert [item for item, _ in top] == [2, 3, 1]
    assert top[2][1] == pytest.approx(3 * 0.5**3.5, rel=1e-5)
    assert [item for item, _ in trending.top(3, exclude_item_ids=[2, 404])] == [3, 1]


def test_trending_ranks_many_users_through_top_k() -> None:
    trending = TrendingScorer(np.array([10, 11, 12], dtype=np.int64), np.array([1.0, 3.0, 2.0]))
    exclude = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]], dtype=np.float32))
    ids, _ = trending.recommend(2, exclude, xp=np)
    assert ids.tolist() == [[2, 0], [1, 2]]
