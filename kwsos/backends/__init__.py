"""Scoring backends (Diss. 6.3.6 and others)."""

from kwsos.backends.dtw import (
    CANDIDATE_DTYPE,
    DEFAULT_STEPS,
    SubsequenceDTWDetector,
    cosine_cost,
    dba_template,
    max_span,
    subsequence_dtw,
)

__all__ = [
    "CANDIDATE_DTYPE",
    "DEFAULT_STEPS",
    "SubsequenceDTWDetector",
    "cosine_cost",
    "dba_template",
    "max_span",
    "subsequence_dtw",
]
