"""Categorical encoding of the relative position of a segment in a keyword (Diss. Def. 6.3).

A training shot of a keyword is cut into ``n_segments`` segments; ``n_positions`` is the largest
number of segments of any training shot. Segment ``i`` (1-based) of a shot activates the
positions

    I_active(i) = [1 + floor((i - 1) * n_positions / n_segments), ceil(i * n_positions / n_segments)]

(Diss. Eq. 67, 1-based, inclusive), each with the same mass (Eq. 68). Segments that contain no
speech and time-reversed segments get a uniform target over all positions (Diss. 6.3.5).
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["position_labels", "uniform_positions"]


def _as_int(value: object, name: str) -> int:
    try:
        return operator.index(value)  # int, numpy integer; refuses floats and bools-as-floats
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def position_labels(n_segments: int, n_positions: int) -> np.ndarray:
    """Relative-position targets of the segments of one shot (Diss. Def. 6.3, Eq. 67-68).

    Parameters
    ----------
    n_segments : int
        Number of segments ``N_seg`` of the shot, ``1 <= n_segments <= n_positions``.
    n_positions : int
        Number of position classes ``N_pos`` (the largest ``N_seg`` over the training shots).

    Returns
    -------
    np.ndarray, shape (n_segments, n_positions), float32
        Row ``i - 1`` is ``lab_pos(x, i)``: ``1 / |I_active(i)|`` on the active positions of
        segment ``i`` and 0 elsewhere; every row sums to 1. With ``n_segments == n_positions``
        this is the identity.

    Raises
    ------
    ValueError
        If either argument is < 1 or ``n_segments > n_positions``.

    Notes
    -----
    The interval ends are computed with integer arithmetic (``floor(a / b) = a // b`` and
    ``ceil(a / b) = -(-a // b)``), so no float rounding can move a boundary.

    Examples
    --------
    >>> position_labels(2, 5)  # segment 1 -> positions 1..3, segment 2 -> positions 3..5
    array([[0.33333334, 0.33333334, 0.33333334, 0.        , 0.        ],
           [0.        , 0.        , 0.33333334, 0.33333334, 0.33333334]], dtype=float32)
    """
    n_seg = _as_int(n_segments, "n_segments")
    n_pos = _as_int(n_positions, "n_positions")
    if n_seg < 1 or n_pos < 1:
        raise ValueError(
            f"n_segments and n_positions must be >= 1, got n_segments={n_seg}, n_positions={n_pos}"
        )
    if n_seg > n_pos:
        raise ValueError(
            f"n_segments={n_seg} > n_positions={n_pos}: n_positions must be the largest number "
            "of segments over the training shots (Diss. Def. 6.3)"
        )
    labels = np.zeros((n_seg, n_pos), dtype=np.float64)
    for i in range(1, n_seg + 1):
        first = 1 + ((i - 1) * n_pos) // n_seg  # 1-based, inclusive
        last = -((-i * n_pos) // n_seg)  # ceil(i * n_pos / n_seg), 1-based, inclusive
        labels[i - 1, first - 1 : last] = 1.0 / (last - first + 1)
    return labels.astype(np.float32)


def uniform_positions(n: int, n_positions: int) -> np.ndarray:
    """Uniform position targets for "no speech" and time-reversed segments (Diss. 6.3.5).

    Parameters
    ----------
    n : int
        Number of segments (rows), ``>= 0``.
    n_positions : int
        Number of position classes, ``>= 1``.

    Returns
    -------
    np.ndarray, shape (n, n_positions), float32
        Every entry is ``1 / n_positions``.
    """
    n = _as_int(n, "n")
    n_pos = _as_int(n_positions, "n_positions")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n_pos < 1:
        raise ValueError(f"n_positions must be >= 1, got {n_pos}")
    return np.full((n, n_pos), 1.0 / n_pos, dtype=np.float32)
