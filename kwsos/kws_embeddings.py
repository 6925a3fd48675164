"""Training the keyword embedding network from the enrolled shots (Diss. 6.3.4-6.3.5).

The training set is built from nothing but the shots of all enrolled keywords plus background
audio:

* every shot -> log-Mel (normalised per shot with ``input_norm``, as the extractor does per
  recording: :func:`kwsos.embeddings.normalize_logmel`) -> segments of 16 frames (hop 3 frames ~ L_seg / 5); each segment gets
  its keyword as class and, for TACos, its relative position within the shot as position target
  (:func:`kwsos.losses.position_labels`, Diss. Def. 6.3, ``N_pos`` = most segments of any shot);
* with ``reversed_segments``: a time-reversed copy of every segment, in its own class
  ``"<keyword>~reversed"`` with a uniform position target (Diss. 6.3.5);
* a "no speech" class of segments of background audio (built-in generated noise, see
  :mod:`kwsos.noise`, plus the user's own recordings) with a uniform position target.

The network (:class:`~kwsos.models.TemporalResNet`) is trained with TACos (``kind="tacos"``) or
the keyword-only loss (``kind="lkw"``: TACos with a single position, i.e. the two-dimensional
AdaCos of the ITG 2021 paper), Adam, batch 32, random oversampling of the classes, mixup with
``lambda ~ U(0, 1)`` and SpecAugment (:mod:`kwsos.training`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kwsos.features import LogMel, training_segments
from kwsos.training import TrainConfig, TrainLog

__all__ = [
    "EmbeddingTrainingConfig",
    "TrainingSet",
    "build_training_set",
    "train_keyword_embeddings",
    "NO_SPEECH",
    "REVERSED_SUFFIX",
]

log = logging.getLogger(__name__)

NO_SPEECH = "<no speech>"
REVERSED_SUFFIX = "~reversed"

#: Enrollment defaults for 2 CPU cores (see benchmarks/RESULTS.md, "TACos enrollment"): a budget
#: of 2000 Adam steps of 32 segments (0.26-0.36 s per step on 2 cores with bf16), whatever the number of
#: keywords, and at most 10 minutes. The paper trains 1000 epochs on a GPU.
DEFAULT_TRAIN = TrainConfig(epochs=1000, max_steps=2000, max_minutes=10.0, patience=0)


@dataclass(frozen=True)
class EmbeddingTrainingConfig:
    """How the keyword embedding network is trained.

    Attributes
    ----------
    kind
        ``"tacos"`` (keyword + relative-position loss), ``"lkw"`` (keyword loss only) or
        ``"sliding"`` (sliding-window baseline: :class:`~kwsos.models.SlidingWindowResNet`, one
        vector per segment, AdaCos with one centre per class; Diss. 6.3.7).
    reversed_segments
        Add a time-reversed class per keyword (Diss. 6.3.5; improves every system in Table 31).
    no_speech
        Add the "no speech" class from background audio.
    n_centers, dim
        Centres per (keyword, position) and embedding size (paper: 16 and 128).
    channels
        Channels of the four ResNet stages (paper: 16, 32, 64, 128).
    segment_frames, hop_frames
        Segment length and training hop in log-Mel frames (16 = 0.25 s, 3 ~ 0.05 s).
    background_clips
        Number of generated one-second background clips (:func:`kwsos.noise.builtin_backgrounds`).
    noise_snr_db, noise_p, gain_db
        Training augmentation besides mixup and SpecAugment: with probability ``noise_p`` a
        background segment is mixed into a training segment at an SNR drawn from
        ``noise_snr_db``; every segment gets a random gain of up to ``+-gain_db`` dB
        (:func:`kwsos.augment.add_noise`, :func:`kwsos.augment.random_gain`). ``noise_p=0`` and
        ``gain_db=0`` give the paper's augmentation only.
    freq_warp
        Vocal tract length perturbation: every training segment's frequency axis is scaled by a
        factor drawn from ``[1 - freq_warp, 1 + freq_warp]`` (:func:`kwsos.augment.random_freq_warp`;
        0 turns it off). Aimed at enrollment and test speakers that differ.
    input_norm, input_norm_frames
        Per-recording normalisation of the log-Mel input (``"none"``, ``"cmvn"``, ``"cmn"``;
        half window in frames), applied to each shot's and background's whole log-Mel before
        segmenting. Must equal the extractor's ``EmbeddingFeatures.input_norm`` /
        ``input_norm_frames`` (the extractor's setting is the one that counts: it is what
        inference uses and what a bank stores).
    train
        Optimisation settings (:class:`kwsos.training.TrainConfig`).
    """

    kind: str = "tacos"
    reversed_segments: bool = True
    no_speech: bool = True
    n_centers: int = 16
    dim: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    segment_frames: int = 16
    hop_frames: int = 3
    background_clips: int = 24
    noise_snr_db: tuple[float, float] = (0.0, 25.0)
    noise_p: float = 0.0
    gain_db: float = 0.0
    freq_warp: float = 0.0
    input_norm: str = "none"
    input_norm_frames: int = 100
    train: TrainConfig = field(default_factory=lambda: DEFAULT_TRAIN)

    def __post_init__(self) -> None:
        if self.kind not in ("tacos", "lkw", "sliding"):
            raise ValueError(f"kind must be 'tacos', 'lkw' or 'sliding', got {self.kind!r}")
        from kwsos.embeddings import check_input_norm

        check_input_norm(self.input_norm, self.input_norm_frames)
        if not 0.0 <= self.freq_warp < 0.5:
            raise ValueError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "noise_snr_db", tuple(float(v) for v in self.noise_snr_db))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["channels"] = list(self.channels)
        d["noise_snr_db"] = list(self.noise_snr_db)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmbeddingTrainingConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(d.get("train"), Mapping):
            d["train"] = TrainConfig.from_dict(d["train"])
        return cls(**d)


@dataclass
class TrainingSet:
    """Segments ``x`` ``(N, T, n_mels)``, keyword targets ``(N, n_classes)``, position targets
    ``(N, n_positions)``, class id per segment, and the class names (keywords first)."""

    x: np.ndarray
    lab_kw: np.ndarray
    lab_pos: np.ndarray
    class_ids: np.ndarray
    classes: list[str]
    n_positions: int


def build_training_set(
    shots: Mapping[str, Sequence[np.ndarray]],
    backgrounds: Sequence[np.ndarray] = (),
    *,
    kind: str = "tacos",
    reversed_segments: bool = True,
    segment_frames: int = 16,
    hop_frames: int = 3,
    rng: np.random.Generator | None = None,
    input_norm: str = "none",
    input_norm_frames: int = 100,
) -> TrainingSet:
    """Segments and targets from the shots of every keyword (see module docstring).

    ``shots`` maps keyword -> 16 kHz waves. Background segments (hop of half a segment) are
    subsampled to the size of the largest keyword class, so that "no speech" does not dominate the
    oversampled epochs. ``input_norm`` / ``input_norm_frames``: normalisation of each shot's and
    background's whole log-Mel (:func:`kwsos.embeddings.normalize_logmel`); padding frames are
    then the local mean 0 instead of silence (:func:`kwsos.embeddings.input_pad_value`).
    """
    from kwsos.embeddings import input_pad_value, normalize_logmel
    from kwsos.losses import position_labels, uniform_positions

    rng = rng or np.random.default_rng(0)
    logmel = LogMel()
    pad = input_pad_value(input_norm)

    def frames(w: np.ndarray) -> np.ndarray:
        return normalize_logmel(logmel(w), input_norm, input_norm_frames)

    keywords = list(shots)
    if not keywords:
        raise ValueError("no keywords to train on")
    per_shot = {
        kw: [
            training_segments(
                frames(w), segment_frames=segment_frames, hop_frames=hop_frames, pad_value=pad
            )
            for w in shots[kw]
        ]
        for kw in keywords
    }
    n_pos = (
        1 if kind in ("lkw", "sliding") else max(len(s) for segs in per_shot.values() for s in segs)
    )
    classes = list(keywords)
    if reversed_segments:
        classes += [kw + REVERSED_SUFFIX for kw in keywords]
    bg_segs = [
        training_segments(
            frames(b), segment_frames=segment_frames, hop_frames=segment_frames // 2, pad_value=pad
        )
        for b in backgrounds
        if logmel.n_frames(len(b)) >= 1
    ]
    if bg_segs:
        classes.append(NO_SPEECH)
    col = {c: i for i, c in enumerate(classes)}
    xs, kws, poss = [], [], []

    def add(segs: np.ndarray, cls: str, pos: np.ndarray) -> None:
        xs.append(segs)
        kws.append(np.full(len(segs), col[cls]))
        poss.append(pos)

    for kw in keywords:
        for segs in per_shot[kw]:
            pos = position_labels(len(segs), n_pos) if n_pos > 1 else np.ones((len(segs), 1))
            add(segs, kw, pos)
            if reversed_segments:
                add(segs[:, ::-1], kw + REVERSED_SUFFIX, uniform_positions(len(segs), n_pos))
    if bg_segs:
        pool = np.concatenate(bg_segs)
        largest = max(sum(len(s) for s in per_shot[kw]) for kw in keywords)
        if len(pool) > largest:
            pool = pool[np.sort(rng.choice(len(pool), largest, replace=False))]
        add(pool, NO_SPEECH, uniform_positions(len(pool), n_pos))
    class_ids = np.concatenate(kws)
    lab_kw = np.zeros((len(class_ids), len(classes)), np.float32)
    lab_kw[np.arange(len(class_ids)), class_ids] = 1.0
    return TrainingSet(
        np.ascontiguousarray(np.concatenate(xs), np.float32),
        lab_kw,
        np.concatenate(poss).astype(np.float32),
        class_ids,
        classes,
        n_pos,
    )


def train_keyword_embeddings(
    shots: Mapping[str, Sequence[np.ndarray]],
    config: EmbeddingTrainingConfig = EmbeddingTrainingConfig(),
    *,
    backgrounds: Sequence[np.ndarray] = (),
    init_state: Mapping[str, Any] | None = None,
    hook: Callable[..., None] | None = None,
) -> tuple[Any, TrainLog, TrainingSet, Any]:
    """Train the embedding network on the shots; returns ``(net, log, training_set, loss)``.

    The loss module holds the class centres (the sliding-window detector scores against them).

    ``backgrounds`` are extra 16 kHz "no speech" clips, used together with the built-in generated
    ones. ``init_state`` warm-starts the network (a previous bank's weights); the loss centres
    always start fresh because the classes may have changed.
    """
    import torch

    from kwsos.augment import add_noise, random_freq_warp, random_gain, spec_augment
    from kwsos.losses import AdaCos, TACos
    from kwsos.models import SlidingWindowResNet, TemporalResNet
    from kwsos.noise import builtin_backgrounds
    from kwsos.training import seed_everything, train

    rng = np.random.default_rng(config.train.seed)
    bgs: list[np.ndarray] = []
    if config.no_speech:
        bgs = builtin_backgrounds(rng, n_clips=config.background_clips) + list(backgrounds)
    ts = build_training_set(
        shots,
        bgs,
        kind=config.kind,
        reversed_segments=config.reversed_segments,
        segment_frames=config.segment_frames,
        hop_frames=config.hop_frames,
        rng=rng,
        input_norm=config.input_norm,
        input_norm_frames=config.input_norm_frames,
    )
    seed_everything(config.train.seed)
    if config.kind == "sliding":
        net = SlidingWindowResNet(
            dim=config.dim, channels=config.channels, segment_frames=config.segment_frames
        )
    else:
        net = TemporalResNet(dim=config.dim, channels=config.channels)
    if init_state is not None:
        try:
            net.load_state_dict(init_state)
            log.info("warm start from the previous network")
        except (RuntimeError, KeyError) as exc:
            log.warning("cannot warm-start (%s); training from scratch", exc)
    if config.kind == "sliding":
        loss, targets = AdaCos(len(ts.classes), dim=config.dim), (ts.lab_kw,)
    else:
        loss = TACos(len(ts.classes), ts.n_positions, dim=config.dim, n_centers=config.n_centers)
        targets = (ts.lab_kw, ts.lab_pos)
    noise_pool = (
        torch.from_numpy(ts.x[ts.class_ids == ts.classes.index(NO_SPEECH)])
        if NO_SPEECH in ts.classes and config.noise_p > 0
        else None
    )

    bin_hz = torch.from_numpy(LogMel().centre_hz())

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if noise_pool is not None:
            x = add_noise(x, noise_pool, g, snr_db=config.noise_snr_db, p=config.noise_p)
        if config.gain_db > 0:
            x = random_gain(x, g, max_db=config.gain_db)
        if config.freq_warp > 0:
            x = random_freq_warp(x, g, bin_hz=bin_hz, max_change=config.freq_warp)
        return spec_augment(x, g)

    tlog = train(
        net,
        loss,
        ts.x,
        targets,
        ts.class_ids,
        config.train,
        augment=augment,
        hook=hook,
    )
    net.cpu().eval()
    loss.cpu().eval()
    return net, tlog, ts, loss
