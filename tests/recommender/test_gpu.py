"""The GPU path: run only where implicit has working CUDA and CuPy sees a device.

Without them (CI, and any machine without an NVIDIA GPU and the `gpu` extra) every test
here is skipped, with the reason.
"""

from __future__ import annotations

import logging

import implicit.gpu  # type: ignore[import-untyped]
import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender import scoring
from recommender.interactions import MatrixConfig, build_matrix
from recommender.model import ALSConfig, ALSRecommender, fit_factors
from recommender.scoring import array_module, top_k
from tests.recommender.conftest import NOW, PlantedClusters, cluster_of_item

needs_cuda = pytest.mark.skipif(
    not implicit.gpu.HAS_CUDA,
    reason="implicit.gpu.HAS_CUDA is false: no GPU, or the `gpu` extra (rmm-cu13) is missing",
)
needs_cupy = pytest.mark.skipif(
    scoring._cupy_with_cuda() is None, reason="CuPy with a CUDA device is not available"
)


@needs_cupy
def test_gpu_top_k_equals_the_cpu_path() -> None:
    xp = array_module(prefer_gpu=True)
    assert xp is not np
    rng = np.random.default_rng(11)
    users = rng.normal(size=(300, 16)).astype(np.float32)
    items = rng.normal(size=(2_000, 16)).astype(np.float32)
    exclude = sp.random(300, 2_000, density=0.05, format="csr", random_state=1, dtype=np.float32)
    exclude.data[:] = 1.0
    want_ids, want_scores = top_k(users, items, 20, exclude=exclude, xp=np)
    got_ids, got_scores = top_k(users, items, 20, exclude=exclude, xp=xp, batch_elements=1 << 16)
    assert isinstance(got_ids, np.ndarray)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-5)
    assert (got_ids == want_ids).mean() > 0.99  # float32 GEMM order may swap near-ties


@needs_cuda
def test_gpu_training_matches_cpu_training(
    clusters: PlantedClusters, caplog: pytest.LogCaptureFixture
) -> None:
    matrix = build_matrix(clusters.interactions, MatrixConfig(), now=NOW)
    config = ALSConfig(factors=8, regularization=1.0, alpha=3.0, iterations=15, seed=1)
    with caplog.at_level(logging.INFO, logger="recommender.model"):
        gpu_users, gpu_items, gpu_report = fit_factors(matrix.matrix, config)  # auto: the GPU
    assert gpu_report.device == "gpu"
    assert "ALS training on gpu" in caplog.text
    cpu_users, cpu_items, cpu_report = fit_factors(matrix.matrix, config, use_gpu=False)
    # Same confidences (alpha scaled here), same start: the same model, up to float32 noise.
    np.testing.assert_allclose(gpu_report.losses, cpu_report.losses, rtol=0.05)
    gpu_top, _ = top_k(gpu_users, gpu_items, 10, exclude=matrix.matrix, xp=np)
    cpu_top, _ = top_k(cpu_users, cpu_items, 10, exclude=matrix.matrix, xp=np)
    overlap = np.mean([len(set(g) & set(c)) / 10 for g, c in zip(gpu_top, cpu_top, strict=True)])
    assert overlap >= 0.8, overlap


@needs_cuda
def test_gpu_model_recovers_planted_clusters(clusters: PlantedClusters) -> None:
    matrix = build_matrix(clusters.interactions, MatrixConfig(), now=NOW)
    model, report = ALSRecommender.train(
        matrix, ALSConfig(factors=8, regularization=1.0, alpha=3.0, seed=1), use_gpu=True
    )
    assert report.device == "gpu"
    users = np.asarray(matrix.users.ids)
    ids, _ = model.recommend(users, 10, exclude=matrix.matrix)
    share = np.mean(
        [
            np.mean([cluster_of_item(int(i)) == clusters.cluster_of_user[int(u)] for i in row])
            for u, row in zip(users, ids, strict=True)
        ]
    )
    assert share >= 0.85, share
