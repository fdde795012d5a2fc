"""Batch scoring, written once against an array module: CuPy on a GPU, NumPy otherwise.

:func:`array_module` picks the module; :func:`top_k` scores users against items in
batches (``U @ Iᵀ``, float32, into one reused buffer), masks each user's excluded items,
finds each row's k-th best score with ``partition`` and sorts only the k items at or above
it. Results always come back as NumPy arrays. The same
function ranks for the model (:func:`top_k`), for "more like this" (:func:`similar_items`)
and for the trending fallback (:class:`TrendingScorer`).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.interactions import (
    CSRMatrix,
    Float32Array,
    Float64Array,
    IdMap,
    Int64Array,
    Interaction,
    InteractionArrays,
    MatrixConfig,
    build_matrix,
)

log = logging.getLogger("recommender.scoring")

ArrayModule = ModuleType

# Scores held at once per batch (users x items). On the CPU a batch of 2**21 float32
# (8 MiB) stays in the last-level cache and its buffer is reused batch after batch, which
# measured fastest for 1,024 people x 50k items (1M-interaction model, 2-core EPYC): 2**24
# was 1.3x slower, 2**18 1.6x slower. But a batch never has fewer than CPU_MIN_BATCH_ROWS
# users: with 500k items, 4 users a batch make the product a matrix-vector one that
# streams all item factors per 4 users (2.8 s for 1,024 people; 1.7 s at 16 a batch). On a
# GPU a large batch keeps the device busy.
CPU_BATCH_ELEMENTS = 1 << 21
CPU_MIN_BATCH_ROWS = 16
GPU_BATCH_ELEMENTS = 1 << 26


@functools.cache
def _cupy_with_cuda() -> ModuleType | None:
    try:
        cupy = importlib.import_module("cupy")
        if bool(cupy.cuda.is_available()):
            return cupy
        log.info("cupy is installed but finds no CUDA device: scoring on the CPU")
    except Exception as error:  # ImportError, or a CUDA runtime that fails to load
        log.debug("cupy unavailable (%s): scoring on the CPU", error)
    return None


def array_module(prefer_gpu: bool = True) -> ArrayModule:
    """CuPy when asked for and a CUDA device is usable, NumPy otherwise."""
    if prefer_gpu:
        cupy = _cupy_with_cuda()
        if cupy is not None:
            return cupy
    return np


def to_numpy(xp: ArrayModule, array: Any) -> Any:
    """A host (NumPy) copy of an array of module ``xp``."""
    if xp is np:
        return np.asarray(array)
    return xp.asnumpy(array)


def top_k(
    user_factors: Any,
    item_factors: Any,
    k: int,
    exclude: CSRMatrix | None = None,
    *,
    xp: ArrayModule | None = None,
    batch_elements: int | None = None,
) -> tuple[Int64Array, Float32Array]:
    """Each user's k best items by dot product, best first.

    ``exclude`` is a CSR with one row per user over the items: its stored entries are left
    out of that user's ranking. Returns ``(indices, scores)``, both ``users x min(k, items)``
    NumPy arrays; a slot with nothing left to rank (every remaining item excluded) has index
    -1 and score -inf. Among equal scores the lower item index ranks first.

    Per batch of users (``batch_elements`` scores at a time; by default
    :data:`CPU_BATCH_ELEMENTS`, and at least :data:`CPU_MIN_BATCH_ROWS` users, with NumPy,
    :data:`GPU_BATCH_ELEMENTS` with CuPy):

    1. ``U @ Iᵀ`` in float32, into one reused buffer;
    2. excluded entries set to -inf through flat indices (no dense mask);
    3. the k-th best score of each row by ``partition`` (values only: NumPy's
       ``argpartition`` measured 3 to 7x slower on the skewed scores of a trained model);
    4. the items above it, and the first of those equal to it up to k (ties), taken with
       ``flatnonzero``; only these k are sorted.
    """
    xp = xp if xp is not None else array_module(prefer_gpu=True)
    n_users = int(user_factors.shape[0])
    n_items = int(item_factors.shape[0])
    k = max(0, min(int(k), n_items))
    indices_out = np.full((n_users, k), -1, dtype=np.int64)
    scores_out = np.full((n_users, k), -np.inf, dtype=np.float32)
    if k == 0 or n_users == 0:
        return indices_out, scores_out
    indptr: Int64Array | None = None
    excluded_rows = excluded_items = np.zeros(0, dtype=np.int64)
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude must be {n_users} x {n_items}, got {exclude.shape}")
        indptr = np.asarray(exclude.indptr, dtype=np.int64)
        excluded_items = np.asarray(exclude.indices, dtype=np.int64)
        excluded_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))

    if batch_elements is not None:
        batch = batch_elements // n_items
    elif xp is np:
        batch = max(CPU_MIN_BATCH_ROWS, CPU_BATCH_ELEMENTS // n_items)
    else:
        batch = GPU_BATCH_ELEMENTS // n_items
    batch = max(1, min(n_users, batch))
    items_t = xp.asarray(item_factors, dtype=xp.float32).T
    buffer = xp.empty((batch, n_items), dtype=xp.float32)
    kth = n_items - k  # ascending position of the k-th best score
    for start in range(0, n_users, batch):
        stop = min(start + batch, n_users)
        scores = buffer[: stop - start]
        xp.matmul(xp.asarray(user_factors[start:stop], dtype=xp.float32), items_t, out=scores)
        if indptr is not None and indptr[stop] > indptr[start]:
            lo, hi = int(indptr[start]), int(indptr[stop])
            flat = (excluded_rows[lo:hi] - start) * n_items + excluded_items[lo:hi]
            scores.reshape(-1)[xp.asarray(flat)] = -xp.inf
        candidates = _k_best_unordered(xp, scores, k, kth)
        candidate_scores = xp.take_along_axis(scores, candidates, axis=1)
        # Stable: equal scores keep the ascending item order flatnonzero gave them.
        order = _stable_argsort(xp, -candidate_scores)
        best = xp.take_along_axis(candidates, order, axis=1)
        best_scores = xp.take_along_axis(candidate_scores, order, axis=1)
        best = xp.where(best_scores == -xp.inf, -1, best)  # nothing left to rank there
        indices_out[start:stop] = to_numpy(xp, best)
        scores_out[start:stop] = to_numpy(xp, best_scores)
    return indices_out, scores_out


def _stable_argsort(xp: ArrayModule, values: Any) -> Any:
    """Row-wise stable argsort: CuPy's sort is always stable and older CuPy takes no
    ``kind``; NumPy's default is not stable."""
    if xp is np:
        return np.argsort(values, axis=1, kind="stable")
    return xp.argsort(values, axis=1)


def _k_best_unordered(xp: ArrayModule, scores: Any, k: int, kth: int) -> Any:
    """Column indices (rows x k, ascending within a row) of each row's k best scores.

    Everything above the row's k-th best score, then the lowest-indexed entries equal to
    it until there are k: exactly k per row, ties included."""
    rows, n_items = scores.shape
    if kth == 0:
        return xp.broadcast_to(xp.arange(n_items, dtype=xp.int64), (rows, n_items))
    threshold = xp.partition(scores, kth, axis=1)[:, kth : kth + 1]
    keep = scores >= threshold
    # Every row keeps at least k; exactly k in all means exactly k in each (a whole-array
    # count is far cheaper than one per row).
    if int(xp.count_nonzero(keep)) != rows * k:  # ties at some row's threshold
        keep = scores > threshold
        equal = scores == threshold
        wanted = k - xp.count_nonzero(keep, axis=1)
        keep |= equal & (xp.cumsum(equal, axis=1) <= wanted[:, None])
    # Flat positions (a 1-D nonzero is several times faster than a 2-D one), back to columns.
    flat = xp.flatnonzero(keep).reshape(rows, k)
    return flat - (xp.arange(rows, dtype=flat.dtype) * n_items)[:, None]


def similar_items(
    item_factors: Any, item_index: int, k: int, *, xp: ArrayModule | None = None
) -> tuple[Int64Array, Float32Array]:
    """The k items with the highest cosine similarity to one item, the item itself left
    out. Returns ``(indices, cosines)`` as NumPy arrays, best first."""
    xp = xp if xp is not None else array_module(prefer_gpu=True)
    factors = xp.asarray(item_factors, dtype=xp.float32)
    norms = xp.linalg.norm(factors, axis=1, keepdims=True)
    unit = factors / xp.where(norms > 0, norms, 1)
    n_items = int(factors.shape[0])
    itself = sp.csr_matrix(
        (np.ones(1, dtype=np.float32), (np.zeros(1, dtype=np.int64), np.array([item_index]))),
        shape=(1, n_items),
    )
    indices, scores = top_k(unit[item_index : item_index + 1], unit, k, exclude=itself, xp=xp)
    keep = indices[0] >= 0
    return indices[0][keep], scores[0][keep]


def popularity(weights: CSRMatrix) -> Float64Array:
    """How many distinct users interacted with each item (the most-popular baseline)."""
    matrix = sp.csr_matrix(weights)
    counts = np.bincount(matrix.indices[matrix.data > 0], minlength=matrix.shape[1])
    return counts.astype(np.float64)


class TrendingScorer:
    """Engagement with exponential time decay: the fallback for new and quiet users.

    An item's score is the sum over its interactions of ``signal weight ·
    0.5 ** (age / half_life)``, from the same interaction tuples as training, with the
    same :class:`MatrixConfig` (by default the same signal weights and a 2-day half-life:
    what is hot now, not this month).
    """

    def __init__(self, item_ids: Int64Array, scores: Float64Array) -> None:
        if len(item_ids) != len(scores):
            raise ValueError("one score per item")
        self.items = IdMap(item_ids)
        self.scores = np.asarray(scores, dtype=np.float64)

    @classmethod
    def from_interactions(
        cls,
        interactions: Iterable[Interaction | Sequence[Any]] | InteractionArrays,
        config: MatrixConfig | None = None,
        *,
        now: float | datetime | None = None,
    ) -> TrendingScorer:
        config = config or MatrixConfig(half_life_days=2.0)
        built = build_matrix(interactions, config, now=now)
        scores = np.asarray(built.matrix.sum(axis=0), dtype=np.float64).ravel()
        return cls(np.asarray(built.items.ids, dtype=np.int64), scores)

    def top(self, k: int, *, exclude_item_ids: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The k hottest items as ``(item_id, score)``, leaving out the given ids."""
        excluded = self.items.to_indices(np.fromiter(exclude_item_ids, dtype=np.int64))
        excluded = excluded[excluded >= 0]
        row = sp.csr_matrix(
            (np.ones(len(excluded), dtype=np.float32), (np.zeros(len(excluded)), excluded)),
            shape=(1, len(self.items)),
        )
        indices, scores = self.recommend(k, exclude=row, xp=np)
        return [
            (self.items.id_of(int(i)), float(s))
            for i, s in zip(indices[0], scores[0], strict=True)
            if i >= 0
        ]

    def recommend(
        self, k: int, exclude: CSRMatrix, *, xp: ArrayModule | None = None
    ) -> tuple[Int64Array, Float32Array]:
        """Top-k item indices per row of ``exclude`` (users x items), through
        :func:`top_k`: every user scores an item by its trending score."""
        users = np.ones((exclude.shape[0], 1), dtype=np.float32)
        return top_k(users, self.scores[:, None].astype(np.float32), k, exclude=exclude, xp=xp)
