"""Clip embeddings: one vector per fixed-length clip, from a clip ResNet trained with an
angular-margin loss (Diss. 3-5; used by few-shot open-set classification, Diss. 6.2, and by
anomalous sound detection).

The pieces, each usable alone:

* :class:`ClipFrontendConfig` / :class:`ClipFrontend`: audio -> a fixed-length clip (the first
  ``clip_s`` seconds, zero-padded at the end; Diss. 6.2.1) -> log-Mel
  (:class:`~kwsos.features.LogMel`);
* :class:`ClipModelConfig`: the network (:class:`~kwsos.models.ClipResNet`, Diss. Table 4), a
  pretrained starting point (``init``), ensembles;
* :class:`ClipTrainingConfig` and :func:`train_clip_network`: sub-cluster AdaCos with one fixed
  centre per class (Diss. 6.2.2), mixup, the augmentations, Adam, random oversampling;
* :class:`ClipEmbedder`: trains the networks of a model config on labelled clips and maps clips
  to L2-normalised embeddings (an ensemble's embeddings side by side, so cosine similarities are
  averaged);
* :func:`pretrain`, :func:`save_pretrained`, :func:`load_pretrained`,
  :func:`pretrained_frontend`: a network trained on many classes as the starting point of
  few-shot fits; ``"real"`` and ``"synthetic"`` are the ones shipped with kwsos
  (:data:`SHIPPED_PRETRAINED`).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kwsos import __version__
from kwsos.audio import SAMPLE_RATE, load_clip
from kwsos.config import Config
from kwsos.errors import KwsosError
from kwsos.hooks import Hook, call_hook, subtask_hook
from kwsos.io import atomic_output

__all__ = [
    "BUNDLED_PRETRAINED",
    "PRETRAINED_FORMAT",
    "Clip",
    "ClipEmbedder",
    "ClipFrontend",
    "ClipFrontendConfig",
    "ClipModelConfig",
    "ClipTrainingConfig",
    "load_pretrained",
    "pretrain",
    "pretrained_frontend",
    "save_pretrained",
    "train_clip_network",
]

log = logging.getLogger(__name__)

#: A clip: an audio file, or a 16 kHz mono waveform.
Clip = np.ndarray | str | Path
_EMBED_BATCH = 64
#: Identifies a pretrained clip network file (:func:`save_pretrained`).
PRETRAINED_FORMAT = "kwsos-openset-pretrained/1"
#: The network pretrained on generated alarm-like sounds (``ClipModelConfig(init="synthetic")``,
#: also ``"bundled"``, its name before kwsos shipped two): made by
#: ``recipes/alarm_osc/local/pretrain.py`` from ``data_prep.make_alarm_pretrain`` data.
BUNDLED_PRETRAINED = Path(__file__).resolve().parent.parent / "data" / "osc_pretrained.pt"
#: The network pretrained on 1794 real recordings under ever new real backgrounds, levels and
#: device colourings (``init="real"``, the default of ``kwsos osc fit``): made by
#: ``recipes/alarm_osc/local/pretrain_invariant.py`` from ``data_prep.make_real_pretrain`` and
#: ``data_prep.make_background_pool`` data (sources and licences: ``kwsos/data/NOTICE.md``).
REAL_PRETRAINED = BUNDLED_PRETRAINED.with_name("osc_pretrained_real.pt")
#: Names of the networks shipped with kwsos, usable wherever a pretrained network's path is.
SHIPPED_PRETRAINED: dict[str, Path] = {
    "real": REAL_PRETRAINED,
    "synthetic": BUNDLED_PRETRAINED,
    "bundled": BUNDLED_PRETRAINED,
}
#: Training log of a network used as it is (no training on the shots).
_UNTRAINED_LOG: dict[str, Any] = {"epochs_run": 0, "losses": [], "scales": [], "seconds": 0.0}


# ---------------------------------------------------------------------- configs
@dataclass(frozen=True)
class ClipFrontendConfig(Config):
    """Audio -> fixed-length log-Mel clip.

    Attributes
    ----------
    clip_s
        Clip length in seconds fed to the network (Diss. 6.2.1: 4 s clips).
    n_mels, win_samples, hop_samples
        Log-Mel frontend at 16 kHz. Diss. Table 4 uses window 1024 / hop 512 (128 Mel bins for
        machine sounds); 64 bins here, as the toolkit's other log-Mel models.
    """

    clip_s: float = 4.0
    n_mels: int = 64
    win_samples: int = 1024
    hop_samples: int = 512

    def __post_init__(self) -> None:
        if not (self.clip_s > 0 and math.isfinite(self.clip_s)):
            raise KwsosError(f"clip_s must be a positive number of seconds, got {self.clip_s}")
        for name in ("n_mels", "win_samples", "hop_samples"):
            if getattr(self, name) < 1:
                raise KwsosError(f"{name} must be positive, got {getattr(self, name)}")
        if round(self.clip_s * SAMPLE_RATE) < self.win_samples:
            raise KwsosError(f"clip_s = {self.clip_s} s is shorter than one analysis window")

    @property
    def clip_samples(self) -> int:
        return round(self.clip_s * SAMPLE_RATE)


@dataclass(frozen=True)
class ClipModelConfig(Config):
    """The clip network(s).

    Attributes
    ----------
    dim, channels, blocks_per_stage
        Clip ResNet (Diss. Table 4: 128, (16, 32, 64, 128), 2).
    init
        Path of a pretrained clip network (:func:`pretrain`, :func:`save_pretrained`), or
        the name of one shipped with kwsos (:data:`SHIPPED_PRETRAINED`: ``"real"``,
        ``"synthetic"``, alias ``"bundled"``). It is the starting point of training instead
        of a random initialisation; its architecture replaces ``dim``, ``channels`` and
        ``blocks_per_stage``, and the frontend must be the one it was trained with
        (:func:`pretrained_frontend`). A list of several pretrained networks (same frontend)
        makes one system per network, all members of one ensemble: each is fine-tuned
        ``ensemble`` times (and kept with ``keep_pretrained``), in the order given. Two priors
        pretrained on different data complement each other
        (``recipes/alarm_osc/RESULTS_prior_ensemble.md``). Not in the paper.
    keep_pretrained
        With ``init``: the pretrained network, unchanged, is one more ensemble member besides
        the ``ensemble`` networks fine-tuned from it. Not in the paper.
    ensemble
        Number of networks trained (seeds ``seed``, ``seed + 1``, ...) per pretrained network
        (one without ``init``). A clip's embedding is the concatenation of the networks'
        L2-normalised embeddings over ``sqrt(n_networks)``: a unit vector whose cosine
        similarity to another is the mean of the networks'. Not in the paper (1 = the paper's
        system).
    """

    dim: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    blocks_per_stage: int = 2
    init: str | tuple[str, ...] | None = None
    keep_pretrained: bool = False
    ensemble: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        for name in ("dim", "blocks_per_stage", "ensemble"):
            if getattr(self, name) < 1:
                raise KwsosError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise KwsosError(f"channels must be positive integers, got {self.channels}")
        if isinstance(self.init, list | tuple):
            inits = tuple(str(p) for p in self.init)
            if not inits:
                raise KwsosError("init: an empty list; give a pretrained network or none")
            if len(set(inits)) != len(inits):
                raise KwsosError(f"init names a network twice: {list(inits)}")
            # one network is stored as a plain name, as before lists existed
            object.__setattr__(self, "init", inits[0] if len(inits) == 1 else inits)
        elif self.init is not None:
            object.__setattr__(self, "init", str(self.init))
        if self.init is None and self.keep_pretrained:
            raise KwsosError("keep_pretrained needs a pretrained network (init)")

    @property
    def inits(self) -> tuple[str, ...]:
        """The pretrained networks to start from, in order (empty: a random start)."""
        if self.init is None:
            return ()
        return (self.init,) if isinstance(self.init, str) else tuple(self.init)


@dataclass(frozen=True)
class ClipTrainingConfig(Config):
    """How clip networks are trained (Diss. 6.2.2 unless stated otherwise).

    Attributes
    ----------
    epochs, batch_size
        Fixed training length; ``None`` (default): ``epochs_per_shot x shots`` and
        ``batch_per_shot x shots`` with ``shots`` the largest number of clips of a class
        (Diss. 6.2.2: 100 and 8); when fine-tuning a pretrained network the epochs are
        ``finetune_epochs / shots`` instead (the same number of steps for any number of
        shots). ``epochs=0`` (only with a pretrained network): no training.
    epochs_per_shot, batch_per_shot, finetune_epochs
        The factors above.
    lr
        Adam learning rate (Keras default).
    mixup
        Mixup with ``lambda ~ U(0, 1)`` (Diss. 6.2.2 keeps the ASD system's mixup).
    time_shift
        Roll every training clip circularly in time by a random offset
        (:func:`kwsos.augment.random_time_shift`). Not in the paper: with one shot per class the
        network otherwise memorises where the shot's events sit in the clip.
    colouring
        Maximum gain of the random spectral colouring (:func:`kwsos.augment.random_colouring`;
        0 turns it off). Not in the paper.
    speed
        Maximum relative change of the random speed perturbation
        (:func:`kwsos.augment.random_speed`: pitch and tempo together; 0 turns it off). Not in
        the paper: imitates devices that play the same alarm a little higher and faster.
    pitch, stretch
        Maximum relative change of two augmentations that vary pitch and tempo independently
        (:func:`kwsos.augment.random_freq_warp`, :func:`kwsos.augment.random_time_stretch`; 0,
        the default, turns each off). Not in the paper.
    seed
        Seeds the network initialisation, the fixed class centres, batch order and mixup.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"`` ...
    threads
        Torch CPU threads during training (``None``: torch's default).
    """

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
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs_per_shot", "batch_per_shot", "finetune_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KwsosError(f"{name} must be a positive integer, got {value}")
        if self.epochs is not None and self.epochs < 0:
            raise KwsosError(f"epochs must be a positive integer, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 2:
            raise KwsosError("batch_size must be at least 2 (mixup and batch norm need pairs)")
        if not (self.colouring >= 0 and math.isfinite(self.colouring)):
            raise KwsosError(f"colouring must be >= 0, got {self.colouring}")
        for name in ("speed", "pitch", "stretch"):
            if not 0 <= getattr(self, name) < 0.5:
                raise KwsosError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")

    def schedule(self, shots: int, *, finetune: bool = False) -> tuple[int, int]:
        """``(epochs, batch_size)`` for ``shots`` clips per class (Diss. 6.2.2 when not fixed);
        ``finetune``: starting from a pretrained network."""
        if self.epochs is not None:
            epochs = self.epochs
        elif finetune:
            epochs = max(1, round(self.finetune_epochs / shots))
        else:
            epochs = self.epochs_per_shot * shots
        batch = self.batch_size if self.batch_size is not None else self.batch_per_shot * shots
        return epochs, max(2, batch)

    @property
    def augments(self) -> bool:
        """Whether any augmentation is on."""
        return self.time_shift or max(self.colouring, self.speed, self.pitch, self.stretch) > 0


# ---------------------------------------------------------------------- frontend
class ClipFrontend:
    """Clips (files or 16 kHz arrays) -> fixed-length log-Mel ``(n, n_frames, n_mels)``.

    Files are read with :func:`kwsos.audio.stream_audio` (only the first ``clip_s`` seconds, as
    if the file ended there: a longer file is normalised by the peak of those seconds and is
    never read whole), arrays go through :func:`kwsos.audio.prepare_array`: both get the same
    peak normalisation and 50 Hz high-pass, so a file and its samples give the same features.
    """

    def __init__(self, config: ClipFrontendConfig | None = None) -> None:
        self.config = config if config is not None else ClipFrontendConfig()

    @property
    def logmel(self) -> Any:
        from kwsos.features import LogMel

        c = self.config
        return LogMel(n_mels=c.n_mels, win_samples=c.win_samples, hop_samples=c.hop_samples)

    @property
    def n_frames(self) -> int:
        return self.logmel.n_frames(self.config.clip_samples)

    def wave(self, clip: Clip, what: str = "clip") -> np.ndarray:
        """The first ``clip_s`` seconds of ``clip``, zero-padded to exactly ``clip_samples``
        (the reference implementation keeps the start of longer clips)."""
        n = self.config.clip_samples
        x = load_clip(clip, what=what, max_s=self.config.clip_s)[:n]
        if len(x) < n:
            x = np.concatenate([x, np.zeros(n - len(x), np.float32)])
        return x

    def __call__(
        self, clips: Sequence[Clip], *, what: str = "clip", jobs: int | None = None
    ) -> np.ndarray:
        """``(n, n_frames, n_mels)`` log-Mel of ``clips``; ``jobs`` clips are read and
        featurised at once by threads (:func:`kwsos.parallel.ordered_map`; default: cores, at
        most 4), the result is the same for any ``jobs``."""
        from kwsos.parallel import single_threaded_blas

        with single_threaded_blas():
            out = list(self.iter_features(clips, what=what, jobs=jobs))
        if not out:
            raise KwsosError(f"no {what}s given")
        return np.stack(out)

    def iter_features(
        self,
        clips: Sequence[Clip],
        *,
        what: str = "clip",
        jobs: int | None = None,
        window: int | None = None,
    ) -> Iterator[np.ndarray]:
        """The float32 log-Mel ``(n_frames, n_mels)`` of every clip, in order: ``jobs`` threads
        read and featurise up to ``window`` clips ahead of the consumer
        (:func:`kwsos.parallel.ordered_map`), so that a consumer that embeds a batch finds the
        next one ready. Run it inside :func:`kwsos.parallel.single_threaded_blas`, as
        :meth:`__call__` does: the Mel filterbank product of a clip is rounded differently by
        a multi-threaded BLAS, and on a shared machine its threads wait for busy cores."""
        from kwsos.parallel import ordered_map

        if isinstance(clips, str | Path) or (isinstance(clips, np.ndarray) and clips.ndim == 1):
            raise KwsosError(f"expected a list of {what}s, got a single {what}")
        extractor = self.logmel  # one extractor (and Mel filterbank) for all clips

        def one(item: tuple[int, Clip]) -> np.ndarray:
            i, clip = item
            label = str(clip) if isinstance(clip, str | Path) else f"{what} {i}"
            return extractor(self.wave(clip, label)).astype(np.float32, copy=False)

        items = list(enumerate(clips))
        yield from ordered_map(one, items, jobs=jobs if len(items) > 1 else 1, window=window)

    def check(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x`` as float32 after checking it has the shape ``(n, n_frames, n_mels)``."""
        x = np.asarray(x, np.float32)
        shape = (self.n_frames, self.config.n_mels)
        if x.ndim != 3 or x.shape[1:] != shape:
            raise KwsosError(
                f"features of {name!r} must have shape (n, {shape[0]}, {shape[1]}), got {x.shape}"
            )
        return x

    def bin_hz(self) -> Any:
        """Centre frequency of every Mel bin as a tensor (for frequency-warping augmentations)."""
        import torch

        return torch.from_numpy(self.logmel.centre_hz())

    def change_speed(self, x: np.ndarray, speed: float) -> np.ndarray:
        """Log-Mel clips ``(n, n_frames, n_mels)`` played ``speed`` times faster (pitch and tempo
        together, :func:`kwsos.augment.change_speed`)."""
        import torch

        from kwsos.augment import change_speed

        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return change_speed(xt, torch.tensor([float(speed)]), bin_hz=self.bin_hz()).numpy()


# ---------------------------------------------------------------------- training
def _augmenter(training: ClipTrainingConfig, bin_hz: Any) -> Any:
    def augment(x: Any, generator: Any) -> Any:
        from kwsos.augment import (
            random_colouring,
            random_freq_warp,
            random_speed,
            random_time_shift,
            random_time_stretch,
        )

        c = training
        if c.speed > 0:
            x = random_speed(x, generator, bin_hz=bin_hz, max_change=c.speed)
        if c.pitch > 0:
            x = random_freq_warp(x, generator, bin_hz=bin_hz, max_change=c.pitch)
        if c.stretch > 0:
            x = random_time_stretch(x, generator, max_change=c.stretch)
        if c.time_shift:
            x = random_time_shift(x, generator)
        if c.colouring > 0:
            x = random_colouring(x, generator, max_gain=c.colouring)
        return x

    return augment


def train_clip_network(
    model: Any,
    x: np.ndarray,
    class_ids: np.ndarray,
    n_classes: int,
    *,
    training: ClipTrainingConfig,
    frontend: ClipFrontend,
    epochs: int,
    batch_size: int,
    seed: int,
    hook: Hook | None = None,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place to tell ``n_classes`` classes of log-Mel clips ``x`` apart:
    sub-cluster AdaCos with one fixed centre per class, mixup and ``training``'s augmentations
    (Diss. 6.2.2). Returns the training log as a dict."""
    from kwsos.losses import SubClusterAdaCos
    from kwsos.training import TrainConfig, train

    c = training
    loss = SubClusterAdaCos(n_classes, model.dim, n_centers=1, trainable_centers=False, seed=seed)
    targets = np.eye(n_classes, dtype=np.float32)[class_ids]
    tcfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=c.lr,
        mixup=c.mixup,
        augment=c.augments,
        max_minutes=max_minutes,
        seed=seed,
        device=c.device,
        threads=c.threads,
    )
    augment = _augmenter(c, frontend.bin_hz())
    try:
        tlog = train(model, loss, x, (targets,), class_ids, tcfg, augment=augment, hook=hook)
    except FloatingPointError as exc:
        raise KwsosError(f"training diverged: {exc}") from None
    scales = getattr(tlog, "scales", [])
    if scales and not (math.isfinite(scales[-1]) and scales[-1] < 1e3):
        log.warning("the AdaCos scale ended at %.3g (diverging?)", scales[-1])
    return tlog.to_dict()


def _new_model(frontend: ClipFrontendConfig, model: ClipModelConfig) -> Any:
    from kwsos.models import ClipResNet

    return ClipResNet(
        frontend.n_mels, model.dim, channels=model.channels, blocks_per_stage=model.blocks_per_stage
    )


# ---------------------------------------------------------------------- embedder
@contextmanager
def _network_threads(feature_jobs: int) -> Iterator[None]:
    """Torch's threads while ``feature_jobs`` threads featurise the next clips: the cores that
    are neither busy (:func:`kwsos.training.auto_threads`) nor featurising, at least one.

    Oversubscribed cores are costly for torch's OpenMP kernels, which wait for their slowest
    thread: with one of the 2 development cores busy with another process, the default OSC
    model's two networks took 7.7 ms per clip on 2 threads and 2.3 ms on 1
    (``benchmarks/RESULTS.md``, (k)).
    """
    import torch

    from kwsos.training import auto_threads

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, auto_threads() - feature_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ClipEmbedder:
    """Trains the network(s) of a :class:`ClipModelConfig` on labelled log-Mel clips and maps
    clips to L2-normalised embeddings.

    Attributes
    ----------
    models_ : list of ClipResNet
        The networks: per pretrained network of ``init`` (one group without), the pretrained
        one first with ``keep_pretrained``, then the ``ensemble`` trained ones.
    train_logs_ : list of dict
        The training log of every network.
    """

    def __init__(
        self,
        frontend: ClipFrontendConfig | None = None,
        model: ClipModelConfig | None = None,
        training: ClipTrainingConfig | None = None,
    ) -> None:
        self.frontend_config = frontend if frontend is not None else ClipFrontendConfig()
        self.model_config = model if model is not None else ClipModelConfig()
        self.training_config = training if training is not None else ClipTrainingConfig()
        self.frontend = ClipFrontend(self.frontend_config)

    def schedule(self, shots: int) -> tuple[int, int]:
        """``(epochs, batch_size)`` for ``shots`` clips per class."""
        return self.training_config.schedule(shots, finetune=bool(self.model_config.init))

    def fit(
        self, x: np.ndarray, class_ids: np.ndarray, n_classes: int, *, hook: Hook | None = None
    ) -> ClipEmbedder:
        """Train the networks on log-Mel clips ``x`` ``(n, n_frames, n_mels)`` of classes
        ``class_ids`` ``(n,)`` in ``0..n_classes-1``."""
        import torch

        m, t = self.model_config, self.training_config
        n_shots = int(np.bincount(class_ids).max())
        epochs, batch = self.schedule(n_shots)
        if epochs == 0 and not m.init:
            raise KwsosError("epochs=0 needs a pretrained network (init)")
        log.info("training on %d clips of %d classes: %d epochs, batch %d",
                 len(x), n_classes, epochs, batch)  # fmt: skip
        # every pretrained network is read once (all of them first: a missing or mismatched
        # one fails before any training); its members start from copies of it
        priors = [load_pretrained(p, frontend=self.frontend_config).eval() for p in m.inits]
        models, logs = [], []
        n_trained = max(1, len(priors)) * m.ensemble
        for g, pretrained in enumerate(priors or [None]):
            if pretrained is not None and m.keep_pretrained and epochs > 0:
                models.append(pretrained)
                logs.append(copy.deepcopy(_UNTRAINED_LOG))
            for k in range(m.ensemble):
                seed = t.seed + k
                torch.manual_seed(seed)  # network initialisation
                if pretrained is not None:
                    model = copy.deepcopy(pretrained)
                else:
                    model = _new_model(self.frontend_config, m)
                if epochs == 0:
                    logs.append(copy.deepcopy(_UNTRAINED_LOG))
                else:
                    logs.append(
                        train_clip_network(
                            model, x, class_ids, n_classes, training=t, frontend=self.frontend,
                            epochs=epochs, batch_size=batch, seed=seed,
                            hook=subtask_hook(hook, g * m.ensemble + k, n_trained),
                        )
                    )  # fmt: skip
                models.append(model.eval())
        self.models_ = models
        self.train_logs_ = logs
        return self

    @property
    def dim(self) -> int:
        """Size of the embeddings (all networks together)."""
        self._check_fitted()
        return sum(int(m.dim) for m in self.models_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise KwsosError("the clip embedder is not fitted yet: call fit() or load() first")

    def _device(self) -> Any:
        from kwsos.training import pick_device

        try:
            return pick_device(self.training_config.device)
        except ValueError:
            return pick_device("cpu")

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of log-Mel clips ``(n, n_frames, n_mels)``: the
        networks' normalised embeddings side by side, over ``sqrt(n_networks)``."""
        import torch

        self._check_fitted()
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
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32)

    def transform(
        self,
        clips: Sequence[Clip],
        *,
        what: str = "clip",
        jobs: int | None = None,
        hook: Hook | None = None,
    ) -> np.ndarray:
        """L2-normalised embeddings ``(n, dim)`` of clips (files or 16 kHz arrays).

        The same as ``embed_features(frontend(clips))`` (the same batches), in less time and
        memory: the clips go through the networks in batches of 64, and while the networks
        embed one batch, ``jobs`` threads (default: cores, at most 4) read and featurise the
        next (:meth:`ClipFrontend.iter_features`). Meanwhile torch runs on the cores those
        threads leave, at least one (:func:`_network_threads`), and BLAS on one thread.
        ``hook("embed", completed=, total=)`` is called after every batch.
        """
        from contextlib import closing

        from kwsos.parallel import default_jobs, single_threaded_blas

        self._check_fitted()
        n_jobs = default_jobs() if jobs is None else int(jobs)
        total = len(clips)
        out: list[np.ndarray] = []
        batch: list[np.ndarray] = []

        def flush() -> None:
            out.append(self.embed_features(np.stack(batch)))
            batch.clear()
            call_hook(hook, "embed", completed=sum(map(len, out)), total=total)

        feats = self.frontend.iter_features(
            clips, what=what, jobs=n_jobs, window=_EMBED_BATCH + 2 * n_jobs
        )
        with single_threaded_blas(), _network_threads(n_jobs), closing(feats):
            for x in feats:
                batch.append(x)
                if len(batch) == _EMBED_BATCH:
                    flush()
            if batch:
                flush()
        if not out:
            raise KwsosError(f"no {what}s given")
        return np.concatenate(out)

    def state(self) -> list[dict[str, Any]]:
        """The networks as ``[{"model": architecture, "state_dict": tensors}, ...]``."""
        self._check_fitted()
        return [
            {
                "model": m.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
            }
            for m in self.models_
        ]

    def load_state(self, nets: Sequence[Mapping[str, Any]]) -> ClipEmbedder:
        """Inverse of :meth:`state`."""
        from kwsos.models import model_from_dict

        models = []
        for net in nets:
            model = model_from_dict(net["model"])
            model.load_state_dict(net["state_dict"])
            models.append(model.eval())
        self.models_ = models
        return self


# ---------------------------------------------------------------------- pretrained networks
def pretrain(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    frontend: ClipFrontendConfig | None = None,
    model: ClipModelConfig | None = None,
    training: ClipTrainingConfig | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    max_minutes: float | None = None,
    hook: Hook | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a clip network on many labelled classes, as the starting point of few-shot fits.

    The same network, loss (sub-cluster AdaCos, one fixed centre per class), mixup and
    augmentations as a few-shot fit, on ``features`` (n, frames, mels) of classes ``labels``
    (n,) -- e.g. the procedurally generated classes of :mod:`data_prep.make_alarm_pretrain`,
    each played by several devices. Returns the network and the training log (a dict);
    :func:`save_pretrained` writes them, ``ClipModelConfig(init=)`` starts from them.
    ``max_minutes`` stops training early at a wall-clock budget.
    """
    import torch

    f = frontend if frontend is not None else ClipFrontendConfig()
    m = model if model is not None else ClipModelConfig()
    t = training if training is not None else ClipTrainingConfig()
    x = np.asarray(features, np.float32)
    _, class_ids = np.unique(np.asarray(labels), return_inverse=True)
    n_classes = int(class_ids.max()) + 1 if len(class_ids) else 0
    if n_classes < 2:
        raise KwsosError("pretraining needs at least two classes")
    torch.manual_seed(t.seed)
    net = _new_model(f, m)
    tlog = train_clip_network(
        net, x, class_ids, n_classes, training=t, frontend=ClipFrontend(f), epochs=epochs,
        batch_size=batch_size, seed=t.seed, hook=hook, max_minutes=max_minutes,
    )  # fmt: skip
    return net.eval(), tlog


def save_pretrained(
    model: Any,
    path: str | Path,
    *,
    frontend: ClipFrontendConfig,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a pretrained clip network (architecture, weights, the frontend settings it was
    trained with and ``info``, e.g. the training log and data) to one file, atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": PRETRAINED_FORMAT,
        "kwsos_version": __version__,
        "frontend": frontend.to_dict(),
        "model": model.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": dict(info or {}),
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return path


def _read_pretrained(path: str | Path) -> tuple[Path, dict[str, Any]]:
    import torch

    path = SHIPPED_PRETRAINED.get(str(path), Path(path))
    if not path.is_file():
        raise KwsosError(f"pretrained network not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of every kind
        raise KwsosError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != PRETRAINED_FORMAT:
        raise KwsosError(f"{path} is not a pretrained kwsos clip network ({PRETRAINED_FORMAT})")
    return path, state


def pretrained_frontend(path: str | Path) -> ClipFrontendConfig:
    """The frontend a pretrained network was trained with: a model starting from it must use
    it."""
    return ClipFrontendConfig.from_dict(_read_pretrained(path)[1]["frontend"])


def load_pretrained(path: str | Path, *, frontend: ClipFrontendConfig | None = None) -> Any:
    """The clip network of a :func:`save_pretrained` file (a fresh copy on every call); with
    ``frontend``, check that it is the one the network was trained with."""
    from kwsos.models import model_from_dict

    path, state = _read_pretrained(path)
    if frontend is not None:
        theirs = state["frontend"]
        ours = frontend.to_dict()
        diff = [k for k in theirs if ours.get(k) != theirs[k]]
        if diff:
            text = ", ".join(f"{k} {theirs[k]} (classifier: {ours.get(k)})" for k in diff)
            raise KwsosError(f"{path} was trained with another frontend: {text}")
    model = model_from_dict(state["model"])
    model.load_state_dict(state["state_dict"])
    return model
