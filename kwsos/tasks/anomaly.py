"""Machine-condition anomalous sound detection (Diss. chapters 3-5; DCASE 2020-2023 Task 2).

:class:`AnomalyDetector` is trained on *normal* recordings of machines only and scores new
recordings: **higher = more anomalous**, as the DCASE submission files store it (note: the
opposite of scikit-learn's ``score_samples``, on purpose, because every DCASE tool reads it this
way; :meth:`AnomalyDetector.decision_function` is ``score - threshold``, positive = anomalous).

The pipeline (every stage a shared core module):

1. **Frontend.** Mono 16 kHz, no peak normalisation (the level of a machine is information),
   optional high-pass (Diss. 3.2.2: 200 Hz for the log-Mel system). Every clip is brought to one
   fixed length (``clip_s``; default: the longest training clip): longer clips are cut, shorter
   ones are repeated (a zero pad would put an artificial silence into the full-length DFT).
2. **Embedding model** (:mod:`kwsos.models.asd`): the two-branch network of the DCASE2022/23
   system (magnitude STFT with temporal mean normalisation + full-length DFT, Diss. 5.3.1,
   Tables 14-15; no bias terms, fixed class centres) or the single-branch log-Mel ResNet of the
   DCASE2020 system (Diss. 3.2.2, Table 4). It is trained once for all machine types to
   classify the auxiliary labels: machine type x section x attribute combination (Diss. 5.3.1;
   2020: machine type x machine ID), with an angular-margin loss (:mod:`kwsos.losses`:
   AdaCos, sub-cluster AdaCos, AdaProj, ArcFace, ArcMix, Noisy-ArcMix), mixup, and optionally
   the StatEx / FeatEx self-supervision (Diss. 5.7, :mod:`kwsos.losses.ssl`). The comparison
   systems: the DCASE autoencoder baseline (one per machine type, reconstruction error), serial
   OE with two binary cross-entropies, and log-Mel statistics (no training).
3. **Backend** (per machine type and section, on the normal training embeddings;
   :mod:`kwsos.backends`): k-means with 16 means on the source domain + every target sample
   (Diss. 5.3.1, default), k-NN, or a GMM (DCASE2020 system).
4. **Decision.** A threshold per section, estimated from the anomaly scores of that section's
   normal training clips with a :mod:`kwsos.thresholds` estimator (default: the 90th
   percentile of a fitted Gamma distribution, as the DCASE baselines do).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from kwsos import __version__
from kwsos.config import Config
from kwsos.errors import KwsosError
from kwsos.hooks import Hook, call_hook
from kwsos.io import atomic_output
from kwsos.tasks.jobs import ScoreJob  # noqa: F401  (re-exported: the job of this task)

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_FORMAT",
    "ScoreJob",
    "AnomalyBackendConfig",
    "AnomalyConfig",
    "AnomalyDecisionConfig",
    "AnomalyDetector",
    "AnomalyFrontendConfig",
    "AnomalyModelConfig",
    "AnomalyTrainingConfig",
    "ClipInfo",
]

#: Identifies a saved detector (``format`` entry of the model file).
MODEL_FORMAT = "kwsos-asd/1"

MODELS = ("two_branch", "logmel_resnet", "autoencoder", "logmel_stats")
LOSSES = (
    "adacos",
    "subcluster_adacos",
    "adaproj",
    "arcface",
    "arcmix",
    "noisy_arcmix",
    "serial_oe",
)
SSL = ("none", "statex", "featex", "statex+featex")
BACKENDS = ("kmeans", "knn", "gmm")


class ClipInfo(Protocol):
    """What the detector needs to know about a clip (:class:`kwsos.dcase.AsdClip` has it)."""

    @property
    def path(self) -> Path: ...
    @property
    def machine(self) -> str: ...
    @property
    def section(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def attributes(self) -> tuple[tuple[str, str], ...]: ...


# ---------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class AnomalyFrontendConfig(Config):
    """Audio loading.

    Attributes
    ----------
    sample_rate
        Rate every clip is resampled to (DCASE: 16 kHz).
    clip_s
        Fixed clip length in seconds (``None``: the longest training clip).
    highpass_hz
        High-pass cut-off (``None``: none; Diss. 3.2.2 used 200 Hz for the log-Mel system).
    """

    sample_rate: int = 16000
    clip_s: float | None = None
    highpass_hz: float | None = None

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 48000:
            raise KwsosError(f"sample_rate must be in [8000, 48000] Hz, got {self.sample_rate}")
        if self.clip_s is not None and not 0.5 <= self.clip_s <= 120:
            raise KwsosError(f"clip_s must be in [0.5, 120] seconds, got {self.clip_s}")
        if self.highpass_hz is not None and not 0 < self.highpass_hz < self.sample_rate / 2:
            raise KwsosError(
                f"highpass_hz must be in (0, {self.sample_rate / 2}), got {self.highpass_hz}"
            )


@dataclass(frozen=True)
class AnomalyModelConfig(Config):
    """The embedding model.

    Attributes
    ----------
    name
        ``two_branch`` (DCASE2022/23 system), ``logmel_resnet`` (DCASE2020 system),
        ``autoencoder`` (the DCASE baseline), ``logmel_stats`` (temporal mean and standard
        deviation of the log-Mel spectrogram, no training: the simple baseline).
    dim
        Embedding dimension per branch (Diss.: 128).
    bias
        Bias terms in the network (Diss. 5.3: off, against trivial solutions).
    channels
        Channels of the ResNet stages (Diss. Table 4/15: 16, 32, 64, 128).
    """

    name: str = "two_branch"
    dim: int = 128
    bias: bool = False
    channels: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.name not in MODELS:
            raise KwsosError(f"model name must be one of {', '.join(MODELS)}, got {self.name!r}")
        if not 2 <= self.dim <= 2048:
            raise KwsosError(f"dim must be in [2, 2048], got {self.dim}")
        if not self.channels or min(self.channels) < 1:
            raise KwsosError(f"channels must be positive integers, got {list(self.channels)}")


@dataclass(frozen=True)
class AnomalyTrainingConfig(Config):
    """Training of the embedding model (Diss. 5.3.1: 10 epochs, batch 64, Adam, mixup).

    Attributes
    ----------
    loss
        One of :data:`LOSSES`.
    n_centers
        Sub-clusters per class (sub-cluster AdaCos; Diss. 5.3.1: 16).
    trainable_centers
        Learn the class centres (Diss. 5.3: fixed random centres generalise better).
    labels
        Auxiliary classes: ``attributes`` (machine x section x attribute combination) or
        ``section`` (machine x section).
    ssl
        Self-supervision (Diss. 5.7): ``none``, ``statex``, ``featex`` or ``statex+featex``.
    mixup
        Mixup with ``lambda ~ U(0, 1)``.
    epochs, batch_size, lr, seed, device, max_minutes, precision
        As :class:`kwsos.training.TrainConfig`.
    ensemble
        Number of networks trained with seeds ``seed, seed + 1, ...``; their anomaly scores
        are summed.
    """

    loss: str = "subcluster_adacos"
    n_centers: int = 16
    trainable_centers: bool = False
    labels: str = "attributes"
    ssl: str = "none"
    mixup: bool = True
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    max_minutes: float | None = None
    precision: str = "fp32"
    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise KwsosError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.ssl not in SSL:
            raise KwsosError(f"ssl must be one of {', '.join(SSL)}, got {self.ssl!r}")
        if self.labels not in ("attributes", "section"):
            raise KwsosError(f"labels must be 'attributes' or 'section', got {self.labels!r}")
        if self.ssl != "none" and self.loss not in ("adacos", "subcluster_adacos", "adaproj"):
            raise KwsosError(f"ssl={self.ssl!r} works with adacos, subcluster_adacos or adaproj")
        checks = {
            "n_centers": 1 <= self.n_centers <= 256,
            "epochs": 1 <= self.epochs <= 100000,
            "batch_size": 2 <= self.batch_size <= 4096,
            "lr": 0 < self.lr < 1,
            "ensemble": 1 <= self.ensemble <= 64,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "precision": self.precision in ("auto", "fp32", "bf16"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise KwsosError(f"invalid training setting {bad[0]}: {getattr(self, bad[0])!r}")


@dataclass(frozen=True)
class AnomalyBackendConfig(Config):
    """The backend fitted per machine type and section on normal training embeddings.

    Attributes
    ----------
    name
        ``kmeans`` (Diss. 5.3.1), ``knn`` or ``gmm`` (Diss. 3.4.3).
    n_clusters, n_neighbors, n_components
        Options of :class:`~kwsos.backends.KMeansScorer`, :class:`~kwsos.backends.KNNScorer`,
        :class:`~kwsos.backends.GMMScorer`.
    """

    name: str = "kmeans"
    n_clusters: int = 16
    n_neighbors: int = 1
    n_components: int = 1

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise KwsosError(f"backend must be one of {', '.join(BACKENDS)}, got {self.name!r}")
        if min(self.n_clusters, self.n_neighbors, self.n_components) < 1:
            raise KwsosError("n_clusters, n_neighbors and n_components must be >= 1")


@dataclass(frozen=True)
class AnomalyDecisionConfig(Config):
    """Per-section decision threshold estimated from normal training scores (Diss. 4.2).

    Attributes
    ----------
    estimator
        :func:`kwsos.thresholds.get_threshold_estimator` name (``gamma``: the DCASE baselines'
        90th percentile of a Gamma fit).
    """

    estimator: str = "gamma"

    def __post_init__(self) -> None:
        from kwsos.thresholds import get_threshold_estimator

        try:
            get_threshold_estimator(self.estimator)
        except ValueError as exc:
            raise KwsosError(str(exc)) from None


@dataclass(frozen=True)
class AnomalyConfig(Config):
    """Settings of :class:`AnomalyDetector` in sections: ``frontend``, ``model``, ``training``,
    ``backend``, ``decision``."""

    frontend: AnomalyFrontendConfig = field(default_factory=AnomalyFrontendConfig)
    model: AnomalyModelConfig = field(default_factory=AnomalyModelConfig)
    training: AnomalyTrainingConfig = field(default_factory=AnomalyTrainingConfig)
    backend: AnomalyBackendConfig = field(default_factory=AnomalyBackendConfig)
    decision: AnomalyDecisionConfig = field(default_factory=AnomalyDecisionConfig)

    def __post_init__(self) -> None:
        if self.model.name == "logmel_resnet" and self.training.ssl in ("featex", "statex+featex"):
            raise KwsosError("featex needs two branches: use model.name = 'two_branch'")


# ---------------------------------------------------------------------------------- helpers
def _group(clip: ClipInfo) -> str:
    return f"{clip.machine}/section_{clip.section}"


def _class_key(clip: ClipInfo, labels: str) -> str:
    key = _group(clip)
    if labels == "attributes" and clip.attributes:
        key += "/" + "_".join(f"{k}_{v}" for k, v in clip.attributes)
    return key


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut ``x`` to ``n`` samples, or repeat it until it has ``n``."""
    if len(x) >= n:
        return x[:n]
    reps = -(-n // len(x))
    return np.tile(x, reps)[:n]


def load_waves(
    clips: Sequence[ClipInfo | str | Path | np.ndarray],
    frontend: AnomalyFrontendConfig,
    n_samples: int | None,
    *,
    hook: Hook | None = None,
    step: str = "load",
    jobs: int | None = None,
) -> np.ndarray:
    """``(n, n_samples)`` float32 waveforms of ``clips`` (paths, arrays or clip records).

    ``n_samples=None`` returns a list-like object array of the unequal waveforms instead.
    """
    from kwsos.audio import load_audio, prepare_array
    from kwsos.parallel import ordered_map

    def one(c: Any) -> np.ndarray:
        if isinstance(c, np.ndarray):
            return prepare_array(
                c,
                sample_rate=frontend.sample_rate,
                highpass_hz=frontend.highpass_hz,
                normalize=False,
            )
        path = c if isinstance(c, str | Path) else c.path
        return load_audio(
            path,
            sample_rate=frontend.sample_rate,
            highpass_hz=frontend.highpass_hz,
            normalize=False,
        )

    out: list[np.ndarray] = []
    total = len(clips)
    for i, x in enumerate(ordered_map(one, clips, jobs=jobs)):
        out.append(x if n_samples is None else _fit_length(x, n_samples))
        if hook is not None and (i + 1 == total or (i + 1) % 16 == 0):
            call_hook(hook, step, completed=i + 1, total=total)
    if n_samples is None:
        arr = np.empty(len(out), dtype=object)
        arr[:] = out
        return arr
    if not out:
        return np.zeros((0, n_samples), np.float32)
    return np.stack(out).astype(np.float32, copy=False)


def _logmel_stats(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(n, 256)``: temporal mean and standard deviation of the 128-bin log-Mel spectrogram
    (window 1024, hop 512): the "statistics of the input" baseline of Diss. 3.4.4."""
    from kwsos.features.spectral import LogMel

    lm = LogMel(sample_rate=sample_rate, win_samples=1024, hop_samples=512, n_mels=128)
    rows = []
    for w in waves:
        f = lm(np.asarray(w, np.float32))
        rows.append(np.concatenate([f.mean(axis=0), f.std(axis=0)]))
    return np.asarray(rows, np.float32)


def _make_backend(cfg: AnomalyBackendConfig, seed: int) -> Any:
    from kwsos.backends import GMMScorer, KMeansScorer, KNNScorer

    if cfg.name == "kmeans":
        return KMeansScorer(cfg.n_clusters, seed=seed)
    if cfg.name == "knn":
        return KNNScorer(cfg.n_neighbors)
    return GMMScorer(cfg.n_components, seed=seed)


# ---------------------------------------------------------------------------------- detector
class AnomalyDetector:
    """Anomalous sound detection for machine sounds (module docstring; Diss. chapters 3-5).

    scikit-learn style: ``AnomalyDetector(config).fit(train_clips)`` returns the detector,
    :meth:`score_samples` gives anomaly scores (**higher = more anomalous**, the DCASE
    convention), :meth:`predict` 1 = anomalous / 0 = normal (the DCASE decision files).

    Clips are records with ``path``, ``machine``, ``section``, ``domain`` and ``attributes``
    (:class:`kwsos.dcase.AsdClip`); all training clips must be normal.

    Parameters
    ----------
    config
        :class:`AnomalyConfig` (or a dict for :meth:`AnomalyConfig.from_dict`).

    Attributes
    ----------
    clip_samples_ : int
    classes_ : list of str
        The auxiliary classes (machine/section[/attributes]).
    groups_ : list of str
        ``machine/section_XX`` groups a backend and a threshold were fitted for.
    thresholds_ : dict str -> float
        Decision threshold on the anomaly score per group.
    train_logs_ : list of dict
    """

    def __init__(self, config: AnomalyConfig | dict[str, Any] | None = None) -> None:
        if config is None:
            config = AnomalyConfig()
        elif not isinstance(config, AnomalyConfig):
            config = AnomalyConfig.from_dict(config)
        self.config = config

    # -------------------------------------------------------------- fitting
    def fit(
        self,
        clips: Sequence[ClipInfo],
        *,
        waves: np.ndarray | None = None,
        hook: Hook | None = None,
    ) -> Self:
        """Train on normal clips (all machine types at once) and fit backends and thresholds.

        ``waves``: the clips' waveforms if already loaded, ``(n, n_samples)``.
        """
        cfg = self.config
        clips = list(clips)
        if not clips:
            raise KwsosError("no training clips")
        bad = [c for c in clips if getattr(c, "label", "normal") not in ("normal", None)]
        if bad:
            raise KwsosError(f"training clips must be normal; {bad[0].path} is {bad[0].label}")
        if waves is None:
            if cfg.frontend.clip_s is not None:
                n = int(round(cfg.frontend.clip_s * cfg.frontend.sample_rate))
            else:
                from kwsos.audio import audio_info

                longest = max(audio_info(c.path).duration_s for c in clips)
                n = int(round(longest * cfg.frontend.sample_rate))
            waves = load_waves(clips, cfg.frontend, n, hook=hook, step="load training clips")
        waves = np.asarray(waves, np.float32)
        if waves.ndim != 2 or len(waves) != len(clips):
            raise ValueError(f"waves must be (n_clips, n_samples), got {waves.shape}")
        self.clip_samples_ = int(waves.shape[1])
        self.groups_ = sorted({_group(c) for c in clips})
        self.machines_ = sorted({c.machine for c in clips})
        self.classes_ = sorted({_class_key(c, cfg.training.labels) for c in clips})
        self.train_logs_: list[dict[str, Any]] = []
        self.members_: list[Any] = []
        for m in range(cfg.training.ensemble if cfg.model.name != "logmel_stats" else 1):
            self.members_.append(self._fit_member(clips, waves, cfg.training.seed + m, hook))
        self._fit_backends(clips, waves, hook)
        return self

    def _fit_member(
        self, clips: list[ClipInfo], waves: np.ndarray, seed: int, hook: Hook | None
    ) -> Any:
        cfg = self.config
        if cfg.model.name == "logmel_stats":
            return None
        if cfg.model.name == "autoencoder":
            from kwsos.models.autoencoder import AutoencoderDetector

            nets = {}
            for machine in self.machines_:
                idx = [i for i, c in enumerate(clips) if c.machine == machine]
                ae = AutoencoderDetector(
                    epochs=cfg.training.epochs,
                    batch_size=cfg.training.batch_size,
                    lr=cfg.training.lr,
                    seed=seed,
                    device=cfg.training.device,
                    hook=hook,
                )
                nets[machine] = ae.fit(waves[idx])
                self.train_logs_.append({"machine": machine, "seed": seed})
            return nets
        from kwsos.training import TrainConfig, train

        model = self._new_model()
        loss, targets = self._loss_and_targets(clips, model, seed)
        class_ids = np.asarray(
            [self.classes_.index(_class_key(c, cfg.training.labels)) for c in clips]
        )
        tcfg = TrainConfig(
            epochs=cfg.training.epochs,
            batch_size=cfg.training.batch_size,
            lr=cfg.training.lr,
            mixup=cfg.training.mixup,
            augment=False,
            seed=seed,
            device=cfg.training.device,
            max_minutes=cfg.training.max_minutes,
            precision=cfg.training.precision,
        )
        tlog = train(model, loss, waves, targets, class_ids, tcfg, hook=hook)
        self.train_logs_.append(tlog.to_dict())
        model.eval()
        return model

    def _new_model(self) -> Any:
        from kwsos.models.asd import asd_model_from_dict

        m = self.config.model
        name = {"two_branch": "TwoBranchNet", "logmel_resnet": "LogMelResNet"}[m.name]
        return asd_model_from_dict(
            {
                "name": name,
                "n_samples": self.clip_samples_,
                "dim": m.dim,
                "bias": m.bias,
                "channels": list(m.channels),
            }
        )

    def _loss_and_targets(
        self, clips: list[ClipInfo], model: Any, seed: int
    ) -> tuple[Any, tuple[np.ndarray, ...]]:
        t = self.config.training
        n_classes = len(self.classes_)
        onehot = np.zeros((len(clips), n_classes), np.float32)
        for i, c in enumerate(clips):
            onehot[i, self.classes_.index(_class_key(c, t.labels))] = 1.0
        dim = model.out_dim
        if t.loss == "serial_oe":
            from kwsos.losses.serial_oe import SerialOEBCE

            mach = np.zeros((len(clips), len(self.machines_)), np.float32)
            for i, c in enumerate(clips):
                mach[i, self.machines_.index(c.machine)] = 1.0
            # The section head's negatives are the other classes of the clip's machine type.
            owner = [self.machines_.index(k.split("/", 1)[0]) for k in self.classes_]
            loss = SerialOEBCE(len(self.machines_), n_classes, dim, section_machine=owner)
            return loss, (mach, onehot)
        if t.ssl != "none":
            from kwsos.losses.ssl import SelfSupervisedLoss

            loss = SelfSupervisedLoss(
                n_classes,
                dim,
                loss=t.loss,
                statex="statex" in t.ssl,
                featex="featex" in t.ssl,
                n_centers=t.n_centers,
                seed=seed,
            )
            return loss, (onehot,)
        return _plain_loss(t, n_classes, dim, seed), (onehot,)

    def _fit_backends(self, clips: list[ClipInfo], waves: np.ndarray, hook: Hook | None) -> None:
        cfg = self.config
        self.train_embeddings_ = self._member_features(waves, hook, "embed training clips")
        self.train_groups_ = np.asarray([_group(c) for c in clips])
        self.train_domains_ = np.asarray([c.domain or "source" for c in clips])
        self._refit_backends()
        # Thresholds from the normal training clips' scores; k-NN and the target centres of
        # k-means score each clip without itself (leave one out), or every score would be 0.
        scores = np.zeros(len(clips))
        for m, per in enumerate(self.backends_):
            if not per:  # autoencoders: reconstruction errors
                machines = np.asarray([c.machine for c in clips])
                scores += self._scores([None], self.train_groups_, waves, machines, members=[m])
                continue
            for g, backend in per.items():
                scores[self.train_groups_ == g] += -backend.fit_score_samples()
        self.train_scores_ = scores
        self.thresholds_ = self.estimate_thresholds(cfg.decision.estimator)

    def estimate_thresholds(self, estimator: str, **options: Any) -> dict[str, float]:
        """Decision threshold of every section from its normal training scores (Diss. 4.2).

        ``estimator``: a :func:`kwsos.thresholds.get_threshold_estimator` name. The scores are
        those of the source-domain training clips when a section has at least 5 of them: the
        few target clips, scored without themselves, measure the domain shift rather than the
        spread of normal sounds. (:meth:`fit` sets ``thresholds_`` with the configured
        estimator; this method lets a recipe compare estimators on the same model.)
        """
        from kwsos.thresholds import get_threshold_estimator

        if not hasattr(self, "train_scores_"):
            raise KwsosError("the detector is not fitted: call fit() or load a saved model")
        out = {}
        for g in self.groups_:
            sel = self.train_groups_ == g
            source = sel & (self.train_domains_ != "target")
            s = self.train_scores_[source if source.sum() >= 5 else sel]
            est = get_threshold_estimator(estimator, **options)
            out[g] = float(est.fit(s).threshold_)
        return out

    def _refit_backends(self) -> None:
        """(Re)fit one backend per member and group from the stored training embeddings."""
        cfg = self.config
        self.backends_: list[dict[str, Any]] = []
        for m, feats in enumerate(self.train_embeddings_):
            if feats is None:  # autoencoder: the reconstruction error is the score
                self.backends_.append({})
                continue
            per = {}
            for g in self.groups_:
                sel = self.train_groups_ == g
                b = _make_backend(cfg.backend, cfg.training.seed + m)
                if cfg.backend.name == "kmeans":
                    b.fit(feats[sel], self.train_domains_[sel])
                else:
                    b.fit(feats[sel])
                per[g] = b
            self.backends_.append(per)

    def _member_features(
        self, waves: np.ndarray, hook: Hook | None, step: str
    ) -> list[np.ndarray | None]:
        """Per member: ``(n, dim)`` embeddings, or None for autoencoders (scored directly)."""
        cfg = self.config
        if cfg.model.name == "logmel_stats":
            return [_logmel_stats(waves, cfg.frontend.sample_rate)]
        if cfg.model.name == "autoencoder":
            return [None for _ in self.members_]
        return [_embed(net, waves, cfg.training.device, hook, step) for net in self.members_]

    def _scores(
        self,
        features: list[np.ndarray | None],
        groups: np.ndarray,
        waves: np.ndarray | None = None,
        machines: np.ndarray | None = None,
        members: list[int] | None = None,
    ) -> np.ndarray:
        total = np.zeros(len(groups))
        for m, feats in zip(members or range(len(features)), features, strict=True):
            if feats is None:
                assert waves is not None and machines is not None
                for machine, ae in self.members_[m].items():
                    sel = machines == machine
                    if sel.any():
                        total[sel] += ae.score_samples(waves[sel])
                continue
            for g, backend in self.backends_[m].items():
                sel = groups == g
                if sel.any():
                    total[sel] += -backend.score_samples(feats[sel])
        return total

    # -------------------------------------------------------------- scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise KwsosError("the detector is not fitted: call fit() or load a saved model")

    def _groups_of(self, clips: Sequence[ClipInfo]) -> np.ndarray:
        groups = np.asarray([_group(c) for c in clips])
        known = set(self.groups_)
        missing = sorted(set(groups) - known)
        if missing:
            raise KwsosError(
                f"no training data for {missing[0]} (the model knows "
                f"{', '.join(self.groups_[:6])}{' ...' if len(self.groups_) > 6 else ''})"
            )
        return groups

    def score_samples(
        self,
        clips: Sequence[ClipInfo],
        *,
        waves: np.ndarray | None = None,
        hook: Hook | None = None,
    ) -> np.ndarray:
        """``(n,)`` anomaly score of every clip: **higher = more anomalous** (DCASE)."""
        self._check_fitted()
        clips = list(clips)
        groups = self._groups_of(clips)
        if waves is None:
            waves = load_waves(
                clips, self.config.frontend, self.clip_samples_, hook=hook, step="load"
            )
        waves = np.asarray(waves, np.float32)
        if waves.shape != (len(clips), self.clip_samples_):
            raise ValueError(
                f"waves must be ({len(clips)}, {self.clip_samples_}), got {waves.shape}"
            )
        feats = self._member_features(waves, hook, "embed")
        machines = np.asarray([c.machine for c in clips])
        return self._scores(feats, groups, waves, machines)

    def decision_function(self, clips: Sequence[ClipInfo], **kw: Any) -> np.ndarray:
        """``score_samples - threshold`` of each clip's section: positive = anomalous."""
        s = self.score_samples(clips, **kw)
        return s - self.threshold_of(clips)

    def threshold_of(self, clips: Sequence[ClipInfo]) -> np.ndarray:
        """``(n,)`` decision threshold of every clip's section."""
        self._check_fitted()
        return np.asarray([self.thresholds_[g] for g in self._groups_of(clips)])

    def predict(self, clips: Sequence[ClipInfo], **kw: Any) -> np.ndarray:
        """``(n,)`` int: 1 = anomalous, 0 = normal (DCASE ``decision_result`` files)."""
        return (self.decision_function(clips, **kw) > 0).astype(int)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the detector to one file atomically (``torch.save`` of tensors and plain
        values, loaded with ``weights_only=True``): config, networks, the training embeddings
        (the backends are refitted from them at load, deterministically), thresholds."""
        import torch

        self._check_fitted()
        path = Path(path)
        if path.is_dir():
            raise KwsosError(f"{path} is a directory; give a file name for the model")
        path.parent.mkdir(parents=True, exist_ok=True)
        members: list[Any] = []
        for net in self.members_:
            if net is None:
                members.append(None)
            elif isinstance(net, dict):  # autoencoders per machine
                members.append({k: v.to_dict() for k, v in net.items()})
            else:
                members.append({"arch": net.to_dict(), "state": net.state_dict()})
        state = {
            "format": MODEL_FORMAT,
            "kwsos_version": __version__,
            "config": self.config.to_dict(),
            "clip_samples": self.clip_samples_,
            "classes": list(self.classes_),
            "groups": list(self.groups_),
            "machines": list(self.machines_),
            "members": members,
            "train_embeddings": [
                None if f is None else torch.from_numpy(np.ascontiguousarray(f, np.float32))
                for f in self.train_embeddings_
            ],
            "train_groups": [str(g) for g in self.train_groups_],
            "train_domains": [str(d) for d in self.train_domains_],
            "train_scores": torch.from_numpy(np.asarray(self.train_scores_, np.float64)),
            "thresholds": dict(self.thresholds_),
            "train_logs": self.train_logs_,
        }
        with atomic_output(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> AnomalyDetector:
        """Read a detector written by :meth:`save`."""
        from kwsos.io import read_model_file

        path = Path(path)
        state, _ = read_model_file(path, what="anomaly model", current=MODEL_FORMAT)
        try:
            det = cls(AnomalyConfig.from_dict(state["config"]))
            det.clip_samples_ = int(state["clip_samples"])
            det.classes_ = list(state["classes"])
            det.groups_ = list(state["groups"])
            det.machines_ = list(state["machines"])
            det.members_ = []
            for mem in state["members"]:
                if mem is None:
                    det.members_.append(None)
                elif "arch" in mem:
                    from kwsos.models.asd import asd_model_from_dict

                    net = asd_model_from_dict(dict(mem["arch"]))
                    net.load_state_dict(mem["state"])
                    det.members_.append(net.eval())
                else:
                    from kwsos.models.autoencoder import AutoencoderDetector

                    det.members_.append(
                        {k: AutoencoderDetector.from_dict(v) for k, v in mem.items()}
                    )
            det.train_embeddings_ = [
                None if f is None else f.numpy().astype(np.float32)
                for f in state["train_embeddings"]
            ]
            det.train_groups_ = np.asarray(state["train_groups"])
            det.train_domains_ = np.asarray(state["train_domains"])
            det.train_scores_ = state["train_scores"].numpy()
            det.thresholds_ = {str(k): float(v) for k, v in state["thresholds"].items()}
            det.train_logs_ = list(state.get("train_logs", []))
            if set(det.thresholds_) != set(det.groups_):
                raise ValueError("thresholds do not match the sections")
            det._refit_backends()
        except KwsosError:
            raise
        except Exception as exc:
            raise KwsosError(f"{path} is a damaged anomaly model: {exc}") from None
        return det


def _plain_loss(t: AnomalyTrainingConfig, n_classes: int, dim: int, seed: int) -> Any:
    """The angular-margin loss of ``t.loss`` with fixed or trainable centres."""
    from kwsos import losses

    fixed = not t.trainable_centers
    if t.loss == "adacos":
        return losses.AdaCos(n_classes, dim, trainable_centers=not fixed, seed=seed)
    if t.loss == "subcluster_adacos":
        return losses.SubClusterAdaCos(
            n_classes, dim, t.n_centers, trainable_centers=not fixed, seed=seed
        )
    if t.loss == "adaproj":
        from kwsos.losses.adaproj import AdaProj

        return AdaProj(n_classes, dim, trainable_centers=not fixed, seed=seed)
    if t.loss == "arcface":
        return losses.ArcFace(n_classes, dim, trainable_centers=not fixed, seed=seed)
    from kwsos.losses.arcmix import ArcMix, NoisyArcMix

    cls: Callable[..., Any] = ArcMix if t.loss == "arcmix" else NoisyArcMix
    return cls(n_classes, dim, trainable_centers=not fixed, seed=seed)


def _embed(net: Any, waves: np.ndarray, device: str, hook: Hook | None, step: str) -> np.ndarray:
    """``(n, dim)`` embeddings of ``waves`` in batches, no gradient."""
    import torch

    from kwsos.training import pick_device

    dev = pick_device(device)
    net = net.to(dev).eval()
    out = []
    batch = 32
    with torch.inference_mode():
        for i in range(0, len(waves), batch):
            x = torch.from_numpy(np.ascontiguousarray(waves[i : i + batch])).to(dev)
            out.append(net(x).float().cpu().numpy())
            if hook is not None:
                call_hook(hook, step, completed=min(i + batch, len(waves)), total=len(waves))
    net.to("cpu")
    return np.concatenate(out) if out else np.zeros((0, net.out_dim), np.float32)
