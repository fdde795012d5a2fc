"""The user x item interaction matrix: what people did, as weights for implicit ALS.

Every interaction is a tuple ``(user_id, item_id, signal, timestamp)``: 64-bit ids as the
rest of Aperture mints them, one of the signal kinds in :class:`Signal`, and a Unix time in
seconds (or an aware ``datetime``). Each becomes a weight::

    weight = SignalWeights[signal] * 0.5 ** (age / half_life)

where ``age = now - timestamp`` (clamped at 0: a timestamp after ``now`` counts as fresh).
Weights of the same (user, item) pair add up. :class:`IdMap` maps the sparse 64-bit ids to
the dense row and column indices the matrix (and the model) use, and back.

The matrix holds *weights*; the model turns them into ALS confidences (``1 + alpha·weight``,
``recommender.model.confidence``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.signals import Signal

Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
# scipy ships no type information: a ``scipy.sparse.csr_matrix`` is ``Any`` to mypy.
CSRMatrix = Any

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class SignalWeights:
    """Confidence weight of one interaction of each kind, before time decay.

    Defaults, strongest intent first: a save (3.0) says "I want this again"; a comment (2.0)
    costs effort; a like (1.0) is the unit; a reel view (0.5) and a story view (0.25) are
    passive and mostly say the item was shown.
    """

    like: float = 1.0
    comment: float = 2.0
    save: float = 3.0
    reel_view: float = 0.5
    story_view: float = 0.25

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weight for {name!r} must be finite and >= 0, got {value}")

    def of(self, signal: Signal | str) -> float:
        return float(getattr(self, Signal(signal).value))

    def as_array(self) -> Float64Array:
        """Weights in the order of ``list(Signal)``, for vectorised lookups."""
        return np.array([self.of(s) for s in Signal], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MatrixConfig:
    """How interactions become weights: per-signal weights and the decay half-life.

    ``half_life_days=None`` turns decay off. The default, 30 days, halves the weight of a
    month-old like: Explore follows what a person likes now.
    """

    weights: SignalWeights = field(default_factory=SignalWeights)
    half_life_days: float | None = 30.0

    def __post_init__(self) -> None:
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0 or None, got {self.half_life_days}")

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.to_dict(), "half_life_days": self.half_life_days}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatrixConfig:
        return cls(
            weights=SignalWeights(**data["weights"]),
            half_life_days=data["half_life_days"],
        )


class Interaction(NamedTuple):
    user_id: int
    item_id: int
    signal: Signal | str
    timestamp: float | datetime


def decay(age_seconds: Float64Array, half_life_days: float | None) -> Float64Array:
    """``0.5 ** (age / half_life)``, with ages below 0 counted as 0; 1 everywhere when off."""
    if half_life_days is None:
        return np.ones_like(age_seconds, dtype=np.float64)
    age = np.maximum(age_seconds, 0.0)
    return np.exp2(-age / (half_life_days * SECONDS_PER_DAY))


class IdMap:
    """External 64-bit ids ↔ dense indices 0..n-1, in the order the ids were added.

    Vectorised lookups (:meth:`to_indices`) go through a sorted copy of the ids; the
    one-id lookups (:meth:`get`, :meth:`index_of`, ``in``, :meth:`add`) through a dict that
    is built on first use, so a map made for a training run that never asks costs no
    Python loop over its ids.
    """

    __slots__ = ("_ids", "_index", "_sorted_ids", "_sorted_pos")

    def __init__(self, ids: Iterable[int] | Int64Array = ()) -> None:
        array = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        array = array.reshape(-1).copy()
        order = np.argsort(array, kind="stable")
        ordered = array[order]
        if len(ordered) > 1 and not bool((ordered[1:] != ordered[:-1]).all()):
            raise ValueError("ids must be unique")
        self._ids: Int64Array = array
        self._index: dict[int, int] | None = None
        self._sorted_ids: Int64Array | None = ordered
        self._sorted_pos: Int64Array | None = order.astype(np.int64, copy=False)

    @classmethod
    def from_sorted_unique(cls, ids: Int64Array) -> IdMap:
        """A map over ids already strictly ascending (what ``np.unique`` returns), without
        checking or sorting them again: index i is the i-th smallest id."""
        self = cls.__new__(cls)
        self._ids = np.asarray(ids, dtype=np.int64)
        self._index = None
        self._sorted_ids = self._ids
        self._sorted_pos = np.arange(len(self._ids), dtype=np.int64)
        return self

    def _lookup(self) -> dict[int, int]:
        if self._index is None:
            self._index = dict(zip(self._ids.tolist(), range(len(self._ids)), strict=True))
        return self._index

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return isinstance(external_id, int | np.integer) and int(external_id) in self._lookup()

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash(self._ids.tobytes())

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"

    @property
    def ids(self) -> Int64Array:
        """The external ids, by dense index (a read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def index_of(self, external_id: int) -> int:
        """The dense index of an id; ``KeyError`` when unknown."""
        return self._lookup()[int(external_id)]

    def get(self, external_id: int) -> int | None:
        return self._lookup().get(int(external_id))

    def id_of(self, index: int) -> int:
        return int(self._ids[index])

    def to_ids(self, indices: npt.ArrayLike) -> Int64Array:
        """Dense indices → external ids (vectorised; any shape)."""
        return self._ids[np.asarray(indices, dtype=np.int64)]

    def to_indices(self, external_ids: npt.ArrayLike) -> Int64Array:
        """External ids → dense indices (vectorised); -1 for an unknown id."""
        query = np.asarray(external_ids, dtype=np.int64)
        if self._sorted_ids is None or self._sorted_pos is None:
            order = np.argsort(self._ids, kind="stable")
            self._sorted_ids, self._sorted_pos = self._ids[order], order.astype(np.int64)
        if len(self._sorted_ids) == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        at = np.searchsorted(self._sorted_ids, query)
        at_clipped = np.minimum(at, len(self._sorted_ids) - 1)
        found = self._sorted_ids[at_clipped] == query
        return np.where(found, self._sorted_pos[at_clipped], -1).astype(np.int64)

    def add(self, external_id: int) -> int:
        """The index of an id, appended at the end when new."""
        lookup = self._lookup()
        known = lookup.get(int(external_id))
        if known is not None:
            return known
        index = len(self._ids)
        self._ids = np.append(self._ids, np.int64(external_id))
        lookup[int(external_id)] = index
        self._sorted_ids = self._sorted_pos = None
        return index

    def copy(self) -> IdMap:
        """An independent map with the same ids (the sorted arrays, never written in
        place, are shared; the dict is copied only if it was built)."""
        other = IdMap.__new__(IdMap)
        other._ids = self._ids.copy()
        other._index = None if self._index is None else dict(self._index)
        other._sorted_ids, other._sorted_pos = self._sorted_ids, self._sorted_pos
        if self._sorted_ids is self._ids:  # from_sorted_unique: keep the alias on the copy
            other._sorted_ids = other._ids
        return other


@dataclass(slots=True)
class InteractionMatrix:
    """Weights of what each user did with each item: a float32 CSR, users x items."""

    matrix: CSRMatrix
    users: IdMap
    items: IdMap
    config: MatrixConfig
    now: float

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.matrix.shape
        return int(rows), int(cols)

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def row(self, user_id: int) -> CSRMatrix:
        """One user's weights as a 1 x items CSR (empty for an unknown user)."""
        index = self.users.get(user_id)
        if index is None:
            return sp.csr_matrix((1, len(self.items)), dtype=np.float32)
        return self.matrix[index]


@dataclass(frozen=True, slots=True)
class InteractionArrays:
    """Interactions column by column (what :func:`build_matrix` works on)."""

    user_ids: Int64Array
    item_ids: Int64Array
    signals: npt.NDArray[np.int8]  # index into ``list(Signal)``
    timestamps: Float64Array  # Unix seconds

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_tuples(cls, interactions: Iterable[Interaction | Sequence[Any]]) -> InteractionArrays:
        # A Signal is a StrEnum, equal to and hashing as its value: one dict lookup serves
        # both spellings, with no Signal(...) construction per row.
        kinds: dict[object, int] = {s.value: i for i, s in enumerate(Signal)}
        users: list[int] = []
        items: list[int] = []
        signals: list[int] = []
        stamps: list[float] = []
        for user_id, item_id, signal, timestamp in interactions:
            users.append(user_id)
            items.append(item_id)
            kind = kinds.get(signal)
            if kind is None:
                raise ValueError(f"unknown signal kind {signal!r}")
            signals.append(kind)
            stamps.append(timestamp if type(timestamp) is float else _seconds(timestamp))
        return cls(
            user_ids=np.asarray(users, dtype=np.int64),
            item_ids=np.asarray(items, dtype=np.int64),
            signals=np.asarray(signals, dtype=np.int8),
            timestamps=np.asarray(stamps, dtype=np.float64),
        )

    def weights(self, config: MatrixConfig, now: float) -> Float64Array:
        """Each interaction's decayed weight."""
        kind_weight = config.weights.as_array()[self.signals.astype(np.intp)]
        return kind_weight * decay(now - self.timestamps, config.half_life_days)


def _seconds(timestamp: float | datetime) -> float:
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware datetimes or Unix seconds")
        return timestamp.timestamp()
    return float(timestamp)


def build_matrix(
    interactions: Iterable[Interaction | Sequence[Any]] | InteractionArrays,
    config: MatrixConfig | None = None,
    *,
    now: float | datetime | None = None,
    users: IdMap | None = None,
    items: IdMap | None = None,
) -> InteractionMatrix:
    """The weight matrix of these interactions.

    ``now`` is the time ages are measured from; by default the latest timestamp, so the
    same data always gives the same matrix. Given ``users``/``items`` maps, rows and columns
    follow them and interactions with unknown ids are dropped; otherwise the maps are made
    from the ids seen, sorted ascending.
    """
    config = config or MatrixConfig()
    arrays = (
        interactions
        if isinstance(interactions, InteractionArrays)
        else InteractionArrays.from_tuples(interactions)
    )
    if now is None:
        reference = float(arrays.timestamps.max()) if len(arrays) else 0.0
    else:
        reference = _seconds(now)
    weights = arrays.weights(config, reference)

    user_map, rows = _dense(arrays.user_ids, users)
    item_map, cols = _dense(arrays.item_ids, items)
    data = weights.astype(np.float32)
    keep = data > 0
    if users is not None:
        keep &= rows >= 0
    if items is not None:
        keep &= cols >= 0
    if not bool(keep.all()):
        data, rows, cols = data[keep], rows[keep], cols[keep]
    # COO → CSR sums duplicate (user, item) pairs (in float32) and sorts each row's
    # columns: the result is canonical, ready for implicit without another pass.
    matrix = sp.coo_matrix(
        (data, (rows, cols)), shape=(len(user_map), len(item_map)), dtype=np.float32
    ).tocsr()
    matrix.sum_duplicates()  # no-ops on a canonical matrix; kept as the guarantee
    matrix.sort_indices()
    return InteractionMatrix(
        matrix=matrix, users=user_map, items=item_map, config=config, now=reference
    )


def _dense(ids: Int64Array, given: IdMap | None) -> tuple[IdMap, Int64Array]:
    """The map for one axis and every interaction's index on it (-1 when a given map does
    not know the id). Without a map, one ``np.unique`` gives both the ascending ids and the
    indices, with no second lookup (a ``searchsorted`` of every id took 3x as long)."""
    if given is not None:
        return given, given.to_indices(ids)
    unique, inverse = np.unique(ids, return_inverse=True)
    return IdMap.from_sorted_unique(unique), inverse.reshape(-1)
