"""ALS training, the artifact, fold-in and device choice, on planted taste clusters."""

from __future__ import annotations

import logging

import implicit.cpu.als  # type: ignore[import-untyped]
import implicit.gpu  # type: ignore[import-untyped]
import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recommender.interactions import Interaction, MatrixConfig, SignalWeights, build_matrix
from recommender.model import (
    ALSConfig,
    ALSRecommender,
    IterationReport,
    choose_device,
    confidence,
    fit_factors,
)
from recommender.scoring import TrendingScorer, top_k
from tests.recommender.conftest import (
    CLUSTERS,
    NOW,
    USERS_PER_CLUSTER,
    PlantedClusters,
    cluster_items,
    cluster_of_item,
    user_id,
)


def in_cluster_share(item_ids: np.ndarray, cluster: int, *, niche_only: bool = False) -> float:
    """Share of the items that belong to the cluster; ``niche_only``: of the items that are
    not globally popular."""
    kinds = [cluster_of_item(int(i)) for i in item_ids if i >= 0]
    if niche_only:
        kinds = [k for k in kinds if k is not None]
    return sum(k == cluster for k in kinds) / max(len(kinds), 1)


def test_als_recovers_planted_clusters_and_popularity_does_not(
    clusters: PlantedClusters, cluster_model: ALSRecommender
) -> None:
    matrix = build_matrix(clusters.interactions, MatrixConfig(), now=NOW)
    users = np.asarray(matrix.users.ids)
    # Every user's ranking leaves out what they already interacted with.
    ids, _ = cluster_model.recommend(users, 10, exclude=matrix.matrix)
    als_share = np.mean(
        [in_cluster_share(ids[i], clusters.cluster_of_user[int(u)]) for i, u in enumerate(users)]
    )
    # The rest of a top 10 is the one or two popular items a user has not seen yet.
    als_niche_share = np.mean(
        [
            in_cluster_share(ids[i], clusters.cluster_of_user[int(u)], niche_only=True)
            for i, u in enumerate(users)
        ]
    )
    trending = TrendingScorer.from_interactions(clusters.interactions, MatrixConfig(), now=NOW)
    popular_ids, _ = trending.recommend(10, matrix.matrix)
    popular_share = np.mean(
        [
            in_cluster_share(
                trending.items.to_ids(popular_ids[i]), clusters.cluster_of_user[int(u)]
            )
            for i, u in enumerate(users)
        ]
    )
    assert als_share >= 0.85, als_share
    assert als_niche_share >= 0.97, als_niche_share
    assert popular_share <= 0.5, popular_share


def test_training_reports_loss_per_iteration_and_the_cpu_path(
    clusters: PlantedClusters, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", False)
    matrix = build_matrix(clusters.interactions, now=NOW)
    seen: list[IterationReport] = []
    with caplog.at_level(logging.INFO, logger="recommender.model"):
        _, report = ALSRecommender.train(
            matrix, ALSConfig(factors=8, iterations=6), progress=seen.append
        )
    assert report.device == "cpu"
    assert [r.iteration for r in seen] == [1, 2, 3, 4, 5, 6]
    assert all(r.iterations == 6 and r.loss is not None and r.seconds >= 0 for r in seen)
    assert report.losses[-1] < report.losses[0]
    assert "ALS training on cpu" in caplog.text


def test_device_choice_trusts_has_cuda_not_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", False)
    assert choose_device(None) == "cpu"
    assert choose_device(False) == "cpu"
    with pytest.raises(RuntimeError, match="HAS_CUDA"):
        choose_device(True)
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", True)
    assert choose_device(None) == "gpu"
    assert choose_device(False) == "cpu"


def test_confidence_is_one_plus_alpha_weight_and_implicit_gets_alpha_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights = sp.csr_matrix(np.array([[0.0, 2.0], [0.5, 0.0]], dtype=np.float32))
    assert confidence(weights, 10.0).toarray().tolist() == [[0.0, 21.0], [6.0, 0.0]]
    assert weights.toarray().tolist() == [[0.0, 2.0], [0.5, 0.0]]  # not modified

    made: list[float] = []
    real = implicit.cpu.als.AlternatingLeastSquares

    def spy(*args: object, **kwargs: object) -> object:
        made.append(float(kwargs["alpha"]))  # type: ignore[arg-type]
        return real(*args, **kwargs)

    monkeypatch.setattr(implicit.cpu.als, "AlternatingLeastSquares", spy)
    fit_factors(weights, ALSConfig(factors=2, alpha=40.0, iterations=1), use_gpu=False)
    assert made == [1.0]


def test_signal_weights_reach_the_model(clusters: PlantedClusters) -> None:
    """Changing a weight changes the confidences the model trains on."""
    base = build_matrix(clusters.interactions, now=NOW)
    heavy = build_matrix(clusters.interactions, MatrixConfig(SignalWeights(save=30.0)), now=NOW)
    assert (heavy.matrix != base.matrix).nnz > 0
    a, _, _ = fit_factors(base.matrix, ALSConfig(factors=4, iterations=2), use_gpu=False)
    b, _, _ = fit_factors(heavy.matrix, ALSConfig(factors=4, iterations=2), use_gpu=False)
    assert not np.allclose(a, b)


def test_same_seed_same_model(clusters: PlantedClusters) -> None:
    matrix = build_matrix(clusters.interactions, now=NOW)
    config = ALSConfig(factors=8, iterations=3, seed=42, num_threads=1)
    a, ai, _ = fit_factors(matrix.matrix, config, use_gpu=False)
    b, bi, _ = fit_factors(matrix.matrix, config, use_gpu=False)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ai, bi)


def test_artifact_round_trip_gives_identical_scores(
    clusters: PlantedClusters, cluster_model: ALSRecommender
) -> None:
    data = cluster_model.to_bytes()
    assert isinstance(data, bytes)
    loaded = ALSRecommender.from_bytes(data)
    assert loaded.version == cluster_model.version
    assert loaded.trained_at == cluster_model.trained_at
    assert loaded.config == cluster_model.config
    assert loaded.matrix_config == cluster_model.matrix_config
    assert loaded.users == cluster_model.users
    assert loaded.items == cluster_model.items
    users = np.asarray(cluster_model.users.ids)
    matrix = build_matrix(clusters.interactions, now=NOW)
    want = cluster_model.recommend(users, 10, exclude=matrix.matrix)
    got = loaded.recommend(users, 10, exclude=matrix.matrix)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    item = int(cluster_model.items.ids[0])
    np.testing.assert_array_equal(
        loaded.similar_items(item, 5)[0], cluster_model.similar_items(item, 5)[0]
    )


def test_artifact_refuses_other_formats(cluster_model: ALSRecommender) -> None:
    import io
    import json

    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps({"format": "other/9"}).encode(), np.uint8))
    with pytest.raises(ValueError, match="aperture-als/1"):
        ALSRecommender.from_bytes(buffer.getvalue())


def test_versions_are_unique_and_sortable(cluster_model: ALSRecommender) -> None:
    other = ALSRecommender.from_bytes(cluster_model.to_bytes())
    other.version = ALSRecommender(
        user_factors=other.user_factors,
        item_factors=other.item_factors,
        users=other.users,
        items=other.items,
        config=other.config,
        matrix_config=other.matrix_config,
    ).version
    assert other.version != cluster_model.version
    assert other.version[:16] >= cluster_model.version[:16]


@pytest.mark.parametrize("cluster", range(CLUSTERS))
def test_fold_in_moves_a_new_user_into_their_cluster_without_retraining(
    cluster_model: ALSRecommender, cluster: int
) -> None:
    model = ALSRecommender.from_bytes(cluster_model.to_bytes())  # the fixture stays untouched
    items_before = model.item_factors.copy()
    newcomer = user_id(cluster, USERS_PER_CLUSTER + 500)
    ids, _ = model.recommend([newcomer], 10)
    assert (ids == -1).all()  # unknown before the fold-in

    first_likes = cluster_items(cluster)[:3]
    report = model.fold_in(newcomer, [Interaction(newcomer, i, "like", NOW) for i in first_likes])
    assert report.new_user
    assert report.interactions == 3
    assert report.seconds < 1.0

    row = sp.csr_matrix(
        (np.ones(3), ([0, 0, 0], model.items.to_indices(first_likes))), shape=(1, len(model.items))
    )
    ids, _ = model.recommend([newcomer], 10, exclude=row)
    assert in_cluster_share(ids[0], cluster) >= 0.8
    np.testing.assert_array_equal(model.item_factors, items_before)  # no retrain
    assert len(model.users) == len(cluster_model.users) + 1


def test_fold_in_of_a_known_user_recomputes_their_row(
    clusters: PlantedClusters, cluster_model: ALSRecommender
) -> None:
    model = ALSRecommender.from_bytes(cluster_model.to_bytes())
    user = user_id(0, 0)
    # Their whole history, plus a burst of saves of cluster 2's items: taste moves.
    history = [r for r in clusters.interactions if r.user_id == user]
    burst = [Interaction(user, i, "save", NOW) for i in cluster_items(2)[:12]]
    report = model.fold_in(user, history + burst, now=NOW)
    assert not report.new_user
    assert len(model.users) == len(cluster_model.users)
    before = cluster_model.recommend([user], 10)[0][0]
    after = model.recommend([user], 10)[0][0]
    assert in_cluster_share(after, 2) > in_cluster_share(before, 2)


def test_fold_in_matches_recalculate_user(cluster_model: ALSRecommender) -> None:
    """partial_fit_users stores what recalculate_user computes: the exact least squares."""
    model = ALSRecommender.from_bytes(cluster_model.to_bytes())
    row = sp.csr_matrix(
        (np.array([1.0, 3.0]), ([0, 0], [0, 40])), shape=(1, len(model.items)), dtype=np.float32
    )
    model.fold_in_weights(123, row)
    solver = model._solver
    expected = solver.recalculate_user(0, confidence(row, model.config.alpha))
    np.testing.assert_allclose(model.user_factors[model.users.index_of(123)], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="1 x"):
        model.fold_in_weights(124, sp.csr_matrix((1, 3)))


def test_many_fold_ins_grow_the_user_table_and_keep_every_row(
    cluster_model: ALSRecommender,
) -> None:
    """The user table grows in steps (spare rows, not a copy per user): past the first
    step every new user's row is still its exact least squares, known users' rows are
    untouched, and the artifact holds exactly the users there are."""
    model = ALSRecommender.from_bytes(cluster_model.to_bytes())
    before = model.user_factors.copy()
    rng = np.random.default_rng(8)
    rows = {}
    for n in range(1_500):  # more than the first step of 1,024 spare rows
        picks = rng.choice(len(model.items), size=3, replace=False)
        row = sp.csr_matrix(
            (rng.uniform(0.5, 3.0, size=3), (np.zeros(3), picks)),
            shape=(1, len(model.items)),
            dtype=np.float32,
        )
        rows[10**12 + n] = row
        assert model.fold_in_weights(10**12 + n, row).new_user
    assert model.user_factors.shape == (len(before) + 1_500, model.config.factors)
    np.testing.assert_array_equal(model.user_factors[: len(before)], before)
    solver = model._solver
    for user, row in list(rows.items())[::97]:
        want = solver.recalculate_user(0, confidence(row, model.config.alpha))
        got = model.user_factors[model.users.index_of(user)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    again = ALSRecommender.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.user_factors, model.user_factors)
    assert len(again.users) == len(model.users)

    # A user table replaced from outside is picked up by the next fold-in.
    model.user_factors = model.user_factors * 0 + 1
    model.fold_in_weights(10**13, rows[10**12])
    assert (model.user_factors[: len(before)] == 1).all()
    assert model.user_factors.shape == (len(before) + 1_501, model.config.factors)


def test_model_scores_go_through_top_k(cluster_model: ALSRecommender) -> None:
    users = np.asarray(cluster_model.users.ids[:5])
    ids, scores = cluster_model.recommend(users, 7)
    indices, want_scores = top_k(
        cluster_model.user_factors[:5], cluster_model.item_factors, 7, xp=np
    )
    np.testing.assert_array_equal(ids, cluster_model.items.to_ids(indices))
    np.testing.assert_array_equal(scores, want_scores)


def test_similar_items_stay_in_the_cluster(cluster_model: ALSRecommender) -> None:
    for cluster in range(CLUSTERS):
        ids, scores = cluster_model.similar_items(cluster_items(cluster)[0], 5)
        assert in_cluster_share(ids, cluster) >= 0.8
        assert (np.diff(scores) <= 0).all()
