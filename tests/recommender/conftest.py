"""Generated interaction data for the recommender tests: no database, no servers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recommender.interactions import Interaction, MatrixConfig, build_matrix
from recommender.model import ALSConfig, ALSRecommender
from recommender.signals import Signal

NOW = 1_800_000_000.0  # a fixed "now", Unix seconds
CLUSTERS = 3
USERS_PER_CLUSTER = 40
ITEMS_PER_CLUSTER = 30
POPULAR_ITEMS = 5
USER_BASE = 7_000_000_000_000  # 64-bit ids, far from 0..n
ITEM_BASE = 9_100_000_000_000


def user_id(cluster: int, n: int) -> int:
    return USER_BASE + cluster * 1_000 + n


def cluster_items(cluster: int) -> list[int]:
    start = ITEM_BASE + cluster * 1_000
    return [start + i for i in range(ITEMS_PER_CLUSTER)]


def popular_items() -> list[int]:
    return [ITEM_BASE + 500_000 + i for i in range(POPULAR_ITEMS)]


def cluster_of_item(item_id: int) -> int | None:
    """The cluster an item belongs to; None for the globally popular items."""
    offset = item_id - ITEM_BASE
    return None if offset >= 500_000 else offset // 1_000


@dataclass(frozen=True)
class PlantedClusters:
    """Users in 3 clusters who like disjoint item groups, and a few items everyone likes."""

    interactions: list[Interaction]
    cluster_of_user: dict[int, int]


def planted_clusters(seed: int = 0) -> PlantedClusters:
    rng = np.random.default_rng(seed)
    rows: list[Interaction] = []
    cluster_of_user: dict[int, int] = {}
    signals = [Signal.LIKE, Signal.COMMENT, Signal.SAVE, Signal.REEL_VIEW]
    for cluster in range(CLUSTERS):
        items = cluster_items(cluster)
        for n in range(USERS_PER_CLUSTER):
            user = user_id(cluster, n)
            cluster_of_user[user] = cluster
            for item in rng.choice(items, size=8, replace=False):
                signal = signals[int(rng.integers(len(signals)))]
                age_days = float(rng.uniform(0, 20))
                rows.append(Interaction(user, int(item), signal, NOW - age_days * 86_400))
            for item in popular_items():
                if rng.random() < 0.8:
                    rows.append(Interaction(user, item, Signal.LIKE, NOW - 86_400))
    return PlantedClusters(rows, cluster_of_user)


@pytest.fixture(scope="session")
def clusters() -> PlantedClusters:
    return planted_clusters()


@pytest.fixture(scope="session")
def cluster_model(clusters: PlantedClusters) -> ALSRecommender:
    matrix = build_matrix(clusters.interactions, MatrixConfig(), now=NOW)
    model, _ = ALSRecommender.train(
        matrix,
        ALSConfig(factors=8, regularization=1.0, alpha=3.0, iterations=15, seed=1),
        use_gpu=False,
    )
    return model
