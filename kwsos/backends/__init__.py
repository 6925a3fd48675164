"""Scoring backends: subsequence DTW and sliding-window keyword detectors, cosine scoring of
clip embeddings. :mod:`kwsos.backends.base` states the protocols and the score convention."""

from kwsos.backends.base import (
    CANDIDATE_DTYPE,
    Detector,
    Scorer,
    below_threshold,
    cost_to_score,
    make_detector,
    register_detector,
)
from kwsos.backends.cosine import CosineScorer
from kwsos.backends.dtw import DEFAULT_STEPS, cosine_cost, dba_template, max_span, subsequence_dtw
from kwsos.backends.sdtw import SubsequenceDTWDetector
from kwsos.backends.sliding import SlidingWindowDetector

__all__ = [
    "CANDIDATE_DTYPE",
    "DEFAULT_STEPS",
    "CosineScorer",
    "Detector",
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
