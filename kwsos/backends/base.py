"""What every backend promises: the protocols, the candidate record and the score convention.

Score convention (one rule for the whole toolkit)
------------------------------------------------
* Public scorers follow scikit-learn: ``score_samples`` is documented as "higher = more X"
  (:class:`~kwsos.backends.cosine.CosineScorer`: higher = more similar to a known class; an
  anomaly detector: higher = more anomalous, as the DCASE files use), learned state ends in
  ``_`` (``threshold_``) and ``decision_function = score_samples - threshold_`` (positive =
  the decision fires).
* Keyword detectors (:class:`Detector`) are the one place that keeps a **cost**: the
  length-normalised DTW path cost, a cosine distance, lower = better match. Their thresholds
  are costs too (``cost <= threshold`` is a detection); the decision layer
  (:mod:`kwsos.thresholds`) tunes them as costs. :func:`cost_to_score` gives the matching
  "higher = more keyword-like" score (``-cost``) where a score is wanted (ROC curves).

A detector works on a stream of feature blocks and has two stages, so that a threshold sweep
(:func:`kwsos.thresholds.tune_f1`) re-runs only the cheap one:

1. ``candidates(feature_blocks, max_cost=...)`` -> raw candidates (:data:`CANDIDATE_DTYPE`);
2. ``postprocess(candidates, threshold)`` -> detections (same dtype; one threshold or one per
   keyword).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from kwsos.errors import KwsosError
from kwsos.hooks import Hook

__all__ = [
    "CANDIDATE_DTYPE",
    "DEFAULT_STEPS",
    "Detector",
    "Scorer",
    "available_detectors",
    "below_threshold",
    "cost_to_score",
    "detector_class",
    "make_detector",
    "register_detector",
]

#: DTW step sizes ``(di, dj)``: ``di`` template rows and ``dj`` recording frames per step.
Steps = Sequence[tuple[int, int]]

#: The steps of Diss. 6.3.6: ``(1, 1), (1, 2), (2, 1)`` (used by :mod:`kwsos.backends.dtw`, the
#: DTW detector and the keyword spotter's config; defined here so that none of them needs the
#: numba kernels to know it).
DEFAULT_STEPS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 1))

#: dtype of the candidate / detection arrays; ``start`` and ``end`` are inclusive frame indices,
#: ``keyword`` indexes the detector's ``keywords_``, ``template`` its templates.
CANDIDATE_DTYPE = np.dtype(
    [
        ("keyword", np.int64),
        ("start", np.int64),
        ("end", np.int64),
        ("cost", np.float64),
        ("template", np.int64),
    ]
)


@runtime_checkable
class Detector(Protocol):
    """Finds enrolled keywords in a stream of frame features (see module docstring).

    ``fit(templates, labels)`` takes one feature sequence ``(m_k, D)`` per enrolled shot and its
    keyword; ``keywords_`` are the sorted keywords that candidate ``keyword`` fields index.
    """

    keywords_: np.ndarray
    threshold: Any

    def fit(self, templates: Sequence[np.ndarray], labels: Sequence[str]) -> Any: ...

    def candidates(
        self,
        feature_blocks: Iterable[np.ndarray],
        *,
        max_cost: float = np.inf,
        hook: Hook | None = None,
    ) -> np.ndarray: ...

    def postprocess(self, candidates: np.ndarray, threshold: Any = None) -> np.ndarray: ...

    def cost_curves(self, features: np.ndarray) -> np.ndarray:
        """``(n_keywords, n_frames)`` match cost at every frame (lower = better)."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """A clip-level backend: ``fit(embeddings, labels)``, ``score_samples(embeddings)`` with
    higher = more like the fitted data (its docstring names the X of "higher = more X")."""

    def fit(self, embeddings: np.ndarray, labels: Any = None) -> Any: ...

    def score_samples(self, embeddings: np.ndarray) -> np.ndarray: ...


def below_threshold(candidates: np.ndarray, threshold: Any, n_keywords: int) -> np.ndarray:
    """Mask of the candidates with ``cost <= threshold``; ``threshold`` is one float or one per
    keyword (an array indexed by the candidates' ``keyword`` field)."""
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 0:
        return candidates["cost"] <= thr
    if thr.shape != (n_keywords,):
        raise ValueError(f"need one threshold per keyword ({n_keywords}), got shape {thr.shape}")
    return candidates["cost"] <= thr[candidates["keyword"]]


def cost_to_score(cost: np.ndarray) -> np.ndarray:
    """A detector cost (lower = better match) as a score (higher = more keyword-like)."""
    return -np.asarray(cost, dtype=np.float64)


_DETECTORS: dict[str, type] = {}
_BUILTIN_DETECTORS = {"sdtw": "kwsos.backends.sdtw", "sliding": "kwsos.backends.sliding"}
D = TypeVar("D", bound=type)


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator: make a :class:`Detector` available to :func:`make_detector`."""

    def deco(cls: D) -> D:
        _DETECTORS[name] = cls
        cls.backend_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def available_detectors() -> list[str]:
    return sorted(set(_DETECTORS) | set(_BUILTIN_DETECTORS))


def detector_class(name: str) -> type:
    """The detector class registered as ``name`` (``sdtw``, ``sliding``)."""
    if name not in _DETECTORS and name in _BUILTIN_DETECTORS:
        import importlib

        importlib.import_module(_BUILTIN_DETECTORS[name])
    try:
        cls = _DETECTORS[name]
    except KeyError:
        raise KwsosError(
            f"unknown detector {name!r}; choose one of {', '.join(available_detectors())}"
        ) from None
    return cls


def make_detector(name: str, **options: Any) -> Detector:
    """A detector by name (``sdtw``: subsequence DTW, ``sliding``: sliding window)."""
    return detector_class(name)(**options)
