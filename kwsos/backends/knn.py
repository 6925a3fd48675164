"""k-nearest-neighbour backend on cosine distance (Diss. 2.6; the kNN inlier model of the
serial-OE and log-Mel-statistics baselines)."""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from kwsos.backends._unit import check_dim, unit_rows

__all__ = ["KNNScorer"]


class KNNScorer:
    """Mean cosine distance to the ``n_neighbors`` nearest normal training embeddings.

    scikit-learn style (like ``LocalOutlierFactor``): :meth:`score_samples` is **higher = more
    normal** (the negative mean distance); an anomaly score is ``-score_samples``. With
    ``n_neighbors=1`` this is the "cosine distance to the closest enrolled sample" backend of
    Diss. 5.3.1 for the target domain.

    Parameters
    ----------
    n_neighbors : int
        Neighbours averaged (capped at the number of references).

    Attributes
    ----------
    references_ : (n_references, dim) float64, unit rows
    """

    def __init__(self, n_neighbors: int = 1) -> None:
        self.n_neighbors = n_neighbors

    def fit(self, embeddings: Any, labels: Any = None) -> Self:
        if int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors}")
        self.references_ = unit_rows(embeddings, "reference embeddings")
        return self

    def distances(self, embeddings: Any) -> np.ndarray:
        """``(n,)`` mean cosine distance to the nearest references: higher = more anomalous."""
        q = unit_rows(embeddings)
        check_dim(q, self.references_.shape[1])
        d = 1.0 - q @ self.references_.T
        k = min(int(self.n_neighbors), d.shape[1])
        if k == 1:
            return d.min(axis=1)
        return np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)

    def score_samples(self, embeddings: Any) -> np.ndarray:
        """``(n,)`` negative mean cosine distance: higher = more normal."""
        return -self.distances(embeddings)

    def fit_score_samples(self) -> np.ndarray:
        """:meth:`score_samples` of the fitted references, each without itself (leave one
        out: with itself the nearest distance is 0), for estimating decision thresholds."""
        r = self.references_
        d = 1.0 - r @ r.T
        np.fill_diagonal(d, np.inf)
        k = min(int(self.n_neighbors), len(r) - 1)
        if k < 1:
            return np.zeros(len(r))
        return -np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
