"""The interaction matrix: signal weights, time decay, duplicates, id maps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender.interactions import (
    IdMap,
    Interaction,
    MatrixConfig,
    SignalWeights,
    build_matrix,
    decay,
)
from recommender.signals import Signal

NOW = 1_800_000_000.0
DAY = 86_400.0
BIG = 2**62  # ids beyond 32 bits


def weight(matrix_rows: list[Interaction], user: int, item: int, **options: object) -> float:
    built = build_matrix(matrix_rows, now=NOW, **options)  # type: ignore[arg-type]
    return float(built.matrix[built.users.index_of(user), built.items.index_of(item)])


def test_each_signal_has_its_documented_default_weight() -> None:
    rows = [Interaction(BIG + 1, BIG + i, s, NOW) for i, s in enumerate(Signal)]
    built = build_matrix(rows, now=NOW)
    got = {s: float(built.matrix[0, built.items.index_of(BIG + i)]) for i, s in enumerate(Signal)}
    assert got == {
        Signal.LIKE: 1.0,
        Signal.COMMENT: 2.0,
        Signal.SAVE: 3.0,
        Signal.REEL_VIEW: 0.5,
        Signal.STORY_VIEW: 0.25,
    }
    assert built.matrix.dtype == np.float32
    assert built.matrix.format == "csr"


def test_custom_weights_change_the_matrix() -> None:
    rows = [Interaction(1, 10, "save", NOW), Interaction(1, 11, "story_view", NOW)]
    config = MatrixConfig(weights=SignalWeights(save=7.0, story_view=0.0))
    built = build_matrix(rows, config, now=NOW)
    assert float(built.matrix[0, built.items.index_of(10)]) == 7.0
    # A zero weight stores nothing: the pair is absent, not a stored 0.
    assert built.nnz == 1


def test_duplicates_sum() -> None:
    rows = [
        Interaction(1, 10, "like", NOW),
        Interaction(1, 10, "like", NOW),
        Interaction(1, 10, "comment", NOW),
        Interaction(2, 10, "like", NOW),
    ]
    built = build_matrix(rows, now=NOW)
    assert float(built.matrix[built.users.index_of(1), built.items.index_of(10)]) == 4.0
    assert float(built.matrix[built.users.index_of(2), built.items.index_of(10)]) == 1.0
    assert built.nnz == 2


@pytest.mark.parametrize(("age_days", "expected"), [(0, 1.0), (30, 0.5), (60, 0.25), (15, 2**-0.5)])
def test_weights_halve_every_half_life(age_days: float, expected: float) -> None:
    rows = [Interaction(1, 10, "like", NOW - age_days * DAY)]
    assert weight(rows, 1, 10, config=MatrixConfig(half_life_days=30)) == pytest.approx(
        expected, rel=1e-6
    )


def test_decay_half_life_is_configurable_and_can_be_off() -> None:
    rows = [Interaction(1, 10, "save", NOW - 7 * DAY)]
    assert weight(rows, 1, 10, config=MatrixConfig(half_life_days=7)) == pytest.approx(1.5)
    assert weight(rows, 1, 10, config=MatrixConfig(half_life_days=None)) == 3.0


def test_future_timestamps_count_as_fresh_and_now_defaults_to_the_latest() -> None:
    assert decay(np.array([-5 * DAY]), 1.0)[0] == 1.0
    rows = [Interaction(1, 10, "like", NOW - 30 * DAY), Interaction(2, 10, "like", NOW)]
    built = build_matrix(rows)  # now = the latest timestamp
    assert built.now == NOW
    assert float(built.matrix[built.users.index_of(1), 0]) == pytest.approx(0.5)


def test_old_and_new_interactions_of_one_pair_add_after_decay() -> None:
    rows = [Interaction(1, 10, "like", NOW), Interaction(1, 10, "like", NOW - 30 * DAY)]
    assert weight(rows, 1, 10) == pytest.approx(1.5)


def test_datetimes_are_accepted_and_naive_ones_refused() -> None:
    now = datetime.fromtimestamp(NOW, tz=UTC)
    rows = [Interaction(1, 10, "like", now - timedelta(days=30))]
    built = build_matrix(rows, now=now)
    assert float(built.matrix[0, 0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="timezone"):
        build_matrix([Interaction(1, 10, "like", datetime(2026, 1, 1))])


def test_unknown_signals_and_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        build_matrix([(1, 10, "poke", NOW)])
    with pytest.raises(ValueError, match="like"):
        SignalWeights(like=-1.0)
    with pytest.raises(ValueError, match="half_life"):
        MatrixConfig(half_life_days=0)


def test_id_maps_go_both_ways_with_64_bit_ids() -> None:
    users = [BIG + 5, BIG + 1, 3]
    rows = [Interaction(u, BIG * 1 + 100 + i, "like", NOW) for i, u in enumerate(users)]
    built = build_matrix(rows, now=NOW)
    # Made from the ids seen, ascending.
    assert list(built.users) == sorted(users)
    for user in users:
        index = built.users.index_of(user)
        assert built.users.id_of(index) == user
        row = built.matrix[index]
        assert row.nnz == 1
    np.testing.assert_array_equal(
        built.users.to_indices([3, BIG + 1, 999]), np.array([0, 1, -1], dtype=np.int64)
    )
    np.testing.assert_array_equal(built.users.to_ids([2, 0]), [BIG + 5, 3])
    assert built.users.ids.dtype == np.int64


def test_given_maps_fix_the_layout_and_drop_unknown_ids() -> None:
    items = IdMap([30, 10, 20])
    rows = [Interaction(1, 20, "like", NOW), Interaction(1, 99, "save", NOW)]
    built = build_matrix(rows, now=NOW, users=IdMap([1]), items=items)
    assert built.shape == (1, 3)
    assert built.matrix.toarray().tolist() == [[0.0, 0.0, 1.0]]


def test_id_map_grows_and_refuses_duplicates() -> None:
    ids = IdMap([5, 9])
    assert ids.add(9) == 1
    assert ids.add(BIG) == 2
    assert ids.to_indices([BIG, 5]).tolist() == [2, 0]
    assert BIG in ids
    assert 4 not in ids
    with pytest.raises(ValueError, match="unique"):
        IdMap([1, 1])
    with pytest.raises(KeyError):
        ids.index_of(4)


def test_row_of_an_unknown_user_is_empty() -> None:
    built = build_matrix([Interaction(1, 10, "like", NOW)], now=NOW)
    assert built.row(2).shape == (1, 1)
    assert built.row(2).nnz == 0
    assert built.row(1).nnz == 1
