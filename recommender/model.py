"""Training, saving and folding users into implicit's ALS, the same on the CPU and the GPU.

- **Which device.** The GPU is used only when ``implicit.gpu.HAS_CUDA`` is true. Importing
  ``implicit.gpu`` succeeds without working CUDA (a library mismatch only warns), so the
  import proves nothing. The log line ``ALS training on cpu|gpu`` says which path ran.
- **Confidence.** implicit's GPU ``fit()`` ignores ``alpha`` (implicit#441), so this module
  scales confidences itself, ``C = 1 + alpha·weight``, and always passes ``alpha=1.0``; the
  initial factors are drawn here too, from the seed. CPU and GPU then solve the same
  problem from the same start.
- **Loss and progress.** ``calculate_training_loss`` and implicit's per-iteration
  ``callback``; :class:`IterationReport` goes to the caller's progress callback.
- **Artifact.** :meth:`ALSRecommender.to_bytes` / :meth:`ALSRecommender.from_bytes`: one
  ``.npz`` (factors, id maps, configs as JSON, format and model versions), ready to put in
  object storage under its version.
- **Fold-in.** ``partial_fit_users`` of implicit 0.7.3 (it solves the user's least squares
  against the fixed item factors, stores the result, and grows the user table for a new
  user; ``recalculate_user`` computes the same factors without storing them).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import implicit.cpu.als  # type: ignore[import-untyped]
import implicit.gpu  # type: ignore[import-untyped]
import implicit.gpu.als  # type: ignore[import-untyped]
import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from recommender.interactions import (
    CSRMatrix,
    Float32Array,
    IdMap,
    Int64Array,
    Interaction,
    InteractionArrays,
    InteractionMatrix,
    MatrixConfig,
    build_matrix,
)
from recommender.scoring import ArrayModule, array_module, similar_items, top_k

log = logging.getLogger("recommender.model")

ARTIFACT_FORMAT = "aperture-als/1"
Device = Literal["cpu", "gpu"]


@dataclass(frozen=True, slots=True)
class ALSConfig:
    """Hyperparameters of one ALS model.

    ``alpha`` scales weights into confidences (``1 + alpha·weight``, Hu, Koren and Volinsky
    2008); implicit itself always gets ``alpha=1.0``. ``num_threads=0`` uses every core.
    """

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0
    num_threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ALSConfig:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class IterationReport:
    """One finished ALS iteration (1-based), for a progress bar."""

    iteration: int
    iterations: int
    seconds: float
    loss: float | None


@dataclass(frozen=True, slots=True)
class TrainingReport:
    device: Device
    seconds: float
    iterations: list[IterationReport] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [r.loss for r in self.iterations if r.loss is not None]


@dataclass(frozen=True, slots=True)
class FoldInReport:
    user_id: int
    new_user: bool
    interactions: int
    seconds: float


ProgressCallback = Callable[[IterationReport], None]


def gpu_available() -> bool:
    """Whether implicit can really train on a GPU (not just whether it imported)."""
    return bool(implicit.gpu.HAS_CUDA)


def choose_device(use_gpu: bool | None) -> Device:
    """``None``: the GPU when implicit has working CUDA. ``True`` fails without it."""
    if use_gpu is None:
        return "gpu" if gpu_available() else "cpu"
    if use_gpu and not gpu_available():
        raise RuntimeError(
            "GPU training asked for, but implicit.gpu.HAS_CUDA is false: install the `gpu` "
            "extra (rmm-cu13 26.2 or 26.4) on a machine with an NVIDIA GPU"
        )
    return "gpu" if use_gpu else "cpu"


def confidence(weights: CSRMatrix, alpha: float) -> CSRMatrix:
    """``1 + alpha·w`` on the stored entries; absent entries stay absent (confidence 1)."""
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    csr = sp.csr_matrix(weights)  # no copy when it already is one
    # One float32 pass over the stored values, computed in place; the structure is copied
    # once (not twice, as ``tocsr(copy=True).astype(...)`` did).
    data = np.array(csr.data, dtype=np.float32)
    data *= np.float32(alpha)
    data += np.float32(1.0)
    scaled = sp.csr_matrix((data, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    scaled.has_sorted_indices = csr.has_sorted_indices
    return scaled


def initial_factors(rows: int, factors: int, rng: np.random.Generator) -> Float32Array:
    """Small random starting factors (implicit's CPU scale), the same for either device."""
    start = rng.random((rows, factors), dtype=np.float32)
    start *= np.float32(0.01)
    return start


def fit_factors(
    weights: CSRMatrix,
    config: ALSConfig,
    *,
    use_gpu: bool | None = None,
    progress: ProgressCallback | None = None,
    calculate_training_loss: bool = True,
) -> tuple[Float32Array, Float32Array, TrainingReport]:
    """Train ALS on a users x items weight matrix; user and item factors as numpy arrays."""
    device = choose_device(use_gpu)
    conf = confidence(weights, config.alpha)
    users, items = conf.shape
    rng = np.random.default_rng(config.seed)
    user_start = initial_factors(users, config.factors, rng)
    item_start = initial_factors(items, config.factors, rng)

    with threadpool_limits(limits=1, user_api="blas"):
        # implicit threads itself; BLAS threads on top oversubscribe the cores (and implicit
        # warns about it when the model is made).
        return _fit(conf, config, device, user_start, item_start, progress, calculate_training_loss)


def _fit(
    conf: CSRMatrix,
    config: ALSConfig,
    device: Device,
    user_start: Float32Array,
    item_start: Float32Array,
    progress: ProgressCallback | None,
    calculate_training_loss: bool,
) -> tuple[Float32Array, Float32Array, TrainingReport]:
    users, items = conf.shape
    model: Any
    if device == "gpu":
        model = implicit.gpu.als.AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.regularization,
            alpha=1.0,
            iterations=config.iterations,
            calculate_training_loss=calculate_training_loss,
            random_state=config.seed,
        )
        model.user_factors = implicit.gpu.Matrix(user_start)
        model.item_factors = implicit.gpu.Matrix(item_start)
    else:
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.regularization,
            alpha=1.0,
            iterations=config.iterations,
            calculate_training_loss=calculate_training_loss,
            num_threads=config.num_threads,
            random_state=config.seed,
        )
        model.user_factors = user_start
        model.item_factors = item_start

    log.info(
        "ALS training on %s: %d users x %d items, %d interactions, factors=%d, "
        "regularization=%g, alpha=%g, iterations=%d",
        device,
        users,
        items,
        conf.nnz,
        config.factors,
        config.regularization,
        config.alpha,
        config.iterations,
    )
    reports: list[IterationReport] = []

    def on_iteration(iteration: int, seconds: float, loss: float | None) -> None:
        report = IterationReport(
            iteration=iteration + 1,
            iterations=config.iterations,
            seconds=float(seconds),
            loss=None if loss is None else float(loss),
        )
        reports.append(report)
        if report.loss is not None:
            log.debug("ALS iteration %d/%d loss %.6f", report.iteration, config.iterations, loss)
        if progress is not None:
            progress(report)

    started = time.perf_counter()
    model.fit(conf, show_progress=False, callback=on_iteration)
    seconds = time.perf_counter() - started
    if device == "gpu":
        model = model.to_cpu()
    user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    final = reports[-1].loss if reports else None
    log.info(
        "ALS trained on %s in %.2fs (%.3fs per iteration), final loss %s",
        device,
        seconds,
        seconds / max(config.iterations, 1),
        "n/a" if final is None else f"{final:.6f}",
    )
    return user_factors, item_factors, TrainingReport(device, seconds, reports)


class ALSRecommender:
    """A trained model: factors, the id maps, how it was built, and a version."""

    def __init__(
        self,
        *,
        user_factors: Float32Array,
        item_factors: Float32Array,
        users: IdMap,
        items: IdMap,
        config: ALSConfig,
        matrix_config: MatrixConfig,
        version: str | None = None,
        trained_at: datetime | None = None,
    ) -> None:
        if user_factors.shape != (len(users), config.factors):
            raise ValueError("user_factors must have one row per user and config.factors columns")
        if item_factors.shape != (len(items), config.factors):
            raise ValueError("item_factors must have one row per item and config.factors columns")
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.users = users
        self.items = items
        self.config = config
        self.matrix_config = matrix_config
        self.trained_at = trained_at or datetime.now(UTC)
        self.version = version or _new_version(self.trained_at)
        self._solver: Any = None

    def __repr__(self) -> str:
        return (
            f"ALSRecommender(version={self.version!r}, users={len(self.users)}, "
            f"items={len(self.items)}, factors={self.config.factors})"
        )

    # -- training --------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        interactions: InteractionMatrix,
        config: ALSConfig | None = None,
        *,
        use_gpu: bool | None = None,
        progress: ProgressCallback | None = None,
        calculate_training_loss: bool = True,
    ) -> tuple[ALSRecommender, TrainingReport]:
        config = config or ALSConfig()
        user_factors, item_factors, report = fit_factors(
            interactions.matrix,
            config,
            use_gpu=use_gpu,
            progress=progress,
            calculate_training_loss=calculate_training_loss,
        )
        model = cls(
            user_factors=user_factors,
            item_factors=item_factors,
            users=interactions.users.copy(),
            items=interactions.items.copy(),
            config=config,
            matrix_config=interactions.config,
        )
        return model, report

    # -- scoring ---------------------------------------------------------------------------

    def recommend(
        self,
        user_ids: Sequence[int] | Int64Array,
        k: int,
        *,
        exclude: CSRMatrix | None = None,
        xp: ArrayModule | None = None,
    ) -> tuple[Int64Array, Float32Array]:
        """Top-k item ids and scores per user, best first. ``exclude`` (optional) is a CSR
        with one row per asked user over this model's items: what to leave out (their own
        interactions, say). Unknown users get ids -1 and scores -inf."""
        rows = self.users.to_indices(np.asarray(user_ids, dtype=np.int64))
        known = rows >= 0
        factors = np.zeros((len(rows), self.config.factors), dtype=np.float32)
        factors[known] = self.user_factors[rows[known]]
        indices, scores = top_k(factors, self.item_factors, k, exclude=exclude, xp=xp)
        ids = np.where(indices >= 0, self.items.to_ids(np.maximum(indices, 0)), -1)
        ids[~known] = -1
        scores[~known] = -np.inf
        return ids.astype(np.int64), scores

    def similar_items(
        self, item_id: int, k: int, *, xp: ArrayModule | None = None
    ) -> tuple[Int64Array, Float32Array]:
        """The k items nearest to one item by cosine of item factors (itself left out)."""
        index = self.items.index_of(item_id)
        indices, scores = similar_items(self.item_factors, index, k, xp=xp)
        return self.items.to_ids(indices), scores

    # -- fold-in ---------------------------------------------------------------------------

    def _implicit_model(self, index: int) -> Any:
        """implicit's model for fold-in, its user table ready to hold row ``index``.

        That table is a buffer with spare rows and ``self.user_factors`` a view of its
        first ``len(self.users)``: ``partial_fit_users`` then writes a new user's row in
        place instead of concatenating a copy of the whole table per new user (6.5 ms a
        user at 250,000 people x 64 factors; the growth is now amortised)."""
        if self._solver is None:
            with threadpool_limits(limits=1, user_api="blas"):
                solver = self._make_solver()
            solver.item_factors = self.item_factors
            self._solver = solver
        buffer = self._solver.user_factors
        current = self.user_factors
        if not (isinstance(buffer, np.ndarray) and current.base is buffer) or index >= len(buffer):
            # First fold-in, the table outgrown, or user_factors replaced from outside.
            rows = max(index + 1, len(current) + max(1024, len(current) // 4))
            buffer = np.zeros((rows, current.shape[1]), dtype=np.float32)
            buffer[: len(current)] = current
            self._solver.user_factors = buffer
        return self._solver

    def _make_solver(self) -> Any:
        return implicit.cpu.als.AlternatingLeastSquares(
            factors=self.config.factors,
            regularization=self.config.regularization,
            alpha=1.0,
            iterations=self.config.iterations,
            # One user's solve is tiny: a thread pool costs more than it saves (measured
            # 15 ms with two threads on a busy 2-core machine against 0.1 ms with one).
            num_threads=1,
        )

    def fold_in_weights(self, user_id: int, weights: CSRMatrix) -> FoldInReport:
        """Fold one user in from their weight row (1 x this model's items), no retrain.

        A new user gets a new row; a known one has theirs recomputed from this row alone
        (pass every interaction of theirs, not just the new ones).
        """
        row = sp.csr_matrix(weights, dtype=np.float32)
        if row.shape != (1, len(self.items)):
            raise ValueError(f"weights must be 1 x {len(self.items)}, got {row.shape}")
        started = time.perf_counter()
        known = self.users.get(user_id)
        index = len(self.users) if known is None else known
        solver = self._implicit_model(index)
        # Writes the row in place (a new user's is one of the buffer's spare rows).
        solver.partial_fit_users(np.array([index]), confidence(row, self.config.alpha))
        self.users.add(user_id)
        self.user_factors = solver.user_factors[: len(self.users)]
        new_user = known is None
        seconds = time.perf_counter() - started
        log.debug("folded in user %d (%d interactions) in %.2f ms", user_id, row.nnz, seconds * 1e3)
        return FoldInReport(
            user_id=user_id, new_user=new_user, interactions=int(row.nnz), seconds=seconds
        )

    def fold_in(
        self,
        user_id: int,
        interactions: Iterable[Interaction | Sequence[Any]] | InteractionArrays,
        *,
        now: float | datetime | None = None,
    ) -> FoldInReport:
        """Fold one user in from their interactions, weighted as the training data was.
        Items the model does not know are ignored."""
        built = build_matrix(
            interactions,
            self.matrix_config,
            now=now,
            users=IdMap([user_id]),
            items=self.items,
        )
        return self.fold_in_weights(user_id, built.matrix)

    # -- the artifact ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as one compressed ``.npz``, for object storage."""
        meta = {
            "format": ARTIFACT_FORMAT,
            "version": self.version,
            "trained_at": self.trained_at.isoformat(),
            "config": self.config.to_dict(),
            "matrix_config": self.matrix_config.to_dict(),
            "implicit": str(getattr(implicit, "__version__", "unknown")),
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            user_ids=np.asarray(self.users.ids, dtype=np.int64),
            item_ids=np.asarray(self.items.ids, dtype=np.int64),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ALSRecommender:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(bytes(archive["meta"]).decode())
            if meta.get("format") != ARTIFACT_FORMAT:
                raise ValueError(f"not an {ARTIFACT_FORMAT} artifact: {meta.get('format')!r}")
            return cls(
                user_factors=np.array(archive["user_factors"], dtype=np.float32),
                item_factors=np.array(archive["item_factors"], dtype=np.float32),
                users=IdMap(np.array(archive["user_ids"], dtype=np.int64)),
                items=IdMap(np.array(archive["item_ids"], dtype=np.int64)),
                config=ALSConfig.from_dict(meta["config"]),
                matrix_config=MatrixConfig.from_dict(meta["matrix_config"]),
                version=str(meta["version"]),
                trained_at=datetime.fromisoformat(meta["trained_at"]),
            )


def _new_version(trained_at: datetime) -> str:
    """Sortable by time, unique: ``20261204T174400Z-1a2b3c4d``."""
    return f"{trained_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def default_xp() -> ArrayModule:
    """The array module batch scoring uses by default (CuPy with CUDA, else NumPy)."""
    return array_module(prefer_gpu=True)


__all__ = [
    "ARTIFACT_FORMAT",
    "ALSConfig",
    "ALSRecommender",
    "FoldInReport",
    "IterationReport",
    "ProgressCallback",
    "TrainingReport",
    "choose_device",
    "confidence",
    "default_xp",
    "fit_factors",
    "gpu_available",
]
