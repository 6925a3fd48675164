"""k-means + target-sample backend of the DCASE2022/23 system (Diss. 5.3.1).

The source domain has many normal training clips, the target domain a handful. The source
embeddings are summarised by k-means (16 means), every target embedding is kept as a centre of
its own, and the anomaly score of a clip is its minimum cosine distance to all these centres.
One decision threshold then serves both domains (Diss. 5.3.1: "domain generalisation").
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from kwsos.backends._unit import check_dim, unit_rows

__all__ = ["KMeansScorer"]


class KMeansScorer:
    """Minimum cosine distance to k-means centres of the source embeddings and to every target
    embedding.

    :meth:`score_samples` is **higher = more normal** (negative minimum cosine distance).

    Parameters
    ----------
    n_clusters : int
        k-means centres for the source domain (Diss. 5.3.1: 16); capped at the number of
        source embeddings.
    seed : int
        k-means initialisation seed.

    Attributes
    ----------
    centers_ : (n_centers, dim) float64, unit rows
        The normalised source means followed by the target embeddings.
    n_source_centers_ : int
    """

    def __init__(self, n_clusters: int = 16, *, seed: int = 0) -> None:
        self.n_clusters = n_clusters
        self.seed = seed

    def fit(self, embeddings: Any, domains: Any = None) -> Self:
        """Fit on normal embeddings; ``domains`` is ``(n,)`` of "source"/"target" (None: all
        source)."""
        from sklearn.cluster import KMeans

        if int(self.n_clusters) < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        emb = unit_rows(embeddings, "training embeddings")
        dom = np.full(len(emb), "source") if domains is None else np.asarray(domains).astype(str)
        if dom.shape != (len(emb),):
            raise ValueError(f"need one domain per embedding, got {dom.shape} for {len(emb)}")
        target = dom == "target"
        source = emb[~target]
        centers = []
        if len(source):
            k = min(int(self.n_clusters), len(source))
            km = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(source)
            centers.append(unit_rows(km.cluster_centers_, "k-means centres"))
        self.n_source_centers_ = sum(len(c) for c in centers)
        centers.append(emb[target])
        self.centers_ = np.concatenate(centers)
        self._fit_data = (emb, target)
        return self

    def distances(self, embeddings: Any) -> np.ndarray:
        """``(n,)`` minimum cosine distance to the centres: higher = more anomalous."""
        q = unit_rows(embeddings)
        check_dim(q, self.centers_.shape[1])
        return (1.0 - q @ self.centers_.T).min(axis=1)

    def score_samples(self, embeddings: Any) -> np.ndarray:
        """``(n,)`` negative minimum cosine distance: higher = more normal."""
        return -self.distances(embeddings)

    def fit_score_samples(self) -> np.ndarray:
        """:meth:`score_samples` of the fitted embeddings, every target embedding without its
        own centre (leave one out: otherwise its distance is 0), for estimating thresholds."""
        emb, target = self._fit_data
        d = 1.0 - emb @ self.centers_.T
        rows = np.flatnonzero(target)
        d[rows, self.n_source_centers_ + np.arange(len(rows))] = np.inf
        out = d.min(axis=1)
        out[~np.isfinite(out)] = 0.0  # a lone target sample and no source: nothing to compare
        return -out
