"""Scoring backends: subsequence DTW and sliding-window keyword detectors, cosine scoring of
clip embeddings. :mod:`kwsos.backends.base` states the protocols and the score convention.

The names below are loaded on first use (module ``__getattr__``), so that
``from kwsos.backends.base import ...`` costs no numba (:mod:`~kwsos.backends.dtw`) or
scipy.ndimage (:mod:`~kwsos.backends.sliding`) import.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CANDIDATE_DTYPE",
    "DEFAULT_STEPS",
    "CosineScorer",
    "Detector",
    "GMMScorer",
    "KMeansScorer",
    "KNNScorer",
    "Scorer",
    "SlidingWindowDetector",
    "SubsequenceDTWDetector",
    "below_threshold",
    "cosine_cost",
    "cost_to_score",
    "dba_template",
    "make_detector",
    "max_span",
    "register_detector",
    "subsequence_dtw",
]

_BASE = (
    "CANDIDATE_DTYPE",
    "DEFAULT_STEPS",
    "Detector",
    "Scorer",
    "below_threshold",
    "cost_to_score",
    "make_detector",
    "register_detector",
)
_LAZY = {
    **{name: "kwsos.backends.base" for name in _BASE},
    "CosineScorer": "kwsos.backends.cosine",
    "GMMScorer": "kwsos.backends.gmm",
    "KMeansScorer": "kwsos.backends.kmeans",
    "KNNScorer": "kwsos.backends.knn",
    "SlidingWindowDetector": "kwsos.backends.sliding",
    "SubsequenceDTWDetector": "kwsos.backends.sdtw",
    "cosine_cost": "kwsos.backends.dtw",
    "dba_template": "kwsos.backends.dtw",
    "max_span": "kwsos.backends.dtw",
    "subsequence_dtw": "kwsos.backends.dtw",
}


_SUBMODULES = ("base", "cosine", "dtw", "gmm", "kmeans", "knn", "sdtw", "sliding")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:  # ``kwsos.backends.dtw`` after a plain ``import kwsos.backends``
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
