"""Relative position targets (Diss. Def. 6.3, Eq. 67-68), checked against hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kwsos.losses import position_labels, uniform_positions


def test_equal_counts_give_identity() -> None:
    labels = position_labels(4, 4)
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, np.eye(4, dtype=np.float32))


def test_two_segments_five_positions() -> None:
    # segment 1: [1 + floor(0), ceil(2.5)] = [1, 3]; segment 2: [1 + floor(2.5), ceil(5)] = [3, 5]
    third = 1.0 / 3.0
    expected = np.array(
        [[third, third, third, 0.0, 0.0], [0.0, 0.0, third, third, third]], dtype=np.float32
    )
    np.testing.assert_allclose(position_labels(2, 5), expected, rtol=1e-7)


def test_three_segments_four_positions() -> None:
    # segment 1: [1, ceil(4/3)=2]; segment 2: [1+floor(4/3)=2, ceil(8/3)=3];
    # segment 3: [1+floor(8/3)=3, 4]
    expected = np.array(
        [[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]], dtype=np.float32
    )
    np.testing.assert_array_equal(position_labels(3, 4), expected)


def test_one_segment_covers_everything() -> None:
    np.testing.assert_allclose(position_labels(1, 3), np.full((1, 3), 1 / 3, dtype=np.float32))


@pytest.mark.parametrize("n_pos", range(1, 13))
def test_rows_follow_eq67_and_sum_to_one(n_pos: int) -> None:
    for n_seg in range(1, n_pos + 1):
        labels = position_labels(n_seg, n_pos)
        assert labels.shape == (n_seg, n_pos)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
        for i in range(1, n_seg + 1):
            first = 1 + math.floor((i - 1) * n_pos / n_seg)
            last = math.ceil(i * n_pos / n_seg)
            active = np.flatnonzero(labels[i - 1]) + 1
            np.testing.assert_array_equal(active, np.arange(first, last + 1))
            np.testing.assert_allclose(labels[i - 1, active - 1], 1.0 / active.size)
        assert labels[:, 0].any() and labels[:, -1].any()  # the segments cover all positions


@pytest.mark.parametrize(("n_seg", "n_pos"), [(5, 4), (0, 3), (1, 0), (-1, 2)])
def test_invalid_counts_raise(n_seg: int, n_pos: int) -> None:
    with pytest.raises(ValueError):
        position_labels(n_seg, n_pos)


def test_non_integer_counts_raise() -> None:
    with pytest.raises(TypeError):
        position_labels(2.0, 4)  # type: ignore[arg-type]


def test_numpy_integers_accepted() -> None:
    np.testing.assert_array_equal(position_labels(np.int64(2), np.int32(2)), np.eye(2))


def test_uniform_positions() -> None:
    u = uniform_positions(3, 4)
    assert u.shape == (3, 4) and u.dtype == np.float32
    np.testing.assert_array_equal(u, np.full((3, 4), 0.25, dtype=np.float32))
    assert uniform_positions(0, 5).shape == (0, 5)
    with pytest.raises(ValueError):
        uniform_positions(2, 0)
    with pytest.raises(ValueError):
        uniform_positions(-1, 3)
