"""Few-shot open-set classification: which of my sounds is this, or none of them (Diss. 6.2).

:class:`OpenSetClassifier` is the "directly trained" system of Diss. 6.2.2 (Wilkinghoff et al.,
EUSIPCO 2023, Sec. III-B):

The frontend, the embedding network and its training are the shared clip embedder
(:mod:`kwsos.embeddings.clip`), the backend is the shared cosine scorer
(:class:`~kwsos.backends.cosine.CosineScorer`); this module holds the open-set decision.

1. **Frontend.** Every clip is cut to a fixed length (Diss. 6.2.1: 4 s; longer clips keep their
   first ``clip_s`` seconds as in the reference implementation, shorter ones are zero-padded at
   the end) and turned into a log-Mel spectrogram (:class:`~kwsos.features.LogMel`).
2. **Embedding model.** The clip ResNet of Diss. Table 4 (:class:`~kwsos.models.ClipResNet`),
   trained on the shots alone to discriminate the classes with the sub-cluster AdaCos loss with
   **one fixed (non-trainable) centre per class** (Diss. 6.2.2: "only a single sub-cluster per
   class"; the reference code uses ``SCAdaCos(n_subclusters=1, trainable=False)``) and mixup
   with ``lambda ~ U(0, 1)``, Adam, random oversampling. The training length follows the size
   of the training set: ``epochs = 100 x shots`` and ``batch = 8 x shots`` (Diss. 6.2.2, "to
   obtain more robust decision thresholds").
3. **Backend.** The score of a clip for a class is the maximum cosine similarity between the
   clip's embedding and the embeddings of that class's shots (Diss. 6.2.2; SPEC §4).
4. **Decision.** The clip gets the class with the highest score; it is "unknown" when that score
   is below the threshold (Diss. 6.2.2: 0.6 / 0.65 / 0.75 for low / middle / high openness) or
   when the most similar training shot belongs to a *known unknown* class (training sounds that
   are none of the classes, ``unknown_shots``; the rule of the reference implementation).

Differences from the paper, on purpose:

* the paper's directly trained network is the two-branch DCASE2022 ASD model (STFT ResNet +
  full-length DFT branch, Diss. 5.3); here it is the single log-Mel branch of Diss. Table 4 (the
  toolkit's clip network), which is cheaper on a CPU. The log-Mel input is standardised per Mel
  bin by a batch-norm layer inside the network;
* two augmentations of the training clips (both on by default, both can be switched off):
  a random circular time shift and a random speed perturbation (+-10 %, pitch and tempo
  together). Without them a network trained on one shot per class memorises where in the clip
  the shot's events sit and its exact pitch: on the development copy of the local alarm
  benchmark the closed-set accuracy of 1-shot models rose from 44 % to 79 % (100 epochs; see
  ``recipes/alarm_osc/README.md``).

Beyond the paper (all off by default, so that ``OpenSetClassifier()`` is the paper's system):

* **a pretrained starting point** (``model.init``): a pretraining run trains the same network on many
  labelled classes (e.g. the procedurally generated alarm-like classes of
  :mod:`data_prep.make_alarm_pretrain`, each played by several devices;
  :func:`kwsos.embeddings.clip.pretrain`), :func:`~kwsos.embeddings.clip.save_pretrained`
  writes it, and a fit fine-tunes it on the shots (``finetune_epochs / shots`` epochs) or, with
  ``epochs=0``, uses it as it is. kwsos ships two (``init="real"``: real recordings under
  varied backgrounds and devices; ``init="synthetic"``, alias ``"bundled"``: generated
  alarm-like sounds); ``keep_pretrained`` keeps the unchanged network beside the fine-tuned
  one. The CLI uses :data:`PRETRAINED_SYSTEM` (mean weighted accuracy 91.8 % on the
  real-recording benchmark, 96.4 % on the synthetic one; the synthetic prior 78.3 / 97.0 %, the
  directly trained system 87.6 % on the synthetic one: ``recipes/alarm_osc/RESULTS_real.md``,
  ``RESULTS.md``);
* **ensembles** (``ensemble``): several networks, a clip's embedding being their normalised
  embeddings side by side (so similarities are averaged);
* **speed-changed references** (``reference_speeds``): each shot is also a reference of its
  class played a little faster or slower (:func:`kwsos.augment.change_speed`).

Threshold. ``OpenSetConfig.threshold`` fixes it (the paper's way). When it is ``None`` it is
estimated at :meth:`OpenSetClassifier.fit` with a :mod:`kwsos.thresholds` estimator fitted on
*leave-one-out* anomaly scores of the training shots: for every shot of a class with at least
two shots, ``1 - max cos`` to the *other* shots of its class. These shots were trained on, so
their similarities are optimistic and the estimated threshold tends to be strict (more
rejections); with one shot per class there is nothing to fit (only the self-similarity 1) and
:meth:`~OpenSetClassifier.fit` raises. See ``recipes/alarm_osc`` for fixed thresholds chosen on
a development benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from kwsos import __version__
from kwsos.backends.cosine import CosineScorer
from kwsos.config import Config
from kwsos.embeddings.clip import (
    Clip,
    ClipEmbedder,
    ClipFrontendConfig,
    ClipModelConfig,
    ClipTrainingConfig,
)
from kwsos.errors import KwsosError
from kwsos.hooks import Hook, call_hook
from kwsos.io import atomic_output
from kwsos.tasks.jobs import ClassifyJob  # noqa: F401  (re-exported: the job of this task)

__all__ = [
    "MODEL_FORMAT",
    "ClassifyJob",
    "OpenSetBackendConfig",
    "OpenSetClassifier",
    "OpenSetConfig",
    "OpenSetDecisionConfig",
    "OpenSetPrediction",
    "PRETRAINED_SYSTEM",
]

log = logging.getLogger(__name__)

#: Identifies a saved classifier (``format`` entry of the model file).
MODEL_FORMAT = "kwsos-openset/3"
#: Older formats :meth:`OpenSetClassifier.load` still reads (flat configuration; /1: one
#: network, no ``shot_ids``).
_OLD_FORMATS = ("kwsos-openset/1", "kwsos-openset/2")


@dataclass(frozen=True)
class OpenSetBackendConfig(Config):
    """The cosine backend's references.

    Attributes
    ----------
    reference_speeds
        Extra references per shot: besides its own embedding, each shot played at these speeds
        (:func:`kwsos.augment.change_speed`, e.g. ``(0.94, 1.06)``) is a reference of its class
        for the max-similarity backend, so that a device that plays the alarm a little higher
        or lower still meets a close reference. Not in the paper (``()`` = the paper's backend).
    """

    reference_speeds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference_speeds", tuple(float(r) for r in self.reference_speeds))
        if not all(0.5 <= r <= 2.0 and r != 1.0 for r in self.reference_speeds):
            raise KwsosError(
                f"reference_speeds are speed factors in [0.5, 2] other than 1, got "
                f"{list(self.reference_speeds)}"
            )


@dataclass(frozen=True)
class OpenSetDecisionConfig(Config):
    """The open-set decision.

    Attributes
    ----------
    threshold
        Minimum cosine similarity for a known class; below it a clip is unknown (Diss. 6.2.2:
        0.6 / 0.65 / 0.75 for low / middle / high openness). ``None``: estimate it at fit time
        (module docstring).
    threshold_estimator
        :func:`kwsos.thresholds.get_threshold_estimator` name used when ``threshold`` is None.
    unknown_label
        Label predicted for rejected clips; no class may carry it.
    """

    threshold: float | None = 0.65
    threshold_estimator: str = "sd"
    unknown_label: str = "unknown"

    def __post_init__(self) -> None:
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise KwsosError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if self.threshold is None:
            from kwsos.thresholds import get_threshold_estimator

            try:
                get_threshold_estimator(self.threshold_estimator)
            except ValueError as exc:
                raise KwsosError(str(exc)) from None
        if not self.unknown_label:
            raise KwsosError("unknown_label must be a non-empty string")


@dataclass(frozen=True)
class OpenSetConfig(Config):
    """Settings of :class:`OpenSetClassifier`, in sections (Diss. 6.2.2 unless stated otherwise).

    ``frontend`` (:class:`~kwsos.embeddings.clip.ClipFrontendConfig`), ``model``
    (:class:`~kwsos.embeddings.clip.ClipModelConfig`), ``training``
    (:class:`~kwsos.embeddings.clip.ClipTrainingConfig`), ``backend``
    (:class:`OpenSetBackendConfig`) and ``decision`` (:class:`OpenSetDecisionConfig`).
    :meth:`~kwsos.config.Config.from_flat` and ``OpenSetClassifier(**options)`` take the
    fields of all sections as flat keywords (``threshold=0.6, epochs=0``).
    """

    frontend: ClipFrontendConfig = field(default_factory=ClipFrontendConfig)
    model: ClipModelConfig = field(default_factory=ClipModelConfig)
    training: ClipTrainingConfig = field(default_factory=ClipTrainingConfig)
    backend: OpenSetBackendConfig = field(default_factory=OpenSetBackendConfig)
    decision: OpenSetDecisionConfig = field(default_factory=OpenSetDecisionConfig)

    def __post_init__(self) -> None:
        if self.training.epochs == 0 and not self.model.init:
            raise KwsosError("epochs must be a positive integer, got 0 (0 needs a pretrained init)")

    def schedule(self, shots: int) -> tuple[int, int]:
        """``(epochs, batch_size)`` for ``shots`` shots per class (Diss. 6.2.2 when not fixed)."""
        return self.training.schedule(shots, finetune=bool(self.model.init))


@dataclass
class OpenSetPrediction:
    """Everything :meth:`OpenSetClassifier.predict_details` decides for ``n`` clips.

    Attributes
    ----------
    labels : (n,) object
        The predicted class, or the unknown label.
    top_class : (n,) object
        The most similar *known* class (closed-set prediction, ignoring any rejection).
    scores : (n,) float
        Its similarity, the maximum over the known classes (higher = more like a known class).
    similarities : (n, n_classes) float
        Maximum cosine similarity to each known class's shots (``classes_`` order).
    unknown_similarity : (n,) float
        Maximum similarity to the known-unknown shots (``-inf`` when there are none).
    decision_scores : (n,) float
        ``scores``, minus 2 where a known-unknown shot is more similar than every known class:
        higher = more likely known, and a clip is rejected exactly when its decision score is
        below the threshold (any threshold in [-1, 1]). The score for ROC-type metrics.
    """

    labels: np.ndarray
    top_class: np.ndarray
    scores: np.ndarray
    similarities: np.ndarray
    unknown_similarity: np.ndarray = field(repr=False)
    decision_scores: np.ndarray = field(repr=False)


class OpenSetClassifier:
    """Few-shot open-set classifier: the class of a clip, or "unknown" (Diss. 6.2).

    scikit-learn style: ``__init__`` stores the configuration, :meth:`fit` trains and returns
    ``self``, learned state ends in ``_``. See the module docstring for the method.

    Parameters
    ----------
    config : OpenSetConfig, optional
    **options
        Fields of :class:`OpenSetConfig` overriding ``config``'s.

    Attributes
    ----------
    classes_ : list of str
        Known classes (sorted), the columns of :meth:`class_similarities`.
    unknown_classes_ : list of str
        Known-unknown training classes (trained as classes, predicted as unknown).
    threshold_ : float
        Similarity threshold in use.
    shot_embeddings_ : (n_references, ensemble x dim) float32
        L2-normalised embeddings of all training shots (followed by those of the shots played at
        ``reference_speeds``, one block per speed).
    shot_classes_ : (n_references,) int
        Index of every reference's class in ``classes_ + unknown_classes_``.
    shot_ids_ : (n_references,) int
        Index of the training shot every reference was made from.
    embedder_ : ClipEmbedder
        The trained clip embedder (:mod:`kwsos.embeddings.clip`).
    models_ : list of ClipResNet
        Its networks: the pretrained one first with ``keep_pretrained``, then the
        ``ensemble`` trained ones.
    scorer_ : CosineScorer
        The backend holding the reference embeddings.
    train_log_ : dict
        :class:`kwsos.training.TrainLog` of the fit (of the last network), as a dict.
    train_logs_ : list of dict
        The logs of all networks.

    Examples
    --------
    >>> shots = {"doorbell": ["d1.wav"], "smoke": ["s1.wav"]}
    >>> clf = OpenSetClassifier(threshold=0.65).fit(shots)  # doctest: +SKIP
    >>> clf.predict(["clip.wav"])  # doctest: +SKIP
    array(['doorbell'], dtype=object)
    """

    def __init__(self, config: OpenSetConfig | None = None, **options: Any) -> None:
        config = config if config is not None else OpenSetConfig()
        self.config = config.replace_flat(**options) if options else config
        self.frontend = ClipEmbedder(self.config.frontend).frontend

    def features(self, clips: Sequence[Clip], *, what: str = "clip") -> np.ndarray:
        """Fixed-length log-Mel clips ``(n, n_frames, n_mels)`` float32
        (:class:`~kwsos.embeddings.clip.ClipFrontend`).

        Parameters
        ----------
        clips
            Paths (any format soundfile reads; resampled to 16 kHz, mono, 50 Hz high-pass, peak
            normalised as by :func:`kwsos.audio.load_audio`; only the first ``clip_s`` seconds
            are read, and normalised by their own peak) or 1-D float arrays at 16 kHz (given the same high-pass and
            normalisation).
        """
        return self.frontend(clips, what=what)

    def change_speed(self, x: np.ndarray, speed: float) -> np.ndarray:
        """Log-Mel clips played ``speed`` times faster (extra references of the shots)."""
        return self.frontend.change_speed(x, speed)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        shots: Mapping[str, Sequence[Clip]],
        unknown_shots: Mapping[str, Sequence[Clip]] | None = None,
        *,
        hook: Hook | None = None,
    ) -> Self:
        """Train the embedding model on the shots and store their embeddings.

        Parameters
        ----------
        shots
            ``{class: [clip, ...]}`` with the shots of every known class (paths or 16 kHz
            waveforms, see :meth:`features`).
        unknown_shots
            ``{name: [clip, ...]}`` of *known unknown* sounds, which are none of the classes
            (Diss. Table 28, "known unknown"): each name is trained as a class of its own and a
            clip nearest to one of them is predicted unknown.
        hook
            Progress callback ``hook(step, completed=, total=, **info)`` (steps ``"features"``
            and ``"train"``).

        Raises
        ------
        KwsosError
            No class, an empty class, fewer than two classes in all, a class named like the
            unknown label or given twice, unreadable audio; with ``threshold=None`` and one shot
            per class.
        """
        known = _check_classes(shots, "shots", self.config.decision.unknown_label)
        unknown = _check_classes(
            unknown_shots or {}, "unknown shots", self.config.decision.unknown_label
        )
        _check_split(known, unknown)
        every = {**dict(shots), **dict(unknown_shots or {})}
        total = sum(len(every[name]) for name in known + unknown)
        done = 0
        feats: dict[str, np.ndarray] = {}
        for name in known + unknown:
            feats[name] = self.features(every[name], what="shot")
            done += len(every[name])
            call_hook(hook, "features", completed=done, total=total)
        return self.fit_features(
            {k: feats[k] for k in known}, {k: feats[k] for k in unknown}, hook=hook
        )

    def fit_features(
        self,
        features: Mapping[str, np.ndarray],
        unknown_features: Mapping[str, np.ndarray] | None = None,
        *,
        hook: Hook | None = None,
    ) -> Self:
        """:meth:`fit` on precomputed log-Mel clips ``{class: (n, n_frames, n_mels)}`` (from
        :meth:`features`), e.g. to share one feature pass between many fits in a recipe."""
        c = self.config
        unknown_label = c.decision.unknown_label
        known = _check_classes(features, "features", unknown_label)
        unknown = _check_classes(unknown_features or {}, "unknown features", unknown_label)
        _check_split(known, unknown)
        every = {**dict(features), **dict(unknown_features or {})}
        parts, ids = [], []
        for k, name in enumerate(known + unknown):
            x = self.frontend.check(every[name], name)
            parts.append(x)
            ids += [k] * len(x)
        x = np.concatenate(parts)
        class_ids = np.asarray(ids)
        log.info("%d known + %d unknown classes", len(known), len(unknown))
        embedder = ClipEmbedder(c.frontend, c.model, c.training)
        embedder.fit(x, class_ids, len(known) + len(unknown), hook=hook)
        self.embedder_ = embedder
        self.models_ = embedder.models_
        self.classes_ = known
        self.unknown_classes_ = unknown
        self.train_logs_ = embedder.train_logs_
        self.train_log_ = self.train_logs_[-1]
        # the shots, then one block of speed-changed shots per reference speed
        refs = [x] + [self.change_speed(x, r) for r in c.backend.reference_speeds]
        emb = embedder.embed_features(np.concatenate(refs))
        self._set_references(
            emb, np.tile(class_ids, len(refs)), np.tile(np.arange(len(x)), len(refs))
        )
        self.threshold_ = (
            float(c.decision.threshold)
            if c.decision.threshold is not None
            else self._estimate_threshold()
        )
        log.info(
            "fitted %d network(s) in %.1f s; threshold %.4f",
            len(self.models_),
            sum(t["seconds"] for t in self.train_logs_),
            self.threshold_,
        )
        return self

    @classmethod
    def from_references(
        cls,
        references: np.ndarray,
        reference_classes: np.ndarray,
        classes: Sequence[str],
        unknown_classes: Sequence[str] = (),
        *,
        threshold: float,
        config: OpenSetConfig | None = None,
        **options: Any,
    ) -> OpenSetClassifier:
        """A classifier without networks that decides on precomputed, L2-normalised embeddings
        (:meth:`decide`): e.g. to re-score saved embeddings with other references or thresholds
        in a recipe. ``reference_classes`` index ``classes + unknown_classes``."""
        clf = cls(config, **options)
        clf.classes_ = list(classes)
        clf.unknown_classes_ = list(unknown_classes)
        refs = np.asarray(references, np.float32)
        clf._set_references(refs, np.asarray(reference_classes), np.arange(len(refs)))
        clf.threshold_ = float(threshold)
        return clf

    def _set_references(self, emb: np.ndarray, classes: np.ndarray, ids: np.ndarray) -> None:
        self.shot_embeddings_ = np.asarray(emb, np.float32)
        self.shot_classes_ = np.asarray(classes, np.int64)
        self.shot_ids_ = np.asarray(ids, np.int64)
        self.scorer_ = CosineScorer(assume_normalized=True).fit(
            self.shot_embeddings_, self.shot_classes_
        )

    def _estimate_threshold(self) -> float:
        """Similarity threshold from leave-one-out scores of the shots (module docstring)."""
        from kwsos.thresholds import get_threshold_estimator

        # the shots themselves (not their speed-changed copies), each against the other shots
        # of its class and their copies
        emb, ids, src = self.shot_embeddings_, self.shot_classes_, self.shot_ids_
        own = np.flatnonzero(src == np.arange(len(src)))  # first block: the shots
        sims = emb[own] @ emb.T
        same = (ids[own, None] == ids[None, :]) & (src[own, None] != src[None, :])
        loo = np.where(same, sims, -np.inf).max(axis=1)
        loo = loo[np.isfinite(loo)]
        if loo.size == 0:
            raise KwsosError(
                "cannot estimate a threshold with one shot per class (the only score of a shot "
                "is its similarity to itself); give a threshold, e.g. 0.65 (Diss. 6.2.2)"
            )
        est = get_threshold_estimator(self.config.decision.threshold_estimator).fit(1.0 - loo)
        threshold = float(np.clip(1.0 - est.threshold_, -1.0, 1.0))
        log.info(
            "threshold %.4f estimated (%s) from %d leave-one-out shot similarities",
            threshold,
            self.config.decision.threshold_estimator,
            loo.size,
        )
        return threshold

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "embedder_"):
            raise KwsosError("the classifier is not fitted yet: call fit() or load() first")

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``(n, n_networks x dim)`` of log-Mel clips ``(n, n_frames,
        n_mels)`` (:meth:`kwsos.embeddings.clip.ClipEmbedder.embed_features`)."""
        self._check_fitted()
        return self.embedder_.embed_features(x)

    def transform(self, clips: Sequence[Clip], *, hook: Hook | None = None) -> np.ndarray:
        """L2-normalised clip embeddings ``(n, dim)``: :meth:`embed_features` of
        :meth:`features`, with the clips read and featurised while the networks embed the
        previous batch (:meth:`kwsos.embeddings.clip.ClipEmbedder.transform`; ``hook("embed",
        completed=, total=)`` after every batch)."""
        self._check_fitted()
        return self.embedder_.transform(clips, hook=hook)

    def _class_similarities(self, emb: np.ndarray) -> np.ndarray:
        """Max cosine similarity to each training class's shots, ``(n, n_known + n_unknown)``."""
        return self.scorer_.class_similarities(emb)

    def decide(
        self, embeddings: np.ndarray, *, threshold: float | None = None
    ) -> OpenSetPrediction:
        """Decisions for precomputed embeddings ``(n, dim)`` (from :meth:`transform`)."""
        if not hasattr(self, "scorer_"):
            raise KwsosError("the classifier is not fitted yet: call fit() or load() first")
        thr = self.threshold_ if threshold is None else float(threshold)
        sims = self._class_similarities(np.asarray(embeddings, np.float32))
        n_known = len(self.classes_)
        known_sims = sims[:, :n_known]
        unknown_sim = (
            sims[:, n_known:].max(axis=1)
            if sims.shape[1] > n_known
            else np.full(len(sims), -np.inf)
        )
        best = known_sims.argmax(axis=1)
        scores = known_sims[np.arange(len(sims)), best]
        top = np.asarray(self.classes_, dtype=object)[best]
        nearer_unknown = unknown_sim > scores
        decision = np.where(nearer_unknown, scores - 2.0, scores)
        labels = np.where(decision < thr, self.config.decision.unknown_label, top).astype(object)
        return OpenSetPrediction(labels, top, scores, known_sims, unknown_sim, decision)

    def predict_details(
        self,
        clips: Sequence[Clip],
        *,
        threshold: float | None = None,
        hook: Hook | None = None,
    ) -> OpenSetPrediction:
        """Labels, closed-set classes and scores of ``clips`` from one pass of the network
        (:meth:`transform`; give all clips at once: they are read and embedded in batches,
        with progress reported to ``hook``)."""
        return self.decide(self.transform(clips, hook=hook), threshold=threshold)

    def class_similarities(self, clips: Sequence[Clip]) -> np.ndarray:
        """Similarity to every known class, ``(n, n_classes)``: higher = more like that class.

        The maximum cosine similarity between a clip's embedding and the embeddings of the
        class's shots (Diss. 6.2.2); columns in ``classes_`` order.
        """
        return self.predict_details(clips).similarities

    def score_samples(self, clips: Sequence[Clip]) -> np.ndarray:
        """Maximum similarity to any known class, ``(n,)``: higher = more likely known.

        Clips more similar to a known-unknown shot than to any class get this similarity minus
        2 (:attr:`OpenSetPrediction.decision_scores`), so that :meth:`predict` rejects exactly
        the clips whose score is below the threshold.
        """
        return self.predict_details(clips).decision_scores

    def decision_function(self, clips: Sequence[Clip]) -> np.ndarray:
        """``score_samples - threshold_``, ``(n,)``: positive = predicted as a known class
        (scikit-learn's convention)."""
        self._check_fitted()
        return self.score_samples(clips) - self.threshold_

    def predict(self, clips: Sequence[Clip], *, threshold: float | None = None) -> np.ndarray:
        """Class of every clip, or ``config.unknown_label``, ``(n,)`` object array."""
        return self.predict_details(clips, threshold=threshold).labels

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the classifier to one file (atomically): config, network, shot embeddings.

        The file is a ``torch.save`` dictionary of tensors and plain values (loaded with
        ``weights_only=True``) holding ``format``, ``kwsos_version``, ``config``, the networks'
        architectures and state dicts, the classes, the reference embeddings with their classes
        and source shots, the threshold and the training logs.
        """
        import torch

        self._check_fitted()
        path = Path(path)
        if path.is_dir():
            raise KwsosError(f"{path} is a directory; give a file name for the model")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": MODEL_FORMAT,
            "kwsos_version": __version__,
            "config": self.config.to_dict(),
            "models": self.embedder_.state(),
            "classes": list(self.classes_),
            "unknown_classes": list(self.unknown_classes_),
            "shot_embeddings": torch.from_numpy(self.shot_embeddings_.copy()),
            "shot_classes": torch.from_numpy(self.shot_classes_.astype(np.int64)),
            "shot_ids": torch.from_numpy(self.shot_ids_.astype(np.int64)),
            "threshold": float(self.threshold_),
            "train_logs": self.train_logs_,
        }
        with atomic_output(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OpenSetClassifier:
        """Read a classifier written by :meth:`save`."""
        from kwsos.io import read_model_file

        path = Path(path)
        state, fmt = read_model_file(
            path, what="open-set model", current=MODEL_FORMAT, old=_OLD_FORMATS
        )
        try:
            if fmt == MODEL_FORMAT:
                config = OpenSetConfig.from_dict(state["config"])
            else:  # flat configuration of kwsos 0.1.0
                config = OpenSetConfig.from_flat(state["config"])
            clf = cls(config)
            nets = state["models"] if fmt != "kwsos-openset/1" else [state]
            embedder = ClipEmbedder(config.frontend, config.model, config.training)
            clf.embedder_ = embedder.load_state(nets)
            clf.models_ = embedder.models_
            clf.classes_ = list(state["classes"])
            clf.unknown_classes_ = list(state["unknown_classes"])
            emb = state["shot_embeddings"].numpy().astype(np.float32)
            classes = state["shot_classes"].numpy().astype(np.int64)
            n_refs = len(classes)
            ids = (
                state["shot_ids"].numpy().astype(np.int64)
                if "shot_ids" in state
                else np.arange(n_refs)
            )
            clf._set_references(emb, classes, ids)
            clf.threshold_ = float(state["threshold"])
            if not -1.0 <= clf.threshold_ <= 1.0:  # also rejects NaN
                raise ValueError(f"threshold {clf.threshold_} is not a cosine similarity")
            if not np.all(np.isfinite(emb)) or emb.ndim != 2 or len(emb) != n_refs:
                raise ValueError("the stored reference embeddings are not finite (n, dim) rows")
            n_cls = len(clf.classes_) + len(clf.unknown_classes_)
            if n_refs == 0 or classes.min() < 0 or classes.max() >= n_cls:
                raise ValueError("the reference classes do not match the class lists")
            clf.train_logs_ = [
                dict(t) for t in state.get("train_logs", [state.get("train_log", {})])
            ]
            clf.train_log_ = clf.train_logs_[-1]
            dims = sum(m.dim for m in clf.models_)
            if clf.shot_embeddings_.shape[1] != dims or len(clf.shot_ids_) != n_refs:
                raise ValueError("the networks do not match the stored embeddings")
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise KwsosError(
                f"open-set model {path} is damaged: {' '.join(str(exc).split())[:300]}"
            ) from None
        if state.get("kwsos_version") != __version__:
            log.info("%s was written by kwsos %s", path, state.get("kwsos_version"))
        return clf

    def __repr__(self) -> str:
        fitted = (
            f", classes={self.classes_}, threshold={self.threshold_:.3f}"
            if hasattr(self, "classes_")
            else ""
        )
        return f"OpenSetClassifier({self.config!r}{fitted})"


#: The kwsos system on top of the shipped real-recording network (``init="real"``; the CLI's
#: default, ``recipes/alarm_osc/conf/pretrained_real_inv.json``): fine-tune it, keep it beside
#: the fine-tuned network, speed-changed shots as extra references, threshold 0.47 (chosen on
#: the validation folds of the real-recording benchmark, ``recipes/alarm_osc/RESULTS_real.md``).
PRETRAINED_SYSTEM: dict[str, Any] = {
    "init": "real",
    "keep_pretrained": True,
    "reference_speeds": (0.92, 0.96, 1.04, 1.08),
    "threshold": 0.47,
}  # flat options: OpenSetClassifier(**PRETRAINED_SYSTEM) / OpenSetConfig.from_flat


def _check_split(known: list[str], unknown: list[str]) -> None:
    if not known:
        raise KwsosError("no classes given: at least one class with shots is needed")
    both = set(known) & set(unknown)
    if both:
        raise KwsosError(f"class(es) both known and unknown: {', '.join(sorted(both))}")
    if len(known) + len(unknown) < 2:
        raise KwsosError(
            f"only one class ({(known + unknown)[0]!r}): an open-set classifier needs at least "
            "two classes, or one class and some unknown shots"
        )


def _check_classes(shots: Mapping[str, Sequence[Clip]], what: str, unknown_label: str) -> list[str]:
    if not isinstance(shots, Mapping):
        raise KwsosError(
            f"{what} must be a mapping {{class: [clip, ...]}}, got {type(shots).__name__}"
        )
    names = []
    for name, clips in shots.items():
        if not isinstance(name, str) or not name.strip():
            raise KwsosError(f"{what}: class names must be non-empty strings, got {name!r}")
        if name == unknown_label:
            raise KwsosError(
                f"{what}: a class may not be called {unknown_label!r} (the label of rejected "
                "clips); pass such sounds as unknown shots"
            )
        if isinstance(clips, str | Path) or (isinstance(clips, np.ndarray) and clips.ndim == 1):
            raise KwsosError(f"{what}: class {name!r} needs a list of clips, got a single clip")
        if len(clips) == 0:
            raise KwsosError(f"{what}: class {name!r} has no clips")
        names.append(name)
    return sorted(names)
