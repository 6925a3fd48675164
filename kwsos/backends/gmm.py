"""Gaussian mixture backend of the DCASE2020 system (Diss. 3.4.3, Table 6 and Table 8)."""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from kwsos.backends._unit import check_dim, unit_rows

__all__ = ["GMMScorer"]


class GMMScorer:
    """Log-likelihood under a Gaussian mixture fitted on normal embeddings.

    The embeddings are L2-normalised first (the angular-margin losses put the classes on the
    unit sphere; Diss. Lemma 3.1 relates the cosine distance to a spherical Gaussian, of which
    a full-covariance GMM is the generalisation, Sec. 3.4.3). Full covariance with
    ``reg_covar=1e-3`` as in the reference system; ``n_components`` = number of sub-clusters
    was slightly better than one Gaussian in Diss. Table 8.

    :meth:`score_samples` is **higher = more normal** (the log-likelihood); the DCASE anomaly
    score is its negative.

    Parameters
    ----------
    n_components : int
        Mixture components (capped at the number of training embeddings).
    covariance_type : {"full", "diag", "spherical", "tied"}
    reg_covar : float
    seed : int

    Attributes
    ----------
    gmm_ : sklearn.mixture.GaussianMixture
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        reg_covar: float = 1e-3,
        seed: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.seed = seed

    def fit(self, embeddings: Any, labels: Any = None) -> Self:
        from sklearn.mixture import GaussianMixture

        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")
        emb = unit_rows(embeddings, "training embeddings")
        k = min(int(self.n_components), len(emb))
        self.gmm_ = GaussianMixture(
            n_components=k,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            random_state=self.seed,
        ).fit(emb)
        self.dim_ = emb.shape[1]
        self._fit_data = emb
        return self

    def fit_score_samples(self) -> np.ndarray:
        """:meth:`score_samples` of the fitted embeddings (for estimating thresholds)."""
        return self.gmm_.score_samples(self._fit_data)

    def score_samples(self, embeddings: Any) -> np.ndarray:
        """``(n,)`` log-likelihood: higher = more normal."""
        q = unit_rows(embeddings)
        check_dim(q, self.dim_)
        return self.gmm_.score_samples(q)
