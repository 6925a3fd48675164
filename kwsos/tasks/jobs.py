"""The batch jobs of ``kwsos detect``, ``kwsos osc classify`` and ``kwsos asd score``: what
:func:`kwsos.batch.run_batch` runs over many files, on threads of this process or on a Dask
cluster (:class:`kwsos.batch.BatchJob`).

A job is a small picklable spec (a model path and options). This module is light on purpose:
it imports its task module only when a job loads its model, so that a command can start a
local cluster's fork server (:func:`kwsos.batch.start_worker_server`, which imports each job's
``preload`` modules) before it imports the heavy task modules itself. The task modules
re-export their job (``from kwsos.tasks.kws import DetectJob`` works too).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from kwsos.events import Event
    from kwsos.tasks.anomaly import AnomalyDetector
    from kwsos.tasks.kws import KeywordSpotter
    from kwsos.tasks.openset import OpenSetClassifier

__all__ = ["ClassifyJob", "DetectJob", "ScoreJob"]


@dataclass(frozen=True)
class DetectJob:
    """``kwsos detect`` over many files.

    Each process loads the bank at ``bank`` once (on a cluster the path must be readable by
    the workers), keeps only ``keywords`` (all when None) and searches every file for them with
    ``threshold`` (the bank's thresholds when None) and the ``inference`` mode. A file's value is
    its events as ``[onset_s, offset_s, keyword, cost]`` lists (:meth:`events` makes
    :class:`~kwsos.events.Event` of them). BLAS runs on one thread, as in
    :meth:`KeywordSpotter.detect_many`, so the events equal :meth:`KeywordSpotter.detect`'s
    file by file wherever they ran.
    """

    name: ClassVar[str] = "detect"
    #: imported once by a local cluster's fork server (kwsos.batch.worker_preload): the task
    #: module and what the first search would import in every worker
    preload: ClassVar[tuple[str, ...]] = (
        "kwsos.tasks.kws",
        "kwsos._biquad",
        "scipy.fft",
        "scipy.special",
        "threadpoolctl",
    )
    bank: str
    threshold: float | None = None
    keywords: tuple[str, ...] | None = None
    inference: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        from kwsos.batch import file_stamp

        return {
            "bank": os.path.abspath(self.bank),
            "bank_files": file_stamp(self.bank),
            "threshold": self.threshold,
            "keywords": sorted(self.keywords) if self.keywords else None,
            "inference": self.inference,
        }

    def load(self) -> tuple[KeywordSpotter, Any]:
        from kwsos.tasks.kws import BankError, KeywordSpotter

        spotter = KeywordSpotter.load(self.bank)
        if spotter.needs_training:
            raise BankError(
                f"the embedding network of {self.bank} is out of date (keywords were enrolled "
                f"with --no-train); run: kwsos train --bank {self.bank}"
            )
        if self.inference is not None:
            spotter.set_inference(self.inference)
        if self.keywords:
            for kw in self.keywords:
                spotter.n_shots(kw)  # raises on an unknown keyword
            for kw in set(spotter.keywords) - set(self.keywords):
                spotter.remove(kw)
        spotter.fit()
        return spotter, spotter._threshold_arg(self.threshold)

    def run(self, model: tuple[KeywordSpotter, Any], items: list[Any]) -> list[Any]:
        spotter, thr = model
        return [
            [[float(e.onset), float(e.offset), e.label, float(e.cost)] for e in events]
            for events in (spotter._detect_one(item, thr) for item in items)
        ]

    def context(self) -> Any:
        from kwsos.parallel import single_threaded_blas

        return single_threaded_blas()

    @staticmethod
    def events(name: str, value: list[Any]) -> list[Event]:
        """The events of one file's value (named by the file's base name, as
        :meth:`KeywordSpotter.detect` names them)."""
        from kwsos.events import Event

        base = Path(name).name
        return [Event(base, on, off, label, cost) for on, off, label, cost in value]


@dataclass(frozen=True)
class ClassifyJob:
    """``kwsos osc classify`` over many clips.

    Each process loads the classifier saved at ``model`` once; a list of clips is classified in
    one :meth:`OpenSetClassifier.predict_details` call (read and embedded in batches). A clip's
    value: ``{"label", "top_class", "score", "similarities": {class: similarity}}``.
    """

    name: ClassVar[str] = "osc-classify"
    #: imported once by a local cluster's fork server (kwsos.batch.worker_preload)
    preload: ClassVar[tuple[str, ...]] = ("kwsos.tasks.openset", "torch")
    model: str
    threshold: float | None = None

    def fingerprint(self) -> dict[str, Any]:
        from kwsos.batch import file_stamp

        return {
            "model": str(Path(self.model).resolve()),
            "model_file": file_stamp(self.model),
            "threshold": self.threshold,
        }

    def load(self) -> OpenSetClassifier:
        from kwsos.tasks.openset import OpenSetClassifier

        return OpenSetClassifier.load(self.model)

    def run(self, model: OpenSetClassifier, items: list[Any]) -> list[Any]:
        res = model.predict_details([str(p) for p in items], threshold=self.threshold)
        return [
            {
                "label": str(res.labels[j]),
                "top_class": str(res.top_class[j]),
                "score": float(res.decision_scores[j]),
                "similarities": {
                    c: float(s) for c, s in zip(model.classes_, res.similarities[j], strict=True)
                },
            }
            for j in range(len(items))
        ]

    def context(self) -> Any:
        return nullcontext()


@dataclass(frozen=True)
class ScoreJob:
    """``kwsos asd score`` over many clips: each process loads the detector saved at ``model``
    once; a clip's value is its anomaly score (higher = more anomalous). Items are
    :class:`~kwsos.dcase.AsdClip` (or anything :meth:`AnomalyDetector.score_samples` takes)."""

    name: ClassVar[str] = "asd-score"
    #: imported once by a local cluster's fork server (kwsos.batch.worker_preload)
    preload: ClassVar[tuple[str, ...]] = ("kwsos.tasks.anomaly", "torch")
    model: str

    def fingerprint(self) -> dict[str, Any]:
        from kwsos.batch import file_stamp

        return {"model": str(Path(self.model).resolve()), "model_file": file_stamp(self.model)}

    def load(self) -> AnomalyDetector:
        from kwsos.tasks.anomaly import AnomalyDetector

        return AnomalyDetector.load(self.model)

    def run(self, model: AnomalyDetector, items: list[Any]) -> list[Any]:
        return [float(s) for s in model.score_samples(items)]

    def context(self) -> Any:
        return nullcontext()
