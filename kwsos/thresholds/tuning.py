"""F1 tuning of decision thresholds on labelled validation data; the half of
:mod:`kwsos.thresholds` that needs no scikit-learn (``kwsos tune`` imports only this).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["F1Tuning", "tune_f1"]


@dataclass(frozen=True)
class F1Tuning:
    """Outcome of :func:`tune_f1`.

    Attributes
    ----------
    threshold
        The chosen global threshold.
    class_thresholds
        ``(n_classes,)`` per-class thresholds (``per_class=True``), else ``None``.
    grid, f1, precision, recall
        The global sweep: every candidate threshold and the micro F1 / precision / recall at it.
    """

    threshold: float
    class_thresholds: np.ndarray | None
    grid: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def _micro(total: np.ndarray) -> tuple[float, float, float]:
    from kwsos.metrics import micro_f1

    hits, n_ref, n_est = (int(v) for v in total)
    return micro_f1({"": (hits, n_ref, n_est)})


def tune_f1(
    unit_costs: Sequence[np.ndarray],
    unit_classes: Sequence[np.ndarray],
    counts: Callable[[int, Any], np.ndarray],
    n_classes: int,
    *,
    n_thresholds: int = 200,
    per_class: bool = False,
    n_class_thresholds: int = 40,
    passes: int = 2,
    hook: Any = None,
) -> F1Tuning:
    """Thresholds that maximise micro F1 on validation data (Diss. 6.3.6).

    The data come in *units* (e.g. recordings) whose decisions are independent: unit ``i`` has
    candidate costs ``unit_costs[i]`` of classes ``unit_classes[i]``, and ``counts(i, threshold)``
    returns its ``(hits, n_reference, n_estimated)`` at a threshold (one float, or one per
    class). Sweeps re-count only the units whose candidates a threshold change touches; micro
    F1 comes from the summed counts.

    Global threshold: a sweep over ``n_thresholds`` quantiles of the finite candidate costs;
    among equally good thresholds the median one is taken. ``per_class=True`` then refines one
    threshold per class by coordinate ascent on the same micro F1 (``passes`` rounds over the
    classes, ``n_class_thresholds`` quantiles of each class's candidate costs within the global
    threshold +- its distance to the lowest cost), starting from the global threshold; a change
    is kept only if it raises F1, ties go to the value nearest the global threshold, so
    validation F1 never drops below the global one.

    Raises
    ------
    ValueError
        No finite candidate cost at all.
    """
    n_units = len(unit_costs)
    all_costs = (
        np.concatenate([np.asarray(c, np.float64) for c in unit_costs]) if n_units else np.zeros(0)
    )
    all_classes = (
        np.concatenate([np.asarray(c) for c in unit_classes]) if n_units else np.zeros(0, int)
    )
    finite = np.isfinite(all_costs)
    costs, classes = all_costs[finite], all_classes[finite]
    if not len(costs):
        raise ValueError("no finite candidate cost to choose a threshold from")
    grid = np.unique(np.quantile(costs, np.linspace(0, 1, n_thresholds)))
    cached = np.stack([counts(i, -np.inf) for i in range(n_units)])
    prev, rows_l = -np.inf, []
    for thr in grid:
        for i, rc in enumerate(unit_costs):
            if np.any((rc > prev) & (rc <= thr)):
                cached[i] = counts(i, thr)
        rows_l.append(_micro(cached.sum(axis=0)))
        prev = thr
    rows = np.array(rows_l)
    f1 = rows[:, 0]
    best = np.flatnonzero(f1 == f1.max())
    t_global = float(grid[best[len(best) // 2]])
    class_thr = None
    if per_class:
        thr_v = np.full(n_classes, t_global)
        cached = np.stack([counts(i, thr_v) for i in range(n_units)])
        total = cached.sum(axis=0)
        current = _micro(total)[0]
        lo = float(costs.min())
        for p in range(passes):
            for k in range(n_classes):
                kc = costs[classes == k]
                kc = kc[(kc >= lo) & (kc <= 2 * t_global - lo)]
                if not len(kc):
                    continue
                qs = np.quantile(kc, np.linspace(0, 1, n_class_thresholds))
                best_f, best_t, best_upd = current, thr_v[k], None
                for t in np.unique(qs):
                    a, b = min(t, thr_v[k]), max(t, thr_v[k])
                    hit = [
                        i
                        for i in range(n_units)
                        if np.any(
                            (unit_classes[i] == k) & (unit_costs[i] > a) & (unit_costs[i] <= b)
                        )
                    ]
                    trial = thr_v.copy()
                    trial[k] = t
                    upd = {i: counts(i, trial) for i in hit}
                    new_total = total + sum(
                        (upd[i] - cached[i] for i in hit), np.zeros(3, np.int64)
                    )
                    f = _micro(new_total)[0]
                    if f > best_f + 1e-12 or (
                        abs(f - best_f) <= 1e-12 and abs(t - t_global) < abs(best_t - t_global)
                    ):
                        best_f, best_t, best_upd = f, t, upd
                if best_upd is not None:
                    for i, v in best_upd.items():
                        total += v - cached[i]
                        cached[i] = v
                thr_v[k], current = best_t, best_f
            if hook is not None:
                hook("tune per class", completed=p + 1, total=passes)
        class_thr = thr_v
    return F1Tuning(t_global, class_thr, grid, f1, rows[:, 1], rows[:, 2])
