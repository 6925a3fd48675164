"""Small helpers shared by the clip-embedding backends."""

from __future__ import annotations

from typing import Any

import numpy as np


def unit_rows(x: Any, what: str = "embeddings") -> np.ndarray:
    """``(n, dim)`` float64 rows scaled to unit length (zero rows stay zero).

    Raises ``ValueError`` naming ``what`` for anything that is not a non-empty finite 2-D array.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{what} must be a non-empty (n, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def check_dim(x: np.ndarray, dim: int, what: str = "embeddings") -> None:
    if x.shape[1] != dim:
        raise ValueError(f"{what} have dimension {x.shape[1]}, the backend was fitted on {dim}")
