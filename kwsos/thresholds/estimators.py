"""Threshold estimators fitted on the scores of normal (known) samples only; the
scikit-learn-style half of :mod:`kwsos.thresholds` (its docstring has the conventions). Imported
only where an estimator is used: scikit-learn costs ~0.7 s of start-up.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

__all__ = [
    "THRESHOLD_ESTIMATORS",
    "CleverSD",
    "GESD",
    "GammaPercentile",
    "HistogramPercentile",
    "IQR",
    "MAD",
    "MultiStage",
    "OCSVM",
    "SD",
    "ThresholdEstimator",
    "get_threshold_estimator",
]

logger = logging.getLogger(__name__)


def _check_scores(scores: ArrayLike, what: str = "scores") -> np.ndarray:
    """Return ``scores`` as a finite, non-empty float64 1-D array or raise ValueError."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and 1 in s.shape:
        s = s.ravel()
    if s.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of anomaly scores, got shape {s.shape}")
    if s.size == 0:
        raise ValueError(f"{what} is empty: a threshold needs at least one normal score")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(
            f"{what} contain {int(bad.sum())} NaN or infinite values "
            f"(first at index {int(np.argmax(bad))})"
        )
    return s


class ThresholdEstimator(BaseEstimator):
    """Base class: subclasses implement :meth:`_estimate` on a checked, non-constant array."""

    threshold_: float

    def fit(self, scores: ArrayLike, y: Any = None) -> Self:
        """Estimate ``threshold_`` from the anomaly scores of normal samples.

        Parameters
        ----------
        scores : (n_samples,)
            Anomaly scores of normal (training) samples, higher = more anomalous.
        y
            Ignored (scikit-learn API).

        Returns
        -------
        self
            With ``threshold_`` (float), ``n_samples_fit_`` and ``n_outliers_`` (how many of
            the fitted scores an iterative method removed as outliers; 0 for one-stage ones).
        """
        s = _check_scores(scores)
        self.n_samples_fit_ = int(s.size)
        self.n_outliers_ = 0
        self.threshold_ = float(s[0]) if np.ptp(s) == 0.0 else float(self._estimate(s))
        logger.debug(
            "%s: threshold %.6g from %d scores", type(self).__name__, self.threshold_, s.size
        )
        return self

    def _estimate(self, s: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted(self) -> float:
        if not hasattr(self, "threshold_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet: call fit(scores) first")
        return self.threshold_

    def decision_function(self, scores: ArrayLike) -> np.ndarray:
        """``scores - threshold_``: higher = more anomalous, > 0 means anomalous / unknown."""
        return _check_scores(scores) - self._fitted()

    def predict(self, scores: ArrayLike) -> np.ndarray:
        """Boolean array, True where ``score > threshold_`` (anomalous / unknown)."""
        return self.decision_function(scores) > 0.0

    def fit_predict(self, scores: ArrayLike, y: Any = None) -> np.ndarray:
        """Fit on ``scores`` and flag the anomalous ones among them."""
        return self.fit(scores).predict(scores)


class GammaPercentile(ThresholdEstimator):
    """Gamma distribution percentile (GDP, Diss. 2.11): the DCASE baseline's threshold.

    A three-parameter gamma distribution (shape, loc, scale) is fitted by maximum likelihood
    (``scipy.stats.gamma.fit``) and its ``percentile``-th percentile is the threshold.

    Parameters
    ----------
    percentile
        In (0, 100); 90 in the paper.
    """

    def __init__(self, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def _estimate(self, s: np.ndarray) -> float:
        from scipy import stats

        _check_percentile(self.percentile)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, loc, scale = stats.gamma.fit(s)
            t = stats.gamma.ppf(self.percentile / 100.0, shape, loc=loc, scale=scale)
        self.shape_, self.loc_, self.scale_ = float(shape), float(loc), float(scale)
        if not np.isfinite(t):
            raise ValueError(
                f"the gamma fit failed on these {s.size} scores (shape={shape:.3g}, "
                f"loc={loc:.3g}, scale={scale:.3g}); use another threshold estimator"
            )
        return float(t)


class HistogramPercentile(ThresholdEstimator):
    """Histogram percentile (HP, Diss. 2.11): the empirical percentile, no distribution fitted.

    ``numpy.percentile`` with linear interpolation between order statistics.

    Parameters
    ----------
    percentile
        In (0, 100); 90 in the paper.
    """

    def __init__(self, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def _estimate(self, s: np.ndarray) -> float:
        _check_percentile(self.percentile)
        return float(np.percentile(s, self.percentile))


class SD(ThresholdEstimator):
    """Standard deviation rule (Diss. Eq. 30): ``mean + beta * std``.

    Parameters
    ----------
    beta
        1.28 (the 90th percentile of a normal distribution) in the paper.
    ddof
        Delta degrees of freedom of the standard deviation (0: population std, as numpy and
        the reference code).
    """

    def __init__(self, beta: float = 1.28, ddof: int = 0) -> None:
        self.beta = beta
        self.ddof = ddof

    def _estimate(self, s: np.ndarray) -> float:
        return _sd_threshold(s, self.beta, self.ddof)


class IQR(ThresholdEstimator):
    """Interquartile range / boxplot rule (Diss. Eq. 31): ``Q3 + beta * (Q3 - Q1)``.

    Quartiles by ``numpy.percentile`` (linear interpolation).

    Parameters
    ----------
    beta
        1.5 (Tukey's fences; Diss. 2.11 and SPEC §5). The ICA paper used 0.5.
    """

    def __init__(self, beta: float = 1.5) -> None:
        self.beta = beta

    def _estimate(self, s: np.ndarray) -> float:
        q1, q3 = np.percentile(s, [25.0, 75.0])
        return float(q3 + self.beta * (q3 - q1))


class MAD(ThresholdEstimator):
    """Median absolute deviation rule (Diss. Eq. 32): ``median + beta * delta * MAD``.

    Parameters
    ----------
    beta
        3 (Yang et al., Diss. and SPEC §5); the ICA paper used 2.
    delta
        1.4826, which makes ``delta * MAD`` a consistent estimate of a normal distribution's
        standard deviation.
    """

    def __init__(self, beta: float = 3.0, delta: float = 1.4826) -> None:
        self.beta = beta
        self.delta = delta

    def _estimate(self, s: np.ndarray) -> float:
        med = np.median(s)
        return float(med + self.beta * self.delta * np.median(np.abs(s - med)))


class OCSVM(ThresholdEstimator):
    """One-class SVM boundary (Diss. 2.11; ICA paper 3.6): ``nu`` = share of outliers.

    scikit-learn's ``OneClassSVM`` is trained on the 1-D scores and the threshold is the point
    where its decision function crosses zero on the anomalous (high) side.

    With ``kernel="linear"`` (the ICA paper's choice) the SVM separates the data from the
    origin, so the scores are first mapped to ``u = 1 + (max - s) / (max - min)`` in [1, 2]:
    the high (anomalous) scores lie nearest the origin and become the outliers. In one dimension
    the solution then depends only on the order of the scores, and the boundary falls near the
    ``1 - nu`` quantile (the paper's "treating 10 % of the scores as anomalous"). With
    ``kernel="rbf"`` the scores are standardised and the boundary is the upper end of the
    estimated support (outliers on both tails then share ``nu``).

    Parameters
    ----------
    nu
        Upper bound on the fraction of training outliers, in (0, 1]; 0.1 in the paper.
    kernel
        ``"linear"`` (default) or ``"rbf"``.
    """

    def __init__(self, nu: float = 0.1, kernel: str = "linear") -> None:
        self.nu = nu
        self.kernel = kernel

    def _estimate(self, s: np.ndarray) -> float:
        from scipy.optimize import brentq
        from sklearn.svm import OneClassSVM

        if not 0.0 < self.nu <= 1.0:
            raise ValueError(f"nu must lie in (0, 1], got {self.nu}")
        lo, hi = float(s.min()), float(s.max())
        if self.kernel == "linear":
            span = hi - lo

            def to_feature(x: np.ndarray) -> np.ndarray:
                return 1.0 + (hi - x) / span

        elif self.kernel == "rbf":
            mean, std = float(s.mean()), float(s.std())

            def to_feature(x: np.ndarray) -> np.ndarray:
                return (x - mean) / std

        else:
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {self.kernel!r}")
        svm = OneClassSVM(nu=self.nu, kernel=self.kernel, gamma="scale")
        svm.fit(to_feature(s)[:, None])

        def f(x: float) -> float:
            return float(svm.decision_function(to_feature(np.array([x]))[:, None])[0])

        # The boundary on the high side: scan upwards from the median to past the maximum.
        margin = hi - lo
        grid = np.linspace(float(np.median(s)), hi + margin, 1025)
        values = svm.decision_function(to_feature(grid)[:, None])
        inside = np.flatnonzero(values >= 0.0)
        if inside.size == 0:
            # nu = 1 can leave no inlier above the median: fall back to the median
            return float(np.median(s))
        k = int(inside[-1])
        if k == len(grid) - 1:
            return float(grid[-1])
        return float(brentq(f, grid[k], grid[k + 1], xtol=1e-12 * max(1.0, abs(hi))))


class GESD(ThresholdEstimator):
    """Generalised extreme studentised deviate (Diss. 2.11, Eq. 33-34): iterated Grubbs test.

    While the Grubbs statistic ``(max - mean) / std`` (sample std, ``ddof=1``) of the remaining
    scores exceeds the critical value

    ``(n - 1) / sqrt(n) * sqrt(t^2 / (n - 2 + t^2))``, ``t = t_{alpha / (2 n), n - 2}``

    (upper critical value of Student's t), the largest score is removed. As in the
    dissertation, the test stops at the first non-significant step, and the threshold is the
    last score removed; if none is removed, the maximum score (no training score is anomalous).
    At least three scores must remain for the test.

    Parameters
    ----------
    alpha
        Significance level, 0.05 in the paper.
    max_outliers
        Stop after removing this many scores (default: no limit).
    """

    def __init__(self, alpha: float = 0.05, max_outliers: int | None = None) -> None:
        self.alpha = alpha
        self.max_outliers = max_outliers

    def _estimate(self, s: np.ndarray) -> float:
        from scipy import stats

        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        rest = np.sort(s)
        limit = len(s) if self.max_outliers is None else int(self.max_outliers)
        last = None
        while len(rest) >= 3 and len(s) - len(rest) < limit:
            n = len(rest)
            std = rest.std(ddof=1)
            if std == 0.0:
                break
            g = (rest[-1] - rest.mean()) / std
            t = stats.t.ppf(1.0 - self.alpha / (2.0 * n), n - 2)
            critical = (n - 1) / np.sqrt(n) * np.sqrt(t * t / (n - 2 + t * t))
            if g <= critical:
                break
            last, rest = rest[-1], rest[:-1]
        self.n_outliers_ = len(s) - len(rest)
        return float(s.max() if last is None else last)


class CleverSD(ThresholdEstimator):
    """cleverSD (Diss. 2.11; ICA paper 3.8): SD applied iteratively, one score at a time.

    While the largest remaining score exceeds ``mean + beta * std`` of the remaining scores, it
    is removed. The threshold is the last score removed; if none is removed, the maximum score.
    At least three scores are kept.

    Parameters
    ----------
    beta
        2, as in the ICA paper (A.1.3). With 1.28 the rule keeps removing the maximum of any
        normal-looking sample, because a sample's maximum almost always lies more than 1.28
        standard deviations above its mean.
    ddof
        Delta degrees of freedom of the standard deviation.
    """

    def __init__(self, beta: float = 2.0, ddof: int = 0) -> None:
        self.beta = beta
        self.ddof = ddof

    def _estimate(self, s: np.ndarray) -> float:
        rest = np.sort(s)
        last = None
        while len(rest) > 3 and rest[-1] > _sd_threshold(rest, self.beta, self.ddof):
            last, rest = rest[-1], rest[:-1]
        self.n_outliers_ = len(s) - len(rest)
        return float(s.max() if last is None else last)


class MultiStage(ThresholdEstimator):
    """Multi-stage thresholding (MST, Diss. 2.11; Yang et al.; ICA paper 3.9).

    A one-stage estimator is fitted, every score above its threshold is removed, and it is
    fitted again on the rest; after ``n_stages`` fits the last threshold is the result.
    Two stages ("SDx2", "IQRx2", ...) are usually enough (the paper's finding). A stage that
    would leave fewer than two scores ends the iteration early.

    Parameters
    ----------
    base
        Name of a one-stage estimator in :data:`THRESHOLD_ESTIMATORS` (``"sd"``, ``"iqr"``,
        ``"mad"``, ``"gamma"``, ``"histogram"``, ``"ocsvm"``) or an unfitted estimator.
    n_stages
        Number of fits (>= 1).
    base_params
        Keyword arguments for the base estimator when ``base`` is a name.
    """

    def __init__(
        self,
        base: str | ThresholdEstimator = "sd",
        n_stages: int = 2,
        base_params: dict[str, Any] | None = None,
    ) -> None:
        self.base = base
        self.n_stages = n_stages
        self.base_params = base_params

    def _make_base(self) -> ThresholdEstimator:
        if isinstance(self.base, ThresholdEstimator):
            from sklearn.base import clone

            return clone(self.base)
        est = get_threshold_estimator(self.base, **(self.base_params or {}))
        if isinstance(est, MultiStage):
            raise ValueError("the base of a multi-stage estimator must be a one-stage estimator")
        return est

    def _estimate(self, s: np.ndarray) -> float:
        if int(self.n_stages) != self.n_stages or self.n_stages < 1:
            raise ValueError(f"n_stages must be a positive integer, got {self.n_stages}")
        rest = s
        est = self._make_base().fit(rest)
        self.stage_thresholds_ = [est.threshold_]
        for _ in range(int(self.n_stages) - 1):
            kept = rest[rest <= est.threshold_]
            if len(kept) < 2 or len(kept) == len(rest):
                break
            rest = kept
            est = self._make_base().fit(rest)
            self.stage_thresholds_.append(est.threshold_)
        self.estimator_ = est
        self.n_outliers_ = len(s) - len(rest)
        return est.threshold_


def _sd_threshold(s: np.ndarray, beta: float, ddof: int) -> float:
    return float(s.mean() + beta * s.std(ddof=ddof))


def _check_percentile(p: float) -> None:
    if not 0.0 < p < 100.0:
        raise ValueError(f"percentile must lie in (0, 100), got {p}")


#: Estimators by name (Diss. 2.11 / SPEC §5). Suffix any one-stage name with ``_x2`` in
#: :func:`get_threshold_estimator` for its two-stage version.
THRESHOLD_ESTIMATORS: dict[str, type[ThresholdEstimator]] = {
    "gamma": GammaPercentile,
    "histogram": HistogramPercentile,
    "sd": SD,
    "iqr": IQR,
    "mad": MAD,
    "ocsvm": OCSVM,
    "gesd": GESD,
    "clever_sd": CleverSD,
    "mst": MultiStage,
}

_ALIASES = {
    "gdp": "gamma",
    "gp": "gamma",
    "hp": "histogram",
    "cleversd": "clever_sd",
    "multi_stage": "mst",
}


def get_threshold_estimator(name: str, **kwargs: Any) -> ThresholdEstimator:
    """Build a threshold estimator by name.

    Parameters
    ----------
    name
        A key of :data:`THRESHOLD_ESTIMATORS` (case-insensitive; ``-`` and ``_`` alike; the
        paper's abbreviations ``gdp``/``gp``, ``hp`` and ``cleversd`` are accepted), or a
        one-stage name with the suffix ``_x2`` / ``x2`` for its two-stage version, e.g.
        ``"sd_x2"`` = ``MultiStage(base="sd", n_stages=2)``.
    **kwargs
        Constructor arguments (for ``..._x2``: those of the base estimator).

    Examples
    --------
    >>> get_threshold_estimator("sd").fit([1, 2, 3, 4, 5]).threshold_  # doctest: +ELLIPSIS
    4.81...
    """
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in THRESHOLD_ESTIMATORS and key.endswith("x2"):
        base = key[:-2].rstrip("_")
        base = _ALIASES.get(base, base)
        if base in THRESHOLD_ESTIMATORS and base not in ("mst", "gesd", "clever_sd"):
            return MultiStage(base=base, n_stages=2, base_params=kwargs or None)
    if key not in THRESHOLD_ESTIMATORS:
        names = ", ".join(sorted(THRESHOLD_ESTIMATORS))
        raise ValueError(
            f"unknown threshold estimator {name!r}; choose one of {names} "
            "(or a one-stage name with the suffix _x2)"
        )
    try:
        return THRESHOLD_ESTIMATORS[key](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for threshold estimator {name!r}: {err}") from None
