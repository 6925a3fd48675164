"""Temporal (frame-level) embeddings: TACos / L_kw / sliding-window features and their training
(Diss. 6.3.4-6.3.5).

Inference
---------

:class:`EmbeddingFeatures` is a :class:`~kwsos.features.FeatureExtractor`: log-Mel frames (64 bins,
1024/256) -> segments of 16 frames -> :class:`~kwsos.models.TemporalResNet` -> one 128-d
embedding per frame. Three inference modes, all streaming block by block with memory bounded
independently of the recording length:

``exact`` (the paper's pipeline, the reference)
    One segment centred on every frame (hop 256 samples, half a segment of zero padding at both
    ends); each frame's embedding is the mean of the embeddings the 16 segments covering it give
    for it (Diss. Fig. 28). About 16 forward passes per output frame.
``hop``
    The same with segments every ``hop_frames`` frames (16 / hop_frames passes per frame).
``conv``
    One fully convolutional pass over the whole (padded) block: the network has no pooling or
    padding along time other than the 3x3 convolutions' own, so it accepts any length; each
    frame sees +-16 frames of real context instead of the averaged views of 16 zero-padded
    segments. One forward pass per frame.

Input normalisation (``input_norm``): ``"cmvn"`` / ``"cmn"`` replace every log-Mel frame by its
deviation from the mean (over the standard deviation, for ``cmvn``) of the frames within
``+-input_norm_frames`` of it (:func:`kwsos.features.sliding_cmvn`, as HFCC's ``cmvn_frames``),
computed per recording before segmenting. Training applies the same to each shot's and each
background's whole log-Mel (:func:`normalize_logmel`, used by
:func:`kwsos.kws_embeddings.build_training_set`); streaming holds back ``input_norm_frames``
frames so that the result equals the whole-signal one. Padding frames (zero padding at the
ends, short segments) are then ``0`` (the local mean) instead of the silence log-Mel value.
``"none"`` (the default, and what banks saved without the field get) is the raw log-Mel.

The weights are not part of :meth:`to_dict`; a keyword bank stores them in ``model.pt``
(:meth:`EmbeddingFeatures.with_net` attaches them).

Training
--------
The training set is built from nothing but the shots of all enrolled keywords plus background
audio:

* every shot -> log-Mel (normalised per shot with ``input_norm``, as the extractor does per
  recording: :func:`normalize_logmel`) -> segments of 16 frames (hop 3 frames ~ L_seg / 5); each segment gets
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from kwsos.config import Config
from kwsos.features.base import FeatureExtractor, get_extractor, register_extractor
from kwsos.features.segments import (
    SILENCE_LOGMEL,
    gather_segments,
    inference_starts,
    overlap_add,
    training_segments,
)
from kwsos.features.spectral import LogMel, sliding_cmvn
from kwsos.hooks import Hook
from kwsos.training import TrainConfig, TrainLog

__all__ = [
    "EmbeddingFeatures",
    "EmbeddingTrainingConfig",
    "INPUT_NORMS",
    "KINDS",
    "MODES",
    "NO_SPEECH",
    "REVERSED_SUFFIX",
    "TrainingSet",
    "assemble_training_set",
    "build_training_set",
    "input_pad_value",
    "normalize_logmel",
    "train_keyword_embeddings",
]

log = logging.getLogger(__name__)

#: Per-recording normalisation of the network's log-Mel input (module docstring).
INPUT_NORMS = ("none", "cmvn", "cmn")


def check_input_norm(input_norm: str, input_norm_frames: int) -> None:
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
    if input_norm != "none" and int(input_norm_frames) < 1:
        raise ValueError(f"input_norm_frames must be >= 1, got {input_norm_frames}")


def normalize_logmel(
    frames: np.ndarray, input_norm: str = "none", input_norm_frames: int = 100
) -> np.ndarray:
    """A whole recording's log-Mel ``(n, n_mels)`` normalised as ``input_norm`` says (float32)."""
    check_input_norm(input_norm, input_norm_frames)
    if input_norm == "none" or not len(frames):
        return np.asarray(frames, np.float32)
    out = sliding_cmvn(frames, int(input_norm_frames), variance=input_norm == "cmvn")
    return out.astype(np.float32)


def input_pad_value(input_norm: str) -> float:
    """Value of the padding frames: silence for raw log-Mel, the local mean (0) otherwise."""
    return SILENCE_LOGMEL if input_norm == "none" else 0.0


MODES = ("exact", "hop", "conv")
#: Training objectives: TACos (keyword + position), L_kw only (ITG 2021 2D AdaCos), and the
#: sliding-window baseline (one vector per segment, AdaCos; Diss. 6.3.7).
KINDS = ("tacos", "lkw", "sliding")


@register_extractor
@dataclass(frozen=True)
class EmbeddingFeatures(FeatureExtractor):
    """Temporal embeddings from a trained :class:`~kwsos.models.TemporalResNet` (see module doc).

    Attributes
    ----------
    kind
        Training objective the network was trained with (``tacos``, ``lkw``, ``sliding``). For
        ``sliding`` the network gives one vector per segment; frame ``j`` gets the vector of the
        segment centred on it (``exact``) or of the nearest segment (``hop``); no ``conv``.
    mode
        ``exact``, ``hop`` or ``conv`` inference (module docstring).
    hop_frames
        Segment hop for ``mode="hop"`` (``exact`` always uses 1).
    segment_frames
        Segment length T in frames (16 = 0.25 s).
    model
        ``TemporalResNet.to_dict()``: the architecture.
    training
        The training settings and log (epochs run, final loss, time), kept for provenance.
    batch_segments
        Segments per forward pass (``exact``/``hop``); ``conv`` processes ``batch_segments * 4``
        frames per pass.
    precision
        ``"fp32"``, ``"bf16"`` (bfloat16 autocast of the network) or ``"auto"`` (bf16 on CPUs
        with AMX bf16 units, where a conv pass is about 2.3x as fast; the embeddings differ from
        fp32 ones, median cosine 0.95 in ``benchmarks/bench_threads.py``).
    input_norm
        Per-recording normalisation of the log-Mel input: ``"none"`` (raw log-Mel, the
        default), ``"cmvn"`` (sliding mean and variance) or ``"cmn"`` (sliding mean only); see the
        module docstring. The network must have been trained with the same setting
        (``EmbeddingTrainingConfig.input_norm``).
    input_norm_frames
        Half width of the normalisation window in frames (100 = 1.6 s at 256 samples).
    hfcc_weight
        Weight ``w`` of hand-crafted HFCC features fused into every frame (0, the default: the
        embeddings alone). With ``w > 0`` frame ``j`` is ``[sqrt(1 - w) e_j / |e_j|,
        sqrt(w) h_i / |h_i|]`` with ``h_i`` the HFCC frame (:func:`kwsos.features.HFCC`,
        default settings: deltas and sliding CMVN) whose centre is nearest to frame ``j``'s,
        so that the DTW's cosine distance becomes ``(1 - w) * d_embedding + w * d_hfcc``. Not
        in the dissertation: a kwsos option for enrollment and test speakers that differ
        (see recipes/kws_tts/RESULTS.md). No effect on training.
    """

    name: ClassVar[str] = "embedding"
    win_samples: int = 1024
    hop_samples: int = 256
    n_mels: int = 64
    kind: str = "tacos"
    mode: str = "conv"
    hop_frames: int = 4
    segment_frames: int = 16
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    batch_segments: int = 512
    precision: str = "auto"
    input_norm: str = "none"
    input_norm_frames: int = 100
    hfcc_weight: float = 0.0
    net: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._check_framing()
        if not 1 <= self.n_mels <= 512:
            raise ValueError(f"n_mels must be in [1, 512], got {self.n_mels}")
        if not 1 <= self.segment_frames <= 1024:
            raise ValueError(f"segment_frames must be in [1, 1024], got {self.segment_frames}")
        if not 1 <= self.hop_frames <= self.segment_frames:
            raise ValueError(f"hop_frames must be in [1, segment_frames], got {self.hop_frames}")
        if not 1 <= self.batch_segments <= 1 << 20:
            raise ValueError(f"batch_segments must be positive, got {self.batch_segments}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "sliding" and self.mode == "conv":
            raise ValueError("sliding-window embeddings have no conv mode; use exact or hop")
        check_input_norm(self.input_norm, self.input_norm_frames)
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not 0.0 <= self.hfcc_weight <= 1.0:
            raise ValueError(f"hfcc_weight must be in [0, 1], got {self.hfcc_weight}")
        if self.hfcc_weight > 0 and self.kind == "sliding":
            raise ValueError("hfcc_weight applies to tacos and lkw embeddings (DTW), not sliding")

    # ------------------------------------------------------------------ plumbing
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        for f in fields(self):
            if f.name != "net":
                d[f.name] = getattr(self, f.name)
        return d

    def with_net(self, net: Any) -> EmbeddingFeatures:
        """A copy using ``net`` (a trained module, put in eval mode)."""
        from dataclasses import replace

        if net is None:
            return replace(self, net=None)
        import torch

        net.eval()
        if next(net.parameters()).device.type == "cpu":
            net.to(memory_format=torch.channels_last)  # oneDNN's fast convolution layout
        return replace(self, net=net, model=net.to_dict())

    @property
    def net_arch(self) -> dict[str, Any]:
        """The network's architecture (``model``), as a keyword bank stores it."""
        return self.model

    @property
    def embedding_dim(self) -> int:
        """Size of the network's embeddings (without fused HFCC)."""
        return int(self.model.get("dim", 128)) if self.model else 128

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.embedding_dim + (self.hfcc.dim if self.hfcc_weight > 0 else 0)

    @property
    def hfcc(self) -> FeatureExtractor:
        """The HFCC extractor fused with ``hfcc_weight > 0``."""
        return get_extractor("hfcc", sample_rate=self.sample_rate)

    @property
    def logmel(self) -> LogMel:
        return LogMel(self.sample_rate, self.win_samples, self.hop_samples, self.n_mels)

    @property
    def pad_value(self) -> float:
        """Value of the padding frames of the network input (:func:`input_pad_value`)."""
        return input_pad_value(self.input_norm)

    def normalize(self, frames: np.ndarray) -> np.ndarray:
        """A whole recording's log-Mel -> the network's input frames (:func:`normalize_logmel`)."""
        return normalize_logmel(frames, self.input_norm, self.input_norm_frames)

    def input_frames(self, wave: np.ndarray) -> np.ndarray:
        """``(n_samples,)`` -> the (normalised) log-Mel frames the network sees."""
        return self.normalize(self.logmel(wave))

    @property
    def receptive_frames(self) -> int:
        """Frames of context on each side that one output frame of a ``conv`` pass depends on."""
        channels = self.model.get("channels", (16, 32, 64, 128))
        return len(channels) * int(self.model.get("blocks_per_stage", 2)) * 2

    def _require_net(self) -> Any:
        if self.net is None:
            raise ValueError(
                "these embedding features have no trained network attached; train one "
                "(kwsos enroll) or load a keyword bank that has model.pt"
            )
        return self.net

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        from kwsos.training import autocast_dtype

        net = self._require_net()
        device = next(net.parameters()).device
        cast = autocast_dtype(self.precision, device)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=cast or torch.float32, enabled=cast is not None),
        ):
            return net(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float().cpu().numpy()

    def embed_segments(self, segments: np.ndarray) -> np.ndarray:
        """``(n_seg, T, n_mels)`` log-Mel segments -> ``(n_seg, T, dim)`` embeddings."""
        out = []
        for i in range(0, len(segments), self.batch_segments):
            out.append(self._run(segments[i : i + self.batch_segments]))
        if not out:
            return np.zeros((0, self.segment_frames, self.embedding_dim), np.float32)
        return np.concatenate(out)

    def _embed_sequence(self, frames: np.ndarray) -> np.ndarray:
        """One convolutional pass: ``(n, n_mels)`` -> ``(n, dim)``."""
        return self._run(frames[None])[0]

    # ------------------------------------------------------------------ streaming
    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Embeddings ``(n_i, dim)`` of a signal given as consecutive blocks (bounded memory).

        The concatenation equals the whole-signal result up to float rounding (the network is
        applied to the same inputs, in differently sized batches).
        """
        if self.hfcc_weight > 0:
            yield from self._stream_fused(blocks)
            return
        mel = self._stream_normalized(self.logmel.stream(blocks))
        if self.mode == "conv":
            yield from self._stream_conv(mel)
        else:
            yield from self._stream_segments(mel, 1 if self.mode == "exact" else self.hop_frames)

    def hfcc_frame_index(self, frames: np.ndarray) -> np.ndarray:
        """Index of the HFCC frame whose centre is nearest to each embedding frame's centre."""
        hf = self.hfcc
        centre = np.asarray(frames) * self.hop_samples + self.win_samples / 2
        return np.rint((centre - hf.win_samples / 2) / hf.hop_samples).astype(np.int64)

    def _stream_fused(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Embeddings and nearest HFCC frames, each L2-normalised and weighted (``hfcc_weight``).

        One pass over the blocks feeds both extractors (``itertools.tee``); HFCC frames are kept
        only from the oldest one still needed."""
        import itertools
        from dataclasses import replace

        w = float(self.hfcc_weight)
        to_emb, to_hfcc = itertools.tee(blocks)
        embeddings = replace(self, hfcc_weight=0.0).stream(to_emb)
        hfcc = self.hfcc.stream(to_hfcc)
        hbuf = np.zeros((0, self.hfcc.dim), np.float32)
        hfirst = 0  # absolute index of hbuf[0]
        j0 = 0
        for e in embeddings:
            if not len(e):
                continue
            idx = self.hfcc_frame_index(np.arange(j0, j0 + len(e)))
            while hfirst + len(hbuf) <= idx[-1]:
                h = next(hfcc, None)
                if h is None:
                    break
                hbuf = np.concatenate([hbuf, h]) if len(hbuf) else np.asarray(h, np.float32)
            if not len(hbuf):
                raise ValueError("no HFCC frames for the fused features (recording too short)")
            h = hbuf[np.clip(idx, hfirst, hfirst + len(hbuf) - 1) - hfirst]
            yield np.concatenate(
                [np.sqrt(1.0 - w) * _unit_rows(e), np.sqrt(w) * _unit_rows(h)], axis=1
            ).astype(np.float32)
            drop = max(0, int(idx[-1]) - hfirst)
            hbuf, hfirst = hbuf[drop:], hfirst + drop
            j0 += len(e)

    def _stream_normalized(self, mel: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """The log-Mel stream normalised like :meth:`normalize` on the whole recording: frame
        ``t`` is emitted once frame ``t + input_norm_frames`` (or the end) has arrived."""
        if self.input_norm == "none":
            yield from mel
            return
        ctx = int(self.input_norm_frames)
        variance = self.input_norm == "cmvn"
        buf = np.zeros((0, self.n_mels), np.float32)
        first = 0  # absolute index of buf[0]; always <= max(0, emitted - ctx)
        emitted = 0

        def emit(lo: int, hi: int) -> np.ndarray:
            a = max(first, lo - ctx)  # == max(0, lo - ctx): the window's clipping is the same
            b = min(first + len(buf), hi + ctx)
            seg = sliding_cmvn(buf[a - first : b - first], ctx, lo - a, hi - a, variance=variance)
            return seg.astype(np.float32)

        for block in mel:
            if not len(block):
                continue
            buf = np.concatenate([buf, block])
            hi = first + len(buf) - ctx
            if hi > emitted:
                yield emit(emitted, hi)
                emitted = hi
                drop = max(0, emitted - ctx - first)
                buf, first = buf[drop:], first + drop
        n = first + len(buf)
        if n > emitted:
            yield emit(emitted, n)

    def _stream_segments(self, mel: Iterator[np.ndarray], hop: int) -> Iterator[np.ndarray]:
        seg, half = self.segment_frames, self.segment_frames // 2
        buf = np.zeros((0, self.n_mels), np.float32)
        first = 0  # absolute frame index of buf[0]
        n_avail = 0  # frames seen so far
        next_c = 0  # centre of the next segment to compute
        emitted = 0  # output frames emitted
        acc = np.zeros((0, self.embedding_dim), np.float64)  # sums for frames emitted..
        cnt = np.zeros(0, np.int64)

        def run(centres: np.ndarray, hi: int) -> Iterator[np.ndarray]:
            nonlocal acc, cnt, emitted, buf, first
            if len(centres):
                starts = centres - half
                emb = self.embed_segments(
                    gather_segments(
                        buf, starts, offset=first, segment_frames=seg, pad_value=self.pad_value
                    )
                )
                if (
                    emb.ndim == 2
                ):  # one vector per segment: it stands for the frames around its centre
                    emb = np.repeat(emb[:, None], hop, axis=1)
                    starts = centres - hop // 2
                top = int(starts.max()) + emb.shape[1]
                if top > emitted + len(acc):
                    grow = top - emitted - len(acc)
                    acc = np.concatenate([acc, np.zeros((grow, self.embedding_dim))])
                    cnt = np.concatenate([cnt, np.zeros(grow, np.int64)])
                a, c = overlap_add(emb, starts, emitted, emitted + len(acc))
                acc += a
                cnt += c
            if hi > emitted:
                k = hi - emitted
                yield (acc[:k] / cnt[:k, None]).astype(np.float32)
                acc, cnt, emitted = acc[k:], cnt[k:], hi
            drop = max(0, emitted - half - first)
            buf, first = buf[drop:], first + drop

        for block in mel:
            if not len(block):
                continue
            buf = np.concatenate([buf, block])
            n_avail += len(block)
            # centres whose segment lies inside the frames seen so far exist in the final list
            last = n_avail - (seg - half)
            if last >= next_c:
                centres = np.arange(next_c, last + 1, hop)
                next_c = int(centres[-1]) + hop
                yield from run(centres, max(emitted, next_c - half))
        if n_avail == 0:
            return
        all_c = inference_starts(n_avail, hop_frames=hop, segment_frames=seg) + half
        yield from run(all_c[all_c >= next_c], n_avail)

    def _stream_conv(self, mel: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        ctx = self.receptive_frames
        pad = self.segment_frames // 2  # same zero padding as the segment pipelines
        chunk = 4 * self.batch_segments
        silence = np.full((pad, self.n_mels), self.pad_value, np.float32)
        buf = silence.copy()  # holds frames first..; the virtual padding frames count as real
        first = -pad
        emitted = 0
        for block in mel:
            buf = np.concatenate([buf, block])
            # frames whose right context (ctx frames) is fully available
            while first + len(buf) - ctx - emitted >= chunk:
                hi = emitted + chunk
                yield self._conv_range(buf, first, emitted, hi, ctx)
                emitted = hi
                drop = max(0, emitted - ctx - first)
                buf, first = buf[drop:], first + drop
        n = first + len(buf)
        if n <= 0:
            return
        buf = np.concatenate([buf, silence])
        if n > emitted:
            yield self._conv_range(buf, first, emitted, n, ctx)

    def _conv_range(self, buf: np.ndarray, first: int, lo: int, hi: int, ctx: int) -> np.ndarray:
        a = max(first, lo - ctx)
        b = min(first + len(buf), hi + ctx)
        out = self._embed_sequence(buf[a - first : b - first])
        return out[lo - a : hi - a]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


# ---------------------------------------------------------------------- training
NO_SPEECH = "<no speech>"
REVERSED_SUFFIX = "~reversed"

#: Enrollment defaults for 2 CPU cores (see benchmarks/RESULTS.md, "TACos enrollment"): a budget
#: of 2000 Adam steps of 32 segments (0.26-0.36 s per step on 2 cores with bf16), whatever the number of
#: keywords, and at most 10 minutes. The paper trains 1000 epochs on a GPU.
DEFAULT_TRAIN = TrainConfig(epochs=1000, max_steps=2000, max_minutes=10.0, patience=0)


@dataclass(frozen=True)
class EmbeddingTrainingConfig(Config):
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
        check_input_norm(self.input_norm, self.input_norm_frames)
        for name in ("n_centers", "dim", "segment_frames", "hop_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        if self.background_clips < 0:
            raise ValueError(f"background_clips must be >= 0, got {self.background_clips}")
        if not 0 <= self.noise_p <= 1:
            raise ValueError(f"noise_p must be in [0, 1], got {self.noise_p}")
        if not 0 <= self.gain_db <= 60:
            raise ValueError(f"gain_db must be in [0, 60], got {self.gain_db}")
        if not 0.0 <= self.freq_warp < 0.5:
            raise ValueError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "noise_snr_db", tuple(float(v) for v in self.noise_snr_db))


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
    background's whole log-Mel (:func:`normalize_logmel`); padding frames are
    then the local mean 0 instead of silence (:func:`input_pad_value`).
    """
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
    bg_segs = [
        training_segments(
            frames(b), segment_frames=segment_frames, hop_frames=segment_frames // 2, pad_value=pad
        )
        for b in backgrounds
        if logmel.n_frames(len(b)) >= 1
    ]
    return assemble_training_set(
        per_shot, bg_segs, kind=kind, reversed_segments=reversed_segments, rng=rng
    )


def assemble_training_set(
    per_shot: Mapping[str, Sequence[np.ndarray]],
    bg_segs: Sequence[np.ndarray],
    *,
    kind: str,
    reversed_segments: bool,
    rng: np.random.Generator,
) -> TrainingSet:
    """Classes and targets from the segments ``(n_seg, T, F)`` of every shot of every keyword
    (``per_shot``, keywords in class order) and of the background clips (``bg_segs``; empty:
    no "no speech" class), whatever the frames are (log-Mel here, Whisper encoder frames in
    :mod:`kwsos.embeddings.whisper`).

    Relative-position targets for ``tacos`` (one position for ``lkw`` / ``sliding``); with
    ``reversed_segments`` a time-reversed class per keyword; background segments pooled and
    subsampled with ``rng`` to the size of the largest keyword class.
    """
    from kwsos.losses import position_labels, uniform_positions

    keywords = list(per_shot)
    n_pos = (
        1 if kind in ("lkw", "sliding") else max(len(s) for segs in per_shot.values() for s in segs)
    )
    classes = list(keywords)
    if reversed_segments:
        classes += [kw + REVERSED_SUFFIX for kw in keywords]
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
    hook: Hook | None = None,
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


def keyword_centres(
    config: EmbeddingTrainingConfig, loss: Any, training_set: TrainingSet, keywords: Sequence[str]
) -> dict[str, list[float]]:
    """The trained class centre of every keyword, for the sliding-window detector (Diss.
    6.3.7: segment vectors are scored against the AdaCos head's centres); ``{}`` for the DTW
    kinds, whose detector compares frames with the shots instead."""
    if config.kind != "sliding":
        return {}
    centres = loss.centers.detach().cpu().numpy()
    return {k: centres[training_set.classes.index(k)].tolist() for k in keywords}
