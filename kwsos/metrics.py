"""Metrics shared by the kwsos tasks.

Keyword spotting is scored like sound event detection (Diss. 2.10, 6.3.2): event-based,
micro-averaged F1 / precision / recall as implemented by sed_eval's ``EventBasedMetrics`` with a
0.2 s onset collar and an offset collar of max(0.2 s, 50 % of the reference event's length).

Anomaly detection (Diss. 2.10.1, 4.3): :func:`roc_auc` (pAUC with ``max_fpr``), :func:`eer`,
:func:`f1_ev` and :func:`bounded_f1_ev`. Convention for all of them: ``y_true`` is 1 (True) for
an anomalous sample and 0 for a normal one, and **a higher score means more anomalous**; a sample
is predicted anomalous when ``score > threshold`` (Diss. Eq. 13-14).

Open-set classification (Diss. 2.10.2, 6.2): :func:`openness` (Def. 6.1),
:func:`weighted_accuracy` (Eq. 27), :func:`top1_eer` and :func:`top1_auc` (Eq. 28-29).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from kwsos.events import Event, events_by_file

__all__ = [
    "DCASE_EPS",
    "DCASE_MAX_FPR",
    "ClassScores",
    "DcaseSectionScores",
    "EventScores",
    "bounded_f1_ev",
    "dcase_official_score",
    "dcase_section_scores",
    "decision_scores",
    "domain_auc",
    "eer",
    "event_based_scores",
    "event_match_counts",
    "f1_ev",
    "file_key",
    "harmonic_mean",
    "micro_f1",
    "openness",
    "roc_auc",
    "top1_auc",
    "top1_eer",
    "weighted_accuracy",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassScores:
    f1: float
    precision: float
    recall: float
    n_ref: int
    n_est: int


@dataclass(frozen=True)
class EventScores:
    """Micro-averaged event-based scores and the per-label rows (values in [0, 1])."""

    f1: float
    precision: float
    recall: float
    n_ref: int
    n_est: int
    per_label: dict[str, ClassScores] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "n_ref": self.n_ref,
            "n_est": self.n_est,
            "per_label": {k: vars(v) for k, v in self.per_label.items()},
        }


def file_key(name: str) -> str:
    """Match files by base name, whatever the path separators (KWS-DailyTalk uses Windows paths)."""
    return PureWindowsPath(name).name


def _nan0(x: float) -> float:
    return 0.0 if x != x else float(x)


def event_based_scores(
    reference: Sequence[Event],
    estimated: Sequence[Event],
    *,
    t_collar_s: float = 0.2,
    percentage_of_length: float = 0.5,
    files: Sequence[str] | None = None,
) -> EventScores:
    """Event-based micro F1 / precision / recall from sed_eval, plus one row per label.

    Parameters
    ----------
    reference, estimated
        Events; files are matched by base name (:func:`file_key`).
    files
        Files that were evaluated (so a file with no reference event still counts its false
        alarms); default: every file named in ``reference`` or ``estimated``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports the deprecated pkg_resources
        import dcase_util
        import sed_eval

    ref = events_by_file(e._replace(filename=file_key(e.filename)) for e in reference)
    est = events_by_file(e._replace(filename=file_key(e.filename)) for e in estimated)
    keys = sorted({file_key(f) for f in files} if files is not None else set(ref) | set(est))
    if reference and not set(ref) & set(keys):
        logger.warning(
            "the reference names none of the %d evaluated file(s) (file names must match by "
            "base name): every detection counts as a false alarm",
            len(keys),
        )
    labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels,
        t_collar=t_collar_s,
        percentage_of_length=percentage_of_length,
        evaluate_onset=True,
        evaluate_offset=True,
    )

    def container(events: list[Event]):
        return dcase_util.containers.MetaDataContainer(
            [
                {
                    "filename": e.filename,
                    "onset": e.onset,
                    "offset": e.offset,
                    "event_label": e.label,
                }
                for e in events
            ]
        )

    for key in keys:
        metric.evaluate(
            reference_event_list=container(ref.get(key, [])),
            estimated_event_list=container(est.get(key, [])),
        )
    res = metric.results()
    overall = res["overall"]["f_measure"]
    per_label = {}
    for label in labels:
        row = res["class_wise"][label]
        per_label[label] = ClassScores(
            _nan0(row["f_measure"]["f_measure"]),
            _nan0(row["f_measure"]["precision"]),
            _nan0(row["f_measure"]["recall"]),
            int(row["count"]["Nref"]),
            int(row["count"]["Nsys"]),
        )
    return EventScores(
        _nan0(overall["f_measure"]),
        _nan0(overall["precision"]),
        _nan0(overall["recall"]),
        sum(len(v) for k, v in ref.items() if k in keys),
        sum(len(v) for k, v in est.items() if k in keys),
        per_label,
    )


def event_match_counts(
    reference: Sequence[Event],
    estimated: Sequence[Event],
    *,
    t_collar_s: float = 0.2,
    percentage_of_length: float = 0.5,
    files: Sequence[str] | None = None,
) -> dict[str, tuple[int, int, int]]:
    """Per label ``(n_hits, n_ref, n_est)`` of the event-based matching that
    :func:`event_based_scores` gets from sed_eval, computed directly (~100x faster).

    The same rule as sed_eval 0.2's ``EventBasedMetrics`` (``event_matching_type="optimal"``):
    in each file, a reference and an estimated event of the same label may match when
    ``|onset difference| <= t_collar_s`` and ``|offset difference| <= max(t_collar_s,
    percentage_of_length * reference length)``; the hits are the size of a maximum bipartite
    matching. Micro F1 is ``2 * sum(hits) / (sum(n_ref) + sum(n_est))``. Used for threshold
    sweeps, where sed_eval would be called hundreds of times.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    keys = None if files is None else {file_key(f) for f in files}
    groups: dict[tuple[str, str], tuple[list[Event], list[Event]]] = {}
    for side, events in ((0, reference), (1, estimated)):
        for e in events:
            key = file_key(e.filename)
            if keys is not None and key not in keys:
                continue
            groups.setdefault((key, e.label), ([], []))[side].append(e)
    counts: dict[str, list[int]] = {}
    for (_, label), (ref, est) in groups.items():
        c = counts.setdefault(label, [0, 0, 0])
        c[1] += len(ref)
        c[2] += len(est)
        if not ref or not est:
            continue
        r_on = np.array([e.onset for e in ref])[:, None]
        r_off = np.array([e.offset for e in ref])[:, None]
        e_on = np.array([e.onset for e in est])[None, :]
        e_off = np.array([e.offset for e in est])[None, :]
        hit = (np.abs(r_on - e_on) <= t_collar_s) & (
            np.abs(r_off - e_off) <= np.maximum(t_collar_s, percentage_of_length * (r_off - r_on))
        )
        if (hit.sum(axis=0) <= 1).all() and (hit.sum(axis=1) <= 1).all():
            c[0] += int(hit.sum())  # no event has two candidates: the matching is the hits
        elif hit.any():
            match = maximum_bipartite_matching(csr_matrix(hit), perm_type="column")
            c[0] += int((match >= 0).sum())
    return {k: (v[0], v[1], v[2]) for k, v in sorted(counts.items())}


def micro_f1(counts: dict[str, tuple[int, int, int]]) -> tuple[float, float, float]:
    """``(f1, precision, recall)`` from :func:`event_match_counts` (0 where undefined)."""
    hits = sum(c[0] for c in counts.values())
    n_ref = sum(c[1] for c in counts.values())
    n_est = sum(c[2] for c in counts.values())
    p = hits / n_est if n_est else 0.0
    r = hits / n_ref if n_ref else 0.0
    f = 2 * hits / (n_ref + n_est) if n_ref + n_est else 0.0
    return f, p, r


# --------------------------------------------------------------------------------------------
# Anomaly detection (Diss. 2.10.1, 4.3)
# --------------------------------------------------------------------------------------------


def _binary_inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check ``y_true`` (0 normal / 1 anomalous, both present) and finite 1-D ``scores``."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"y_true and scores must be 1-D arrays, got shapes {y.shape} and {s.shape}"
        )
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} entries but scores has {len(s)}")
    if len(y) == 0:
        raise ValueError("y_true and scores are empty")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(s)))} NaN or infinite values")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(
            f"y_true must hold 0 (normal) or 1 (anomalous) per sample, got values {sorted(map(str, values))}"
        )
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("y_true needs both normal (0) and anomalous (1) samples")
    return y, s


def roc_auc(y_true: ArrayLike, scores: ArrayLike, max_fpr: float | None = None) -> float:
    """Area under the ROC curve, or the standardised partial AUC for FPR in ``[0, max_fpr]``.

    Diss. 2.10.1 (Eq. 23-25, Theorem 2.10): the probability that a random anomalous sample scores
    higher than a random normal one. With ``max_fpr`` this is scikit-learn's
    ``roc_auc_score(max_fpr=...)``, i.e. the McClish-standardised pAUC
    ``0.5 * (1 + (A_p - p^2/2) / (p - p^2/2))`` that the DCASE challenge reports (SPEC §6).

    Parameters
    ----------
    y_true : (n_samples,)
        1 (True) for an anomalous sample, 0 (False) for a normal one; both must occur.
    scores : (n_samples,)
        Anomaly scores, higher = more anomalous.
    max_fpr
        Upper end of the FPR range, in (0, 1]; None (default) for the full AUC.

    Returns
    -------
    float in [0, 1]
    """
    from sklearn.metrics import roc_auc_score

    y, s = _binary_inputs(y_true, scores)
    if max_fpr is not None and not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must lie in (0, 1], got {max_fpr}")
    return float(roc_auc_score(y, s, max_fpr=max_fpr))


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where the piecewise-linear ROC curve meets FPR = FNR (= 1 - TPR).

    ``g = FPR - FNR`` never decreases along the curve (both rates grow as the threshold falls),
    so the first point with ``g >= 0`` and its predecessor bracket the crossing, which is found
    by linear interpolation between them.
    """
    g = fpr + tpr - 1.0
    i = int(np.argmax(g >= 0.0))
    if g[i] == 0.0 or i == 0:
        return float(fpr[i])
    t = -g[i - 1] / (g[i] - g[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def eer(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Equal error rate: the error rate where FPR = FNR on the ROC curve (Diss. 2.10.1).

    The ROC curve uses every distinct score as a threshold (plus the two trivial ones) and is
    interpolated linearly between them; the EER is its intersection with the line
    FPR = 1 - TPR. This equals the usual "FPR at the threshold where FPR and FNR cross" when a
    threshold with FPR = FNR exists, and interpolates between the two neighbouring thresholds
    otherwise.

    Parameters
    ----------
    y_true : (n_samples,)
        1 (True) for an anomalous sample, 0 (False) for a normal one; both must occur.
    scores : (n_samples,)
        Anomaly scores, higher = more anomalous.

    Returns
    -------
    float in [0, 1], lower is better.
    """
    from sklearn.metrics import roc_curve

    y, s = _binary_inputs(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return _eer_from_roc(fpr, tpr)


def _f1_at(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 (Diss. Eq. 20, ``2 TP / (|A_pred| + |X_anomalous|)``) for each threshold, ``s > t``."""
    n_pos = int(y.sum())
    n_pred = len(s) - np.searchsorted(np.sort(s), thresholds, side="right")
    tp = n_pos - np.searchsorted(np.sort(s[y]), thresholds, side="right")
    return 2.0 * tp / (n_pred + n_pos)


def _optimal_threshold_center(y: np.ndarray, s: np.ndarray) -> float:
    """Centre of the (first) interval of thresholds with the best F1 (Diss. Def. 4.2).

    F1 is constant on ``[s_k, s_{k+1})`` for the sorted distinct scores ``s_k``; the first run
    ``k = a..b`` of optimal thresholds covers ``[s_a, s_{b+1})``, whose midpoint is returned.
    """
    th = np.unique(s)
    f1 = _f1_at(y, s, th)
    optimal = f1 >= f1.max() - 1e-12
    a = int(np.argmax(optimal))
    b = a
    while b + 1 < len(th) and optimal[b + 1]:
        b += 1
    upper = th[b + 1] if b + 1 < len(th) else th[b]
    return float(0.5 * (th[a] + upper))


def f1_ev(y_true: ArrayLike, scores: ArrayLike) -> float:
    """F1-EV score (Diss. Def. 4.1, Eq. 48-49): expected F1 over uniformly drawn thresholds.

    Left-endpoint Riemann sum of the piecewise-constant F1 function over the sorted distinct
    test scores ``theta_1 < ... < theta_N``::

        F1-EV = sum_{k=1}^{N-1} F1(theta_k) * (theta_{k+1} - theta_k) / (theta_N - theta_1)

    where ``F1(theta)`` predicts a sample anomalous when ``score > theta``.

    Parameters
    ----------
    y_true : (n_samples,)
        1 (True) for an anomalous sample, 0 (False) for a normal one; both must occur.
    scores : (n_samples,)
        Anomaly scores, higher = more anomalous; at least two distinct values.

    Returns
    -------
    float in [0, 1], higher is better.
    """
    y, s = _binary_inputs(y_true, scores)
    th = np.unique(s)
    if len(th) < 2:
        raise ValueError("all scores are equal: F1-EV needs at least two distinct scores")
    f1 = _f1_at(y, s, th[:-1])
    return float(np.sum(f1 * np.diff(th)) / (th[-1] - th[0]))


def bounded_f1_ev(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    beta: float = 0.2,
    theta_opt: float | None = None,
) -> float:
    """Bounded F1-EV score (Diss. Def. 4.2, Eq. 50-53; Wilkinghoff & Imoto, ICASSP 2024).

    Like :func:`f1_ev`, but the thresholds are restricted to
    ``[theta_min, theta_max] = [mean_n - beta * std_n, theta_opt + beta * std_n]`` where
    ``mean_n`` / ``std_n`` are the mean and (population, ``ddof=0``) standard deviation of the
    scores of the *normal* test samples (the ICASSP paper and its reference code; the
    dissertation's Eq. 50 writes the statistics of all test scores but its text says normal
    ones) and ``theta_opt`` is the centre of the interval of empirically optimal thresholds.
    The Riemann sum runs over ``theta_min``, every distinct score strictly inside the interval,
    and ``theta_max``, normalised by ``theta_max - theta_min``.

    Parameters
    ----------
    y_true : (n_samples,)
        1 (True) for an anomalous sample, 0 (False) for a normal one; both must occur.
    scores : (n_samples,)
        Anomaly scores, higher = more anomalous.
    beta
        Width of the margins in standard deviations of the normal scores (0.2 in the paper).
    theta_opt
        Optimal threshold; default: the centre of the first run of thresholds (distinct scores)
        with the best F1, i.e. the midpoint of ``[s_a, s_{b+1})``. (The reference code takes the
        lowest optimal score ``s_a`` instead; pass it here to reproduce that.)

    Returns
    -------
    float in [0, 1], higher is better. If ``theta_max <= theta_min`` (a system so poor that
    the best threshold lies below the normal scores' mean) the range is empty and the F1 at
    ``theta_min`` is returned, with a logged warning.
    """
    y, s = _binary_inputs(y_true, scores)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    normal = s[~y]
    mean, std = float(normal.mean()), float(normal.std())
    if theta_opt is None:
        theta_opt = _optimal_threshold_center(y, s)
    lo, hi = mean - beta * std, float(theta_opt) + beta * std
    if hi <= lo:
        logger.warning(
            "bounded F1-EV: empty threshold range [%.6g, %.6g]; returning F1 at the lower bound",
            lo,
            hi,
        )
        return float(_f1_at(y, s, np.array([lo]))[0])
    th = np.unique(s)
    th = np.concatenate([[lo], th[(th > lo) & (th < hi)], [hi]])
    f1 = _f1_at(y, s, th[:-1])
    return float(np.sum(f1 * np.diff(th)) / (hi - lo))


# --------------------------------------------------------------------------------------------
# Open-set classification (Diss. 2.10.2, 6.2)
# --------------------------------------------------------------------------------------------


def openness(n_train_classes: int, n_test_classes: int) -> float:
    """Openness of an open-set task (Diss. Def. 6.1, Eq. 63; Scheirer et al. 2013).

    ``1 - sqrt(2 N_train / (N_train + N_test))``: 0 for a closed-set task, approaching 1 as
    the number of test classes unseen in training grows. Diss. Table 28: 34 classes in test,
    34 / 29 / 24 of them in training -> 0, 0.04, 0.09.

    Parameters
    ----------
    n_train_classes
        Number of classes with training data (>= 1).
    n_test_classes
        Number of classes in the test data (>= n_train_classes).
    """
    for name, n in (("n_train_classes", n_train_classes), ("n_test_classes", n_test_classes)):
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")
    if n_test_classes < n_train_classes:
        raise ValueError(
            f"n_test_classes ({n_test_classes}) must be >= n_train_classes ({n_train_classes})"
        )
    return 1.0 - math.sqrt(2.0 * n_train_classes / (n_train_classes + n_test_classes))


def _labels(y: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def weighted_accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    unknown_label: object,
    beta: float = 0.5,
    closed_set_pred: ArrayLike | None = None,
    rejection_term: Literal["binary", "unknown"] = "binary",
) -> float:
    """Weighted accuracy of an open-set classifier (Diss. Eq. 27; beta = 0.5 in Diss. 6.2).

    ``beta * ACC_known + (1 - beta) * ACC_reject`` with

    * ``ACC_known``: the mean over the known classes ``i`` present in ``y_true`` of the
      fraction of class-``i`` clips predicted as ``i``. Eq. 27 writes a sum; its stated range
      [0, 1] and the text ("the accuracy obtained when classifying between the known
      classes") make it the mean. The class prediction is ``closed_set_pred`` when given (Eq.
      27's ``pred_class``, the top-1 known class ignoring the rejection); otherwise
      ``y_pred``, so that a rejected known clip counts as an error (the evaluation of the
      dataset's authors and of the reference code behind Diss. Table 29).
    * ``ACC_reject`` for ``rejection_term="binary"`` (Eq. 27): ``(TP + TN) / |X_test|``, the
      accuracy of the known-vs-unknown decision over all clips (a known clip is right when it
      is not rejected, an unknown clip when it is). ``"unknown"``: the fraction of the unknown
      clips that are rejected, ``A_U`` of Naranjo-Alcazar et al. and the reference code behind
      Table 29 (described as "the accuracy for the unknown classes" in Diss. A.1.3).

    Parameters
    ----------
    y_true : (n_clips,)
        True labels; unknown (unwanted) clips carry ``unknown_label``.
    y_pred : (n_clips,)
        Open-set predictions: a known class or ``unknown_label`` (rejected).
    unknown_label
        The label that marks unknown clips, e.g. ``"unknown"`` or ``-1``.
    beta
        Weight of the known-class term, in [0, 1].
    closed_set_pred : (n_clips,), optional
        Top-1 known class of every clip before rejection.
    rejection_term
        ``"binary"`` (Eq. 27, default) or ``"unknown"`` (Table 29 protocol), see above.

    Returns
    -------
    float in [0, 1], higher is better.
    """
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} entries but y_pred has {len(yp)}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if rejection_term not in ("binary", "unknown"):
        raise ValueError(f"rejection_term must be 'binary' or 'unknown', got {rejection_term!r}")
    unknown = yt == unknown_label
    rejected = yp == unknown_label
    known = ~unknown
    if not known.any():
        raise ValueError("y_true has no known-class clip: the known-class accuracy is undefined")
    cls = yp
    if closed_set_pred is not None:
        cls = _labels(closed_set_pred, "closed_set_pred")
        if len(cls) != len(yt):
            raise ValueError(f"closed_set_pred has {len(cls)} entries but y_true has {len(yt)}")
    acc_known = float(np.mean([np.mean(cls[yt == c] == c) for c in np.unique(yt[known])]))
    if rejection_term == "binary":
        acc_reject = float(np.mean(np.where(unknown, rejected, ~rejected)))
    else:
        if not unknown.any():
            raise ValueError("rejection_term='unknown' needs unknown clips in y_true, found none")
        acc_reject = float(np.mean(rejected[unknown]))
    return beta * acc_known + (1.0 - beta) * acc_reject


def _top1_roc(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike, unknown_label: object
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 ROC curve (Diss. Eq. 28-29): (FPR_top-1, TPR) points, thresholds falling.

    Positives are the unknown clips; the anomaly score is ``-scores``. A known clip is a top-1
    false positive when it is rejected *or* accepted with the wrong class, so the misclassified
    known clips are false positives at every threshold:
    ``FPR_top1 = m + (1 - m) * FPR_c`` with ``m`` the fraction of misclassified known clips and
    ``FPR_c`` the ordinary FPR over the correctly classified known clips.
    """
    from sklearn.metrics import roc_curve

    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if not len(yt) == len(yp) == len(s):
        raise ValueError(
            f"y_true, y_pred and scores differ in length: {len(yt)}, {len(yp)}, {len(s)}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(s)))} NaN or infinite values")
    unknown = yt == unknown_label
    if np.any(yp == unknown_label):
        raise ValueError(
            "y_pred must hold the top-1 known class of every clip (before any rejection), "
            f"not the unknown label {unknown_label!r}"
        )
    known = ~unknown
    if not unknown.any() or not known.any():
        raise ValueError("top-1 EER / AUC need both known and unknown clips in y_true")
    correct = known & (yp == yt)
    m = 1.0 - correct.sum() / known.sum()
    if not correct.any():
        return np.array([1.0, 1.0]), np.array([0.0, 1.0])
    keep = unknown | correct
    fpr_c, tpr, _ = roc_curve(unknown[keep], -s[keep], drop_intermediate=False)
    return m + (1.0 - m) * fpr_c, tpr


def top1_eer(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike, *, unknown_label: object
) -> float:
    """Top-1 EER of an open-set classifier (Diss. 2.10.2, Eq. 28-29; Sharma et al.).

    The EER of the known-vs-unknown decision in which a known clip also counts as a false
    positive when it is accepted with the wrong class: the point where the top-1 FPR
    (Eq. 29) equals the FNR (unknown clips accepted). The curve is interpolated linearly
    between thresholds, as in :func:`eer`.

    Parameters
    ----------
    y_true : (n_clips,)
        True labels; unknown clips carry ``unknown_label``.
    y_pred : (n_clips,)
        Top-1 known class of every clip (the argmax, never ``unknown_label``).
    scores : (n_clips,)
        Score of that top-1 class, **higher = more likely known** (e.g. the maximum cosine
        similarity to the class's shots); pass ``-anomaly_score`` for anomaly scores.
    unknown_label
        The label that marks unknown clips.

    Returns
    -------
    float in [0, 1], lower is better.
    """
    fpr, tpr = _top1_roc(y_true, y_pred, scores, unknown_label)
    return _eer_from_roc(fpr, tpr)


def top1_auc(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike, *, unknown_label: object
) -> float:
    """Top-1 AUC-ROC of an open-set classifier (Diss. 2.10.2): the ROC with the top-1 FPR.

    Area (trapezoidal rule) under (FPR_top1, TPR) of Eq. 28-29. Misclassified known clips are
    false positives at every threshold, so the curve starts at FPR = m (the misclassified
    fraction) and the area equals ``(1 - m) * AUC(unknown vs. correctly classified known)``;
    without confusions it is the ordinary AUC.

    Parameters
    ----------
    y_true, y_pred, scores, unknown_label
        As in :func:`top1_eer` (``scores``: higher = more likely known).

    Returns
    -------
    float in [0, 1], higher is better.
    """
    fpr, tpr = _top1_roc(y_true, y_pred, scores, unknown_label)
    return float(np.trapezoid(tpr, fpr))


# --------------------------------------------------------------------------------------------
# DCASE Task 2 official evaluation (Diss. 2.10.1, 3.4, 5.3; SPEC §6)
# --------------------------------------------------------------------------------------------
#
# These follow the official evaluators line by line:
# ``nttcslab/dcase2023_task2_evaluator/dcase2023_task2_evaluator.py`` (DCASE2023; the DCASE2022
# one, ``Kota-Dohi/dcase2022_evaluator/dcase2022_task2_evaluator.py``, computes the same numbers)
# and ``y-kawagu/dcase2020_task2_evaluator/evaluator.py`` (DCASE2020). Both use
# ``sklearn.metrics.roc_auc_score`` with ``max_fpr=0.1`` for the pAUC, which is what
# :func:`roc_auc` returns.

#: FPR bound of the DCASE pAUC (``MAX_FPR`` in the official evaluators).
DCASE_MAX_FPR = 0.1
#: Floor the official evaluators apply before every harmonic mean (``sys.float_info.epsilon``).
DCASE_EPS = sys.float_info.epsilon


def domain_auc(
    y_true: ArrayLike, scores: ArrayLike, in_domain: ArrayLike, max_fpr: float | None = None
) -> float:
    """AUC of one domain by the DCASE2022/2023 rule: that domain's normals plus ALL anomalies.

    The official evaluators select ``(y_domain == d) | (y_true != 0)``, so the anomalies of the
    other domain count too (this differs from "the domain's normals and the domain's anomalies",
    which the DCASE2021 evaluator and some reference code use).

    Parameters
    ----------
    y_true : (n_samples,)
        1 for an anomalous clip, 0 for a normal one (one machine type and section).
    scores : (n_samples,)
        Anomaly scores, higher = more anomalous.
    in_domain : (n_samples,)
        True for the clips of the domain (e.g. ``domain == "target"``).
    max_fpr
        As in :func:`roc_auc` (None: the full AUC).

    Returns
    -------
    float in [0, 1]
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    d = np.asarray(in_domain, dtype=bool)
    if d.shape != y.shape or s.shape != y.shape:
        raise ValueError(
            f"y_true, scores and in_domain must have one shape, got {y.shape}, {s.shape}, {d.shape}"
        )
    keep = d | (y != 0)
    if not np.any(d & (y == 0)):
        raise ValueError("the domain has no normal sample")
    return roc_auc(y[keep], s[keep], max_fpr=max_fpr)


def decision_scores(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[float, float, float]:
    """Precision, recall and F1 of binary decisions (1 = anomalous), as the DCASE evaluators.

    ``precision = tp / max(tp + fp, eps)``, ``recall = tp / max(tp + fn, eps)``,
    ``F1 = 2 P R / max(P + R, eps)`` with ``eps = sys.float_info.epsilon``, so an undefined
    ratio is 0 (no warning, no NaN).

    Parameters
    ----------
    y_true, y_pred : (n_samples,)
        0/1 (or bool) ground truth and decisions.

    Returns
    -------
    (precision, recall, f1), each in [0, 1]
    """
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {y.shape}, {p.shape}")
    for name, v in (("y_true", y), ("y_pred", p)):
        if not set(np.unique(v).tolist()) <= {0, 1}:
            raise ValueError(f"{name} must hold 0 or 1 per sample")
    y = y.astype(bool)
    p = p.astype(bool)
    tp = float(np.sum(y & p))
    fp = float(np.sum(~y & p))
    fn = float(np.sum(y & ~p))
    precision = tp / max(tp + fp, DCASE_EPS)
    recall = tp / max(tp + fn, DCASE_EPS)
    f1 = 2.0 * precision * recall / max(precision + recall, DCASE_EPS)
    return precision, recall, f1


def harmonic_mean(values: ArrayLike, *, floor: float = DCASE_EPS) -> float:
    """Harmonic mean of ``values`` after flooring them at ``floor`` (DCASE evaluators' rule).

    ``scipy.stats.hmean(numpy.maximum(values, sys.float_info.epsilon))``: a zero does not
    make the mean undefined but pulls it to ~0. NaN values are an error.
    """
    from scipy.stats import hmean

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("harmonic_mean of no values")
    if not np.all(np.isfinite(v)):
        raise ValueError("harmonic_mean: values contain NaN or infinite entries")
    return float(hmean(np.maximum(v, floor)))


@dataclass(frozen=True)
class DcaseSectionScores:
    """Scores of one machine type and section (one machine ID for DCASE2020), values in [0, 1].

    ``auc`` and ``pauc`` pool both domains ("AUC (all)" and "pAUC" of the evaluators); the
    domain fields are NaN when the domains are unknown (DCASE2020) and the decision fields are
    NaN when no decisions were given.
    """

    auc: float
    pauc: float
    auc_source: float = math.nan
    auc_target: float = math.nan
    precision_source: float = math.nan
    precision_target: float = math.nan
    recall_source: float = math.nan
    recall_target: float = math.nan
    f1_source: float = math.nan
    f1_target: float = math.nan
    n_normal: int = 0
    n_anomaly: int = 0

    def to_dict(self) -> dict:
        return dict(vars(self))


def dcase_section_scores(
    y_true: ArrayLike,
    scores: ArrayLike,
    is_target: ArrayLike | None = None,
    decisions: ArrayLike | None = None,
    *,
    max_fpr: float = DCASE_MAX_FPR,
) -> DcaseSectionScores:
    """All official numbers of one section (DCASE2022/2023) or machine ID (DCASE2020).

    Per ``output_result`` of the DCASE2023 evaluator: ``AUC (all)`` and ``pAUC`` over every
    clip of the section; ``AUC (source)``/``AUC (target)`` by :func:`domain_auc`;
    precision/recall/F1 per domain from the decisions of that domain's clips only
    (:func:`decision_scores`).

    Parameters
    ----------
    y_true : (n_clips,)
        1 anomalous, 0 normal.
    scores : (n_clips,)
        Anomaly scores, higher = more anomalous.
    is_target : (n_clips,), optional
        True for target-domain clips, False for source-domain ones; None: domains unknown
        (DCASE2020), only ``auc`` and ``pauc`` are computed.
    decisions : (n_clips,), optional
        0/1 decisions (1 = anomalous); needs ``is_target``.
    """
    y, s = _binary_inputs(y_true, scores)
    out: dict = {
        "auc": roc_auc(y, s),
        "pauc": roc_auc(y, s, max_fpr=max_fpr),
        "n_normal": int(np.sum(~y)),
        "n_anomaly": int(np.sum(y)),
    }
    if is_target is not None:
        t = np.asarray(is_target, dtype=bool)
        if t.shape != y.shape:
            raise ValueError(f"is_target has shape {t.shape} but y_true has shape {y.shape}")
        for name, mask in (("source", ~t), ("target", t)):
            out[f"auc_{name}"] = domain_auc(y, s, mask)
        if decisions is not None:
            dec = np.asarray(decisions)
            if dec.shape != y.shape:
                raise ValueError(f"decisions has shape {dec.shape} but y_true has {y.shape}")
            for name, mask in (("source", ~t), ("target", t)):
                p, r, f = decision_scores(y[mask], dec[mask])
                out[f"precision_{name}"], out[f"recall_{name}"], out[f"f1_{name}"] = p, r, f
    elif decisions is not None:
        raise ValueError("decisions are scored per domain: give is_target too")
    return DcaseSectionScores(**out)


def dcase_official_score(auc_source: ArrayLike, auc_target: ArrayLike, pauc: ArrayLike) -> float:
    """DCASE2022/2023 official score: ONE harmonic mean over all values at once.

    ``hmean(max([AUC_source of every machine/section] + [AUC_target ...] + [pAUC ...], eps))``
    (``official_score`` in the DCASE2023 evaluator; the same in DCASE2022): not a mean of
    per-machine means.

    Parameters
    ----------
    auc_source, auc_target, pauc : (n_sections,)
        One value per machine type and section.
    """
    a = np.asarray(auc_source, dtype=np.float64).ravel()
    b = np.asarray(auc_target, dtype=np.float64).ravel()
    c = np.asarray(pauc, dtype=np.float64).ravel()
    if not (len(a) == len(b) == len(c)):
        raise ValueError(f"need one value per section, got {len(a)}, {len(b)}, {len(c)}")
    return harmonic_mean(np.concatenate([a, b, c]))
