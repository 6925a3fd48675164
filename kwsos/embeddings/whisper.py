"""TACos embeddings on Whisper encoder frames (issue #19, route 1 with a learned head).

:class:`WhisperTacosFeatures` (registered as ``whisper_tacos``; ``--features whisper-tacos``)
runs the frozen Whisper encoder (:class:`kwsos.features.whisper.WhisperFeatures`) and a small
temporal head (:class:`kwsos.models.whisper_head.WhisperHead`) over its frames. The head is
trained on the enrollment shots with the TACos loss (Diss. Def. 6.4) exactly as the log-Mel
network is (:mod:`kwsos.embeddings.temporal`): segments of ``segment_frames`` encoder frames
with the keyword and relative-position targets, a time-reversed class per keyword (Diss.
6.3.5) and a "no speech" class of generated backgrounds; SpecAugment-style masks and mixup. The
encoder carries the knowledge of real speech, the head learns the comparison that DTW needs.

Training takes seconds: the shots are encoded once (cached per process by content), the head
has ~0.6 M parameters.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from kwsos.features.base import register_extractor
from kwsos.features.segments import training_segments
from kwsos.features.whisper import WhisperFeatures
from kwsos.hooks import Hook

__all__ = ["WhisperTacosFeatures", "train_whisper_head"]

log = logging.getLogger(__name__)

_SHOT_CACHE: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_SHOT_CACHE_LOCK = threading.Lock()
_SHOT_CACHE_SIZE = 2048


@register_extractor
@dataclass(frozen=True)
class WhisperTacosFeatures(WhisperFeatures):
    """Whisper encoder frames through a TACos-trained head (see module doc).

    Attributes
    ----------
    segment_frames
        Training segment length in encoder frames (12 = 0.24 s, the paper's 0.25 s).
    hop_frames
        Training segment hop in encoder frames (2 = 40 ms, the paper's 50 ms; 1 doubles the
        relative positions and the training time and scored lower on KWS-TTS validation).
    head
        ``WhisperHead.to_dict()``: the head's architecture.
    training
        Training settings and log, kept for provenance (and to know whether it is up to date).
    """

    name: ClassVar[str] = "whisper_tacos"
    #: The ``--features`` choice; the spotter trains extractors that are ``trainable``.
    choice: ClassVar[str] = "whisper-tacos"
    trainable: ClassVar[bool] = True
    segment_frames: int = 12
    hop_frames: int = 2
    head: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    net: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.segment_frames <= 200:
            raise ValueError(f"segment_frames must be in [2, 200], got {self.segment_frames}")
        if not 1 <= self.hop_frames <= self.segment_frames:
            raise ValueError(f"hop_frames must be in [1, segment_frames], got {self.hop_frames}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        for f in fields(self):
            if f.name != "net" and not (f.name == "model_dir" and not self.model_dir):
                d[f.name] = getattr(self, f.name)
        return d

    def with_net(self, net: Any) -> WhisperTacosFeatures:
        if net is None:
            return replace(self, net=None)
        net.eval()
        return replace(self, net=net, head=net.to_dict())

    @property
    def net_arch(self) -> dict[str, Any]:
        """The head's architecture, as a keyword bank stores it."""
        return self.head

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.head.get("dim", 128)) if self.head else 128

    @property
    def encoder(self) -> WhisperFeatures:
        """The plain encoder-frame extractor with the same settings."""
        own = {f.name for f in fields(WhisperTacosFeatures)} - {
            f.name for f in fields(WhisperFeatures)
        }
        return WhisperFeatures(
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in own}
        )

    # ------------------------------------------------------------------ encoder frames
    def encode_shot(self, wave: np.ndarray) -> np.ndarray:
        """Encoder frames of a shot (padded to ``shot_pad_s``), cached by content."""
        wave = np.ascontiguousarray(wave, np.float32)
        enc = self.encoder
        key = (
            self.model_dir,
            self.model,
            self.compute_type,
            self.block_s,
            self.context_s,
            self.shot_pad_s,
            hashlib.sha1(wave.tobytes()).hexdigest(),
            len(wave),
        )
        with _SHOT_CACHE_LOCK:
            hit = _SHOT_CACHE.get(key)
            if hit is not None:
                _SHOT_CACHE.move_to_end(key)
                return hit
        frames = enc.shot_features(wave)
        with _SHOT_CACHE_LOCK:
            _SHOT_CACHE[key] = frames
            while len(_SHOT_CACHE) > _SHOT_CACHE_SIZE:
                _SHOT_CACHE.popitem(last=False)
        return frames

    # ------------------------------------------------------------------ the head
    def _require_net(self) -> Any:
        if self.net is None:
            raise ValueError(
                "these whisper-tacos features have no trained head attached; train one "
                "(kwsos enroll) or load a keyword bank that has model.pt"
            )
        return self.net

    def _head(self, frames: np.ndarray) -> np.ndarray:
        import torch

        net = self._require_net()
        if not len(frames):
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames, np.float32))[None]
            return net(x)[0].float().numpy()

    def shot_features(self, wave: np.ndarray) -> np.ndarray:
        return self._head(self.encode_shot(wave))

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        parts = list(self.stream([wave]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Head outputs over the encoder's frame blocks, with ``receptive`` frames of context
        carried between blocks: equal to one pass over the whole sequence (zero padding at its
        two ends only)."""
        r = int(self._require_net().receptive)
        buf = np.zeros((0, 0), np.float32)
        first = 0  # absolute index of buf[0]
        emitted = 0
        for enc in self.encoder.stream(blocks):
            buf = enc if buf.size == 0 else np.concatenate([buf, enc])
            total = first + len(buf)
            hi = total - r  # frames whose right context has arrived
            if hi > emitted:
                out = self._head(buf)  # buf starts at most r frames before `emitted`
                yield out[emitted - first : hi - first]
                emitted = hi
                keep = max(0, emitted - r - first)
                buf, first = buf[keep:], first + keep
        if buf.size and first + len(buf) > emitted:
            yield self._head(buf)[emitted - first :]


def train_whisper_head(
    extractor: WhisperTacosFeatures,
    shots: Mapping[str, Sequence[np.ndarray]],
    config: Any,
    *,
    backgrounds: Sequence[np.ndarray] = (),
    init_state: Mapping[str, Any] | None = None,
    hook: Hook | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train a :class:`~kwsos.models.whisper_head.WhisperHead` on the shots' encoder frames.

    ``config`` is an :class:`~kwsos.embeddings.temporal.EmbeddingTrainingConfig` (its ``kind``
    must be ``tacos`` or ``lkw``; ``dim``, ``n_centers``, ``reversed_segments``, ``no_speech``,
    ``background_clips`` and ``train`` are used; segment length and hop come from the
    extractor). Returns ``(head, train_log, info)``.
    """
    import torch

    from kwsos.augment import spec_augment
    from kwsos.embeddings.temporal import NO_SPEECH, REVERSED_SUFFIX
    from kwsos.losses import TACos, position_labels, uniform_positions
    from kwsos.models.whisper_head import WhisperHead
    from kwsos.noise import builtin_backgrounds
    from kwsos.training import seed_everything, train

    if config.kind not in ("tacos", "lkw"):
        raise ValueError(f"whisper-tacos trains the tacos or lkw objective, not {config.kind!r}")
    keywords = list(shots)
    if not keywords:
        raise ValueError("no keywords to train on")
    rng = np.random.default_rng(config.train.seed)
    S, hop = extractor.segment_frames, extractor.hop_frames

    def segments(frames: np.ndarray, step: int) -> np.ndarray:
        return training_segments(frames, segment_frames=S, hop_frames=step, pad_value=0.0)

    per_shot = {kw: [segments(extractor.encode_shot(w), hop) for w in shots[kw]] for kw in keywords}
    n_pos = 1 if config.kind == "lkw" else max(len(s) for v in per_shot.values() for s in v)
    classes = list(keywords)
    if config.reversed_segments:
        classes += [kw + REVERSED_SUFFIX for kw in keywords]
    bgs: list[np.ndarray] = []
    if config.no_speech:
        bgs = builtin_backgrounds(rng, n_clips=config.background_clips) + list(backgrounds)
    bg_segs = [segments(extractor.encode_shot(b), max(1, S // 2)) for b in bgs]
    bg_segs = [s for s in bg_segs if len(s)]
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
            if config.reversed_segments:
                add(segs[:, ::-1], kw + REVERSED_SUFFIX, uniform_positions(len(segs), n_pos))
    if bg_segs:
        pool = np.concatenate(bg_segs)
        largest = max(sum(len(s) for s in per_shot[kw]) for kw in keywords)
        if len(pool) > largest:
            pool = pool[np.sort(rng.choice(len(pool), largest, replace=False))]
        add(pool, NO_SPEECH, uniform_positions(len(pool), n_pos))
    x = np.ascontiguousarray(np.concatenate(xs), np.float32)
    class_ids = np.concatenate(kws)
    lab_kw = np.zeros((len(class_ids), len(classes)), np.float32)
    lab_kw[np.arange(len(class_ids)), class_ids] = 1.0
    lab_pos = np.concatenate(poss).astype(np.float32)

    seed_everything(config.train.seed)
    head = WhisperHead(in_dim=x.shape[2], dim=config.dim)
    if init_state is not None:
        try:
            head.load_state_dict(init_state)
        except (RuntimeError, KeyError) as exc:
            log.warning("cannot warm-start the head (%s); training from scratch", exc)
    loss = TACos(len(classes), n_pos, dim=config.dim, n_centers=config.n_centers)

    def augment(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return spec_augment(xb, g, freq_masks=2, freq_width=48, time_masks=1, time_width=2)

    tlog = train(
        head, loss, x, (lab_kw, lab_pos), class_ids, config.train, augment=augment, hook=hook
    )
    head.cpu().eval()
    info = {
        "classes": classes,
        "n_positions": n_pos,
        "n_segments": len(x),
        "warm_start": init_state is not None,
        "config": config.to_dict(),
        "log": tlog.to_dict(),
    }
    return head, tlog, info
