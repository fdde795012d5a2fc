"""Batch scoring, written once against an array module: CuPy on a GPU, NumPy otherwise.

:func:`array_module` picks the module; :func:`top_k` scores users against items in
batches (``U @ Iᵀ``), masks each user's excluded items, takes the top k with
``argpartition`` and sorts only those. Results always come back as NumPy arrays. The same
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

# Scores held at once per batch (users x items), about 64 MiB of float32.
BATCH_ELEMENTS = 1 << 24


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
    batch_elements: int = BATCH_ELEMENTS,
) -> tuple[Int64Array, Float32Array]:
    """Each user's k best items by dot product, best first.

    ``exclude`` is a CSR with one row per user over the items: its stored entries are left
    out of that user's ranking. Returns ``(indices, scores)``, both ``users x min(k, items)``
    NumPy arrays; a slot with nothing left to rank (every remaining item excluded) has index
    -1 and score -inf. Ties at equal scores are broken arbitrarily.
    """
    xp = xp if xp is not None else array_module(prefer_gpu=True)
    n_users = int(user_factors.shape[0])
    n_items = int(item_factors.shape[0])
    k = max(0, min(int(k), n_items))
    indices_out = np.full((n_users, k), -1, dtype=np.int64)
    scores_out = np.full((n_users, k), -np.inf, dtype=np.float32)
    if k == 0 or n_users == 0:
        return indices_out, scores_out
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude must be {n_users} x {n_items}, got {exclude.shape}")

    items = xp.asarray(item_factors, dtype=xp.float32)
    batch = max(1, min(n_users, batch_elements // max(n_items, 1)))
    for start in range(0, n_users, batch):
        stop = min(start + batch, n_users)
        users = xp.asarray(user_factors[start:stop], dtype=xp.float32)
        scores = users @ items.T
        if exclude is not None:
            block = exclude[start:stop]
            if block.nnz:
                rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
                scores[xp.asarray(rows), xp.asarray(block.indices)] = -xp.inf
        if k < n_items:
            candidates = xp.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            candidates = xp.broadcast_to(xp.arange(n_items), (stop - start, n_items))
        candidate_scores = xp.take_along_axis(scores, candidates, axis=1)
        order = xp.argsort(-candidate_scores, axis=1)
        best = xp.take_along_axis(candidates, order, axis=1)
        best_scores = xp.take_along_axis(candidate_scores, order, axis=1)
        best = xp.where(best_scores == -xp.inf, -1, best)  # nothing left to rank there
        indices_out[start:stop] = to_numpy(xp, best)
        scores_out[start:stop] = to_numpy(xp, best_scores)
    return indices_out, scores_out


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
