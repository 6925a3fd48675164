"""Decision thresholds estimated from the scores of normal (known) samples only.

Diss. 2.11 and 4.2 and the ICA 2022 paper (Diss. appendix A.1.3, "Using Anomaly Scores of
Normal Samples for Estimating Decision Thresholds"); SPEC §5. Semi-supervised anomaly detection
and open-set rejection have no anomalous training data, so the threshold must separate the most
extreme of the *normal* scores (typically the top 10 %) from the rest and hope that anomalies
score higher still.

Convention: **higher score = more anomalous** (more likely unknown). A sample is predicted
anomalous / unknown when ``score > threshold_`` (Diss. Eq. 13). For a similarity that is higher
for known samples (e.g. the max cosine similarity of the open-set classifier), fit and predict
on its negative.

Every estimator follows scikit-learn: ``__init__`` only stores its arguments, ``fit(scores)``
returns ``self`` and sets ``threshold_``, ``predict(scores)`` returns a boolean array (True =
anomalous) and ``decision_function(scores) = scores - threshold_`` (higher = more anomalous,
> 0 = anomalous). :func:`get_threshold_estimator` builds one by name from
:data:`THRESHOLD_ESTIMATORS`; a name with the suffix ``_x2`` (e.g. ``"sd_x2"``, the paper's
"SDx2") gives the two-stage version of a one-stage method.

Degenerate input: when all fitted scores are equal, every estimator returns that value (nothing
is anomalous in training). Empty input or NaN / inf raise :class:`ValueError`.

The second half of the decision layer, :func:`tune_f1`, chooses thresholds with labelled
validation data instead: the one global threshold (and optionally one per class) that maximises
micro F1 (Diss. 6.3.6 for keyword spotting). It works on **costs** (an item fires when
``cost <= threshold``, as keyword detectors report them); pass ``-score`` for a score that is
higher for positives.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "F1Tuning",
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
    "tune_f1",
]

# Loaded on first use (module __getattr__): the estimators need scikit-learn (~0.7 s to import),
# F1 tuning (kwsos tune) does not.
_LAZY = {
    **{name: "kwsos.thresholds.estimators" for name in __all__},
    "F1Tuning": "kwsos.thresholds.tuning",
    "tune_f1": "kwsos.thresholds.tuning",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
