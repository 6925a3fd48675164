"""Few-shot open-set classification: which of my sounds is this, or none of them (Diss. 6.2).

:class:`OpenSetClassifier` is the "directly trained" system of Diss. 6.2.2 (Wilkinghoff et al.,
EUSIPCO 2023, Sec. III-B):

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

* **a pretrained starting point** (``init``): :func:`pretrain` trains the same network on many
  labelled classes (e.g. the procedurally generated alarm-like classes of
  :mod:`data_prep.make_alarm_pretrain`, each played by several devices), :func:`save_pretrained`
  writes it, and a fit fine-tunes it on the shots (``finetune_epochs / shots`` epochs) or, with
  ``epochs=0``, uses it as it is. ``init="bundled"`` is the network shipped with kwsos;
  ``keep_pretrained`` keeps the unchanged network beside the fine-tuned one. The CLI and the
  ``recipes/alarm_osc`` default use :data:`PRETRAINED_SYSTEM` (mean weighted accuracy on the
  local alarm benchmark 97.0 %, the direct system 87.6 %: ``recipes/alarm_osc/RESULTS.md``);
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

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy.signal import lfilter

from kwsos import __version__
from kwsos._atomic import atomic_output
from kwsos.audio import HIGHPASS_HZ, SAMPLE_RATE, SILENCE_PEAK, highpass_coefficients, stream_audio
from kwsos.errors import KwsosError

__all__ = [
    "MODEL_FORMAT",
    "OpenSetClassifier",
    "OpenSetConfig",
    "OpenSetPrediction",
    "PRETRAINED_SYSTEM",
    "load_pretrained",
    "pretrained_frontend",
    "pretrain",
    "save_pretrained",
]

log = logging.getLogger(__name__)

#: Identifies a saved classifier (``format`` entry of the model file).
MODEL_FORMAT = "kwsos-openset/2"
#: Older formats :meth:`OpenSetClassifier.load` still reads (/1: one network, no ``shot_ids``).
_OLD_FORMATS = ("kwsos-openset/1",)

Clip = np.ndarray | str | Path
Hook = Callable[..., None]
_EMBED_BATCH = 64


@dataclass(frozen=True)
class OpenSetConfig:
    """Settings of :class:`OpenSetClassifier` (Diss. 6.2.2 unless stated otherwise).

    Attributes
    ----------
    clip_s
        Clip length in seconds fed to the network (Diss. 6.2.1: 4 s clips).
    n_mels, win_samples, hop_samples
        Log-Mel frontend at 16 kHz. Diss. Table 4 uses window 1024 / hop 512 (128 Mel bins for
        machine sounds); 64 bins here, as the toolkit's other log-Mel models.
    dim, channels, blocks_per_stage
        Clip ResNet (Diss. Table 4: 128, (16, 32, 64, 128), 2).
    epochs, batch_size
        Fixed training length; ``None`` (default): ``epochs_per_shot x shots`` and
        ``batch_per_shot x shots`` with ``shots`` the largest number of shots of a class
        (Diss. 6.2.2: 100 and 8); when fine-tuning a pretrained network (``init``) the epochs
        are ``finetune_epochs / shots`` instead (the same number of steps for any number of
        shots).
    epochs_per_shot, batch_per_shot, finetune_epochs
        The factors above.
    lr
        Adam learning rate (Keras default).
    mixup
        Mixup with ``lambda ~ U(0, 1)`` (Diss. 6.2.2 keeps the ASD system's mixup).
    time_shift
        Roll every training clip circularly in time by a random offset
        (:func:`kwsos.augment.random_time_shift`). Not in the paper: with one shot per class the
        network otherwise memorises where the shot's events sit in the clip (module docstring).
    colouring
        Maximum gain of the random spectral colouring added to the training clips
        (:func:`kwsos.augment.random_colouring`; 0, the default, turns it off). Not in the
        paper: imitates other loudspeakers or microphones than the one of the shots (it made no
        measurable difference on the development benchmark).
    speed
        Maximum relative change of the random speed perturbation of the training clips
        (:func:`kwsos.augment.random_speed`: pitch and tempo together; 0 turns it off). Not in
        the paper: imitates devices that play the same alarm a little higher and faster.
    pitch, stretch
        Maximum relative change of two more augmentations that vary pitch and tempo
        *independently* (:func:`kwsos.augment.random_freq_warp`,
        :func:`kwsos.augment.random_time_stretch`; 0, the default, turns each off). Not in the
        paper: devices of one alarm type differ in both, independently (a smoke alarm's piezo
        frequency and its timing circuit), and with one shot the two devices may lie at both
        ends of the range.
    init
        Path of a pretrained clip network (:func:`pretrain`, :func:`save_pretrained`), or
        ``"bundled"``: the network shipped with kwsos (:data:`BUNDLED_PRETRAINED`, pretrained
        on procedurally generated alarm-like sounds, see ``recipes/alarm_osc``). It is the
        starting point of training instead of a random initialisation; its architecture
        replaces ``dim``, ``channels`` and ``blocks_per_stage``, and the frontend settings
        must be the ones it was trained with (:func:`pretrained_frontend`). With ``epochs=0`` the shots are
        not trained on at all (the pretrained embedding as it is). Not in the paper.
    keep_pretrained
        With ``init``: the pretrained network, unchanged, is one more member of the ensemble
        besides the ``ensemble`` networks fine-tuned from it (its embedding generalises to
        sounds the shots do not show, e.g. unknown ones; the fine-tuned ones know the shots
        better). Not in the paper.
    ensemble
        Number of networks trained on the shots (seeds ``seed``, ``seed + 1``, ...). A clip's
        embedding is the concatenation of the networks' L2-normalised embeddings divided by
        ``sqrt(ensemble)``: a unit vector whose cosine similarity to another is the mean of the
        networks' similarities. Not in the paper (1 = the paper's system).
    reference_speeds
        Extra references per shot: besides its own embedding, each shot played at these speeds
        (:func:`kwsos.augment.change_speed`, e.g. ``(0.94, 1.06)``) is a reference of its class
        for the max-similarity backend, so that a device that plays the alarm a little higher
        or lower still meets a close reference. Not in the paper (``()`` = the paper's backend).
    seed
        Seeds the network initialisation, the fixed class centres, batch order and mixup.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"`` ...
    threads
        Torch CPU threads during training (``None``: torch's default).
    threshold
        Minimum cosine similarity for a known class; below it a clip is unknown. ``None``:
        estimate it at fit time (module docstring).
    threshold_estimator
        :func:`kwsos.thresholds.get_threshold_estimator` name used when ``threshold`` is None.
    unknown_label
        Label predicted for rejected clips; no class may carry it.
    """

    clip_s: float = 4.0
    n_mels: int = 64
    win_samples: int = 1024
    hop_samples: int = 512
    dim: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_stage: int = 2
    epochs: int | None = None
    batch_size: int | None = None
    epochs_per_shot: int = 100
    batch_per_shot: int = 8
    finetune_epochs: int = 100
    lr: float = 1e-3
    mixup: bool = True
    time_shift: bool = True
    colouring: float = 0.0
    speed: float = 0.1
    pitch: float = 0.0
    stretch: float = 0.0
    init: str | None = None
    keep_pretrained: bool = False
    ensemble: int = 1
    reference_speeds: tuple[float, ...] = ()
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    threshold: float | None = 0.65
    threshold_estimator: str = "sd"
    unknown_label: str = "unknown"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "reference_speeds", tuple(float(r) for r in self.reference_speeds))
        if not (self.clip_s > 0 and math.isfinite(self.clip_s)):
            raise KwsosError(f"clip_s must be a positive number of seconds, got {self.clip_s}")
        if round(self.clip_s * SAMPLE_RATE) < self.win_samples:
            raise KwsosError(f"clip_s = {self.clip_s} s is shorter than one analysis window")
        for name in ("n_mels", "win_samples", "hop_samples", "dim", "blocks_per_stage", "ensemble"):
            if getattr(self, name) < 1:
                raise KwsosError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise KwsosError(f"channels must be positive integers, got {self.channels}")
        for name in (
            "epochs",
            "batch_size",
            "epochs_per_shot",
            "batch_per_shot",
            "finetune_epochs",
        ):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "epochs" and self.init else 1):
                raise KwsosError(f"{name} must be a positive integer, got {value}")
        if self.init is not None:
            object.__setattr__(self, "init", str(self.init))
        elif self.keep_pretrained:
            raise KwsosError("keep_pretrained needs a pretrained network (init)")
        if self.batch_size is not None and self.batch_size < 2:
            raise KwsosError("batch_size must be at least 2 (mixup and batch norm need pairs)")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise KwsosError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if not (self.colouring >= 0 and math.isfinite(self.colouring)):
            raise KwsosError(f"colouring must be >= 0, got {self.colouring}")
        for name in ("speed", "pitch", "stretch"):
            if not 0 <= getattr(self, name) < 0.5:
                raise KwsosError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        if not all(0.5 <= r <= 2.0 and r != 1.0 for r in self.reference_speeds):
            raise KwsosError(
                f"reference_speeds are speed factors in [0.5, 2] other than 1, got "
                f"{list(self.reference_speeds)}"
            )
        if self.threshold is None:
            from kwsos.thresholds import get_threshold_estimator

            try:
                get_threshold_estimator(self.threshold_estimator)
            except ValueError as exc:
                raise KwsosError(str(exc)) from None
        if not self.unknown_label:
            raise KwsosError("unknown_label must be a non-empty string")

    @property
    def clip_samples(self) -> int:
        return round(self.clip_s * SAMPLE_RATE)

    def schedule(self, shots: int) -> tuple[int, int]:
        """``(epochs, batch_size)`` for ``shots`` shots per class (Diss. 6.2.2 when not fixed)."""
        if self.epochs is not None:
            epochs = self.epochs
        elif self.init:
            epochs = max(1, round(self.finetune_epochs / shots))
        else:
            epochs = self.epochs_per_shot * shots
        batch = self.batch_size if self.batch_size is not None else self.batch_per_shot * shots
        return epochs, max(2, batch)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["reference_speeds"] = list(self.reference_speeds)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OpenSetConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise KwsosError(f"unknown open-set option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def replace(self, **changes: Any) -> OpenSetConfig:
        return OpenSetConfig.from_dict({**self.to_dict(), **changes})


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
        Known classes (sorted), the columns of :meth:`decision_function`.
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
    models_ : list of ClipResNet
        The networks: the pretrained one first with ``keep_pretrained``, then the
        ``ensemble`` trained ones.
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
        self.config = config.replace(**options) if options else config

    # ------------------------------------------------------------------ frontend
    def _frontend(self) -> Any:
        from kwsos.features import LogMel

        c = self.config
        return LogMel(n_mels=c.n_mels, win_samples=c.win_samples, hop_samples=c.hop_samples)

    def _wave(self, clip: Clip, what: str) -> np.ndarray:
        if isinstance(clip, str | Path):
            # only the first clip_s seconds are used: stop reading there (a long recording is
            # not loaded whole; its peak for the normalisation is found in a streaming pass)
            need, got, blocks = self.config.clip_samples, 0, []
            for block in stream_audio(clip, block_s=max(1.0, self.config.clip_s)):
                blocks.append(block)
                got += len(block)
                if got >= need:
                    break
            return np.concatenate(blocks)
        x = np.asarray(clip)
        if x.ndim != 1 or x.size == 0:
            raise KwsosError(
                f"{what}: expected a non-empty 1-D waveform (mono, 16 kHz), got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.number):
            raise KwsosError(f"{what}: expected a numeric waveform, got dtype {x.dtype}")
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise KwsosError(f"{what}: the waveform contains NaN or infinite samples")
        peak = float(np.max(np.abs(x)))
        if peak <= SILENCE_PEAK:
            raise KwsosError(f"{what}: the waveform is silent (peak amplitude {peak:.2g})")
        # the same peak normalisation and 50 Hz high-pass as load_audio, so that a file and its
        # samples give the same features
        b, a = highpass_coefficients(HIGHPASS_HZ, SAMPLE_RATE)
        return lfilter(b, a, x / peak).astype(np.float32)

    def features(self, clips: Sequence[Clip], *, what: str = "clip") -> np.ndarray:
        """Fixed-length log-Mel clips ``(n, n_frames, n_mels)`` float32.

        Parameters
        ----------
        clips
            Paths (any format soundfile reads; resampled to 16 kHz, mono, 50 Hz high-pass, peak
            normalised as by :func:`kwsos.audio.load_audio`; only the first ``clip_s`` seconds
            are read) or 1-D float arrays at 16 kHz (given the same high-pass and
            normalisation).
        """
        if isinstance(clips, str | Path) or (isinstance(clips, np.ndarray) and clips.ndim == 1):
            raise KwsosError(f"expected a list of {what}s, got a single {what}")
        n = self.config.clip_samples
        extractor = self._frontend()
        out = []
        for i, clip in enumerate(clips):
            label = str(clip) if isinstance(clip, str | Path) else f"{what} {i}"
            x = self._wave(clip, label)[:n]  # first clip_s seconds (reference implementation)
            if len(x) < n:
                x = np.concatenate([x, np.zeros(n - len(x), np.float32)])
            out.append(extractor(x))
        if not out:
            raise KwsosError(f"no {what}s given")
        return np.stack(out).astype(np.float32)

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
        known = _check_classes(shots, "shots", self.config.unknown_label)
        unknown = _check_classes(unknown_shots or {}, "unknown shots", self.config.unknown_label)
        _check_split(known, unknown)
        every = {**dict(shots), **dict(unknown_shots or {})}
        total = sum(len(every[name]) for name in known + unknown)
        done = 0
        feats: dict[str, np.ndarray] = {}
        for name in known + unknown:
            feats[name] = self.features(every[name], what="shot")
            done += len(every[name])
            if hook is not None:
                hook("features", completed=done, total=total)
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
        import torch

        from kwsos.models import ClipResNet

        c = self.config
        known = _check_classes(features, "features", c.unknown_label)
        unknown = _check_classes(unknown_features or {}, "unknown features", c.unknown_label)
        _check_split(known, unknown)
        every = {**dict(features), **dict(unknown_features or {})}
        n_frames = self._frontend().n_frames(c.clip_samples)
        parts, ids = [], []
        for k, name in enumerate(known + unknown):
            x = np.asarray(every[name], np.float32)
            if x.ndim != 3 or x.shape[1:] != (n_frames, c.n_mels):
                raise KwsosError(
                    f"features of {name!r} must have shape (n, {n_frames}, {c.n_mels}), "
                    f"got {x.shape}"
                )
            parts.append(x)
            ids += [k] * len(x)
        x = np.concatenate(parts)
        class_ids = np.asarray(ids)
        names = known + unknown
        n_shots = int(np.bincount(class_ids).max())
        epochs, batch = c.schedule(n_shots)
        log.info(
            "training on %d shots of %d known + %d unknown classes: %d epochs, batch %d",
            len(x),
            len(known),
            len(unknown),
            epochs,
            batch,
        )
        # the pretrained network is read once; every member starts from a copy of it
        pretrained = load_pretrained(c.init, config=c).eval() if c.init else None
        models, logs = [], []
        if pretrained is not None and c.keep_pretrained and epochs > 0:
            models.append(pretrained)
            logs.append(copy.deepcopy(_UNTRAINED_LOG))
        for m in range(c.ensemble):
            seed = c.seed + m
            torch.manual_seed(seed)  # network initialisation
            if pretrained is not None:
                model = copy.deepcopy(pretrained)
            else:
                model = ClipResNet(
                    c.n_mels, c.dim, channels=c.channels, blocks_per_stage=c.blocks_per_stage
                )
            if epochs == 0:
                logs.append(copy.deepcopy(_UNTRAINED_LOG))
            else:
                logs.append(
                    self._train_network(
                        model,
                        x,
                        class_ids,
                        len(names),
                        epochs=epochs,
                        batch_size=batch,
                        seed=seed,
                        hook=_member_hook(hook, m, c.ensemble),
                    )
                )
            models.append(model.eval())
        self.models_ = models
        self.classes_ = known
        self.unknown_classes_ = unknown
        self.train_logs_ = logs
        self.train_log_ = logs[-1]
        # the shots, then one block of speed-changed shots per reference speed
        refs = [x] + [self.change_speed(x, r) for r in c.reference_speeds]
        self.shot_embeddings_ = self.embed_features(np.concatenate(refs))
        self.shot_classes_ = np.tile(class_ids, len(refs))
        self.shot_ids_ = np.tile(np.arange(len(x)), len(refs))
        self.threshold_ = (
            float(c.threshold) if c.threshold is not None else self._estimate_threshold()
        )
        log.info(
            "fitted %d network(s) in %.1f s; threshold %.4f",
            len(models),
            sum(t["seconds"] for t in logs),
            self.threshold_,
        )
        return self

    def _train_network(
        self,
        model: Any,
        x: np.ndarray,
        class_ids: np.ndarray,
        n_classes: int,
        *,
        epochs: int,
        batch_size: int,
        seed: int,
        hook: Hook | None = None,
        max_minutes: float | None = None,
    ) -> dict[str, Any]:
        """Train ``model`` in place to tell ``n_classes`` classes apart (sub-cluster AdaCos with
        one fixed centre per class, mixup and this configuration's augmentations; Diss. 6.2.2);
        the training log as a dict."""
        from kwsos.losses import SubClusterAdaCos
        from kwsos.training import TrainConfig, train

        c = self.config
        loss = SubClusterAdaCos(
            n_classes, model.dim, n_centers=1, trainable_centers=False, seed=seed
        )
        targets = np.eye(n_classes, dtype=np.float32)[class_ids]
        tcfg = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=c.lr,
            mixup=c.mixup,
            augment=c.time_shift or max(c.colouring, c.speed, c.pitch, c.stretch) > 0,
            max_minutes=max_minutes,
            seed=seed,
            device=c.device,
            threads=c.threads,
        )
        try:
            tlog = train(
                model, loss, x, (targets,), class_ids, tcfg, augment=self._augment, hook=hook
            )
        except FloatingPointError as exc:
            raise KwsosError(f"training diverged: {exc}") from None
        scales = getattr(tlog, "scales", [])
        if scales and not (math.isfinite(scales[-1]) and scales[-1] < 1e3):
            log.warning("the AdaCos scale ended at %.3g (diverging?)", scales[-1])
        return tlog.to_dict()

    def change_speed(self, x: np.ndarray, speed: float) -> np.ndarray:
        """Log-Mel clips ``(n, n_frames, n_mels)`` played ``speed`` times faster (pitch and tempo
        together, :func:`kwsos.augment.change_speed`), e.g. extra references of the shots."""
        import torch

        from kwsos.augment import change_speed

        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return change_speed(xt, torch.tensor([float(speed)]), bin_hz=self._bin_hz()).numpy()

    def _augment(self, x: Any, generator: Any) -> Any:
        from kwsos.augment import (
            random_colouring,
            random_freq_warp,
            random_speed,
            random_time_shift,
            random_time_stretch,
        )

        c = self.config
        if c.speed > 0:
            x = random_speed(x, generator, bin_hz=self._bin_hz(), max_change=c.speed)
        if c.pitch > 0:
            x = random_freq_warp(x, generator, bin_hz=self._bin_hz(), max_change=c.pitch)
        if c.stretch > 0:
            x = random_time_stretch(x, generator, max_change=c.stretch)
        if c.time_shift:
            x = random_time_shift(x, generator)
        if c.colouring > 0:
            x = random_colouring(x, generator, max_gain=c.colouring)
        return x

    def _bin_hz(self) -> Any:
        import torch

        return torch.from_numpy(self._frontend().centre_hz())

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
        est = get_threshold_estimator(self.config.threshold_estimator).fit(1.0 - loo)
        threshold = float(np.clip(1.0 - est.threshold_, -1.0, 1.0))
        log.info(
            "threshold %.4f estimated (%s) from %d leave-one-out shot similarities",
            threshold,
            self.config.threshold_estimator,
            loo.size,
        )
        return threshold

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise KwsosError("the classifier is not fitted yet: call fit() or load() first")

    def _device(self) -> Any:
        from kwsos.training import pick_device

        try:
            return pick_device(self.config.device)
        except ValueError:
            return pick_device("cpu")

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``(n, ensemble x dim)`` of log-Mel clips ``(n, n_frames,
        n_mels)``: the networks' normalised embeddings side by side, over ``sqrt(ensemble)``."""
        import torch

        if not hasattr(self, "models_"):
            raise KwsosError("the classifier is not fitted yet: call fit() or load() first")

        device = self._device()
        scale = 1.0 / math.sqrt(len(self.models_))
        out = []
        with torch.no_grad():
            for i in range(0, len(x), _EMBED_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(x[i : i + _EMBED_BATCH])).to(device)
                parts = []
                for model in self.models_:
                    e = model.to(device).eval()(batch).double()
                    parts.append(torch.nn.functional.normalize(e, dim=1) * scale)
                out.append(torch.cat(parts, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def transform(self, clips: Sequence[Clip]) -> np.ndarray:
        """L2-normalised clip embeddings ``(n, dim)``."""
        self._check_fitted()
        return self.embed_features(self.features(clips))

    def _class_similarities(self, emb: np.ndarray) -> np.ndarray:
        """Max cosine similarity to each training class's shots, ``(n, n_known + n_unknown)``."""
        sims = emb.astype(np.float64) @ self.shot_embeddings_.astype(np.float64).T
        n_cls = len(self.classes_) + len(self.unknown_classes_)
        out = np.full((len(emb), n_cls), -np.inf)
        for k in range(n_cls):
            out[:, k] = sims[:, self.shot_classes_ == k].max(axis=1)
        return out

    def decide(
        self, embeddings: np.ndarray, *, threshold: float | None = None
    ) -> OpenSetPrediction:
        """Decisions for precomputed embeddings ``(n, dim)`` (from :meth:`transform`)."""
        self._check_fitted()
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
        labels = np.where(decision < thr, self.config.unknown_label, top).astype(object)
        return OpenSetPrediction(labels, top, scores, known_sims, unknown_sim, decision)

    def predict_details(
        self, clips: Sequence[Clip], *, threshold: float | None = None
    ) -> OpenSetPrediction:
        """Labels, closed-set classes and scores of ``clips`` from one pass of the network."""
        return self.decide(self.transform(clips), threshold=threshold)

    def decision_function(self, clips: Sequence[Clip]) -> np.ndarray:
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
            "models": [
                {
                    "model": m.to_dict(),
                    "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
                }
                for m in self.models_
            ],
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
        import torch

        from kwsos.models import model_from_dict

        path = Path(path)
        if not path.is_file():
            raise KwsosError(f"model file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle / zip errors of every kind
            raise KwsosError(
                f"cannot read {path} as an open-set model: {' '.join(str(exc).split())[:200]}"
            ) from None
        fmt = state.get("format") if isinstance(state, dict) else None
        if fmt != MODEL_FORMAT and fmt not in _OLD_FORMATS:
            raise KwsosError(f"{path} is not a kwsos open-set model (format {MODEL_FORMAT})")
        try:
            clf = cls(OpenSetConfig.from_dict(state["config"]))
            nets = state["models"] if fmt == MODEL_FORMAT else [state]
            clf.models_ = []
            for net in nets:
                model = model_from_dict(net["model"])
                model.load_state_dict(net["state_dict"])
                clf.models_.append(model.eval())
            clf.classes_ = list(state["classes"])
            clf.unknown_classes_ = list(state["unknown_classes"])
            clf.shot_embeddings_ = state["shot_embeddings"].numpy().astype(np.float32)
            clf.shot_classes_ = state["shot_classes"].numpy().astype(np.int64)
            n_refs = len(clf.shot_classes_)
            clf.shot_ids_ = (
                state["shot_ids"].numpy().astype(np.int64)
                if "shot_ids" in state
                else np.arange(n_refs)
            )
            clf.threshold_ = float(state["threshold"])
            clf.train_logs_ = [
                dict(t) for t in state.get("train_logs", [state.get("train_log", {})])
            ]
            clf.train_log_ = clf.train_logs_[-1]
            dims = sum(m.dim for m in clf.models_)
            if clf.shot_embeddings_.shape[1] != dims or len(clf.shot_ids_) != n_refs:
                raise ValueError("the networks do not match the stored embeddings")
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise KwsosError(f"open-set model {path} is damaged: {exc}") from None
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


#: The kwsos system on top of the bundled pretrained network (``recipes/alarm_osc``,
#: ``conf/pretrained.json``; the CLI's default): fine-tune it, keep it beside the fine-tuned
#: network, speed-changed shots as extra references, threshold 0.6.
PRETRAINED_SYSTEM: dict[str, Any] = {
    "init": "bundled",
    "keep_pretrained": True,
    "reference_speeds": (0.92, 0.96, 1.04, 1.08),
    "threshold": 0.6,
}

#: Identifies a pretrained clip network file (:func:`save_pretrained`).
PRETRAINED_FORMAT = "kwsos-openset-pretrained/1"
#: The pretrained network shipped with kwsos (``OpenSetConfig(init="bundled")``): made by
#: ``recipes/alarm_osc/local/pretrain.py`` from ``data_prep.make_alarm_pretrain`` data.
BUNDLED_PRETRAINED = Path(__file__).parent / "data" / "osc_pretrained.pt"


def pretrain(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    config: OpenSetConfig | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    max_minutes: float | None = None,
    hook: Hook | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a clip network on many labelled classes, as the starting point of few-shot fits.

    The same network, loss (sub-cluster AdaCos, one fixed centre per class), mixup and
    augmentations as :meth:`OpenSetClassifier.fit` (``config``'s), on ``features`` (n, frames,
    mels) of classes ``labels`` (n,) -- e.g. the procedurally generated classes of
    :mod:`data_prep.make_alarm_pretrain`, each played by several devices. Returns the network
    and the training log (a dict); :func:`save_pretrained` writes them, ``OpenSetConfig(init=)``
    starts from them. ``max_minutes`` stops training early at a wall-clock budget.
    """
    import torch

    from kwsos.models import ClipResNet

    c = config if config is not None else OpenSetConfig()
    x = np.asarray(features, np.float32)
    _, class_ids = np.unique(np.asarray(labels), return_inverse=True)
    n_classes = int(class_ids.max()) + 1
    if n_classes < 2:
        raise KwsosError("pretraining needs at least two classes")
    torch.manual_seed(c.seed)
    model = ClipResNet(c.n_mels, c.dim, channels=c.channels, blocks_per_stage=c.blocks_per_stage)
    tlog = OpenSetClassifier(c)._train_network(
        model, x, class_ids, n_classes, epochs=epochs, batch_size=batch_size, seed=c.seed,
        hook=hook, max_minutes=max_minutes,
    )  # fmt: skip
    return model.eval(), tlog


def save_pretrained(
    model: Any, path: str | Path, *, config: OpenSetConfig, info: Mapping[str, Any] | None = None
) -> Path:
    """Write a pretrained clip network (architecture, weights, the frontend settings it was
    trained with and ``info``, e.g. the training log and data) to one file, atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    front = {k: config.to_dict()[k] for k in ("clip_s", "n_mels", "win_samples", "hop_samples")}
    state = {
        "format": PRETRAINED_FORMAT,
        "kwsos_version": __version__,
        "frontend": front,
        "model": model.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": dict(info or {}),
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return path


def _read_pretrained(path: str | Path) -> tuple[Path, dict[str, Any]]:
    import torch

    path = BUNDLED_PRETRAINED if str(path) == "bundled" else Path(path)
    if not path.is_file():
        raise KwsosError(f"pretrained network not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of every kind
        raise KwsosError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != PRETRAINED_FORMAT:
        raise KwsosError(f"{path} is not a pretrained kwsos clip network ({PRETRAINED_FORMAT})")
    return path, state


def pretrained_frontend(path: str | Path) -> dict[str, Any]:
    """The frontend settings (``clip_s``, ``n_mels``, ``win_samples``, ``hop_samples``) a
    pretrained network was trained with: a classifier starting from it must use them."""
    return dict(_read_pretrained(path)[1]["frontend"])


def load_pretrained(path: str | Path, *, config: OpenSetConfig | None = None) -> Any:
    """The clip network of a :func:`save_pretrained` file (a fresh copy on every call); with
    ``config``, check that its frontend is the one the network was trained with."""
    from kwsos.models import model_from_dict

    path, state = _read_pretrained(path)
    if config is not None:
        front = state["frontend"]
        ours = {k: config.to_dict()[k] for k in front}
        if ours != front:
            diff = ", ".join(
                f"{k} {front[k]} (classifier: {ours[k]})" for k in front if ours[k] != front[k]
            )
            raise KwsosError(f"{path} was trained with another frontend: {diff}")
    model = model_from_dict(state["model"])
    model.load_state_dict(state["state_dict"])
    return model


#: Training log of a network used as it is (no training on the shots).
_UNTRAINED_LOG: dict[str, Any] = {"epochs_run": 0, "losses": [], "scales": [], "seconds": 0.0}


def _member_hook(hook: Hook | None, member: int, n_members: int) -> Hook | None:
    """Progress of network ``member`` of ``n_members`` reported as one run over all of them."""
    if hook is None or n_members == 1:
        return hook

    def report(step: str, *, completed: int = 0, total: int = 0, **info: Any) -> None:
        hook(step, completed=member * total + completed, total=n_members * total, **info)

    return report


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
