"""Metrics shared by the kwsos tasks.

Keyword spotting is scored like sound event detection (Diss. 2.10, 6.3.2): event-based,
micro-averaged F1 / precision / recall as implemented by sed_eval's ``EventBasedMetrics`` with a
0.2 s onset collar and an offset collar of max(0.2 s, 50 % of the reference event's length).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PureWindowsPath

from kwsos.events import Event, events_by_file

__all__ = ["ClassScores", "EventScores", "event_based_scores", "file_key"]


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
