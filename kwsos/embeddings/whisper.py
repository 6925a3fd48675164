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
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kwsos.features.base import register_extractor
from kwsos.features.segments import training_segments
from kwsos.features.whisper import WhisperFeatures
from kwsos.hooks import Hook

__all__ = ["PRETRAINED_HEAD", "WhisperTacosFeatures", "load_pretrained_head", "train_whisper_head"]

#: The head pretrained on a generated corpus of 1800 words in running speech by 69 TTS voices
#: (``recipes/kws_pretrain``); the shots' training starts from it (``init="pretrained"``).
PRETRAINED_HEAD = Path(__file__).resolve().parent.parent / "data" / "whisper_head.pt"

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
    init
        Where the head's training on the shots starts: ``"pretrained"`` (the bundled head,
        :data:`PRETRAINED_HEAD`; +5.4 validation points on KWS-TTS) or ``"scratch"``. A bank
        whose head was trained before warm-starts from its own head.
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
    init: str = "pretrained"
    head: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    net: Any = field(default=None, compare=False, repr=False)
    weights: Any = field(default=None, compare=False, repr=False)

    #: File of the head's weights in a keyword bank (numpy arrays: a bank is searched without
    #: importing torch, which costs ~430 MB of memory with the CUDA build).
    BANK_FILE: ClassVar[str] = "whisper_head.npz"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.segment_frames <= 200:
            raise ValueError(f"segment_frames must be in [2, 200], got {self.segment_frames}")
        if not 1 <= self.hop_frames <= self.segment_frames:
            raise ValueError(f"hop_frames must be in [1, segment_frames], got {self.hop_frames}")
        if self.init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {self.init!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        for f in fields(self):
            if f.name not in ("net", "weights") and not (
                f.name == "model_dir" and not self.model_dir
            ):
                d[f.name] = getattr(self, f.name)
        return d

    def with_net(self, net: Any) -> WhisperTacosFeatures:
        """A copy with the trained head ``net`` (a :class:`~kwsos.models.whisper_head.WhisperHead`);
        inference runs on numpy copies of its weights."""
        if net is None:
            return replace(self, net=None, weights=None)
        net.eval()
        weights = {k: v.detach().cpu().float().numpy().copy() for k, v in net.state_dict().items()}
        return replace(self, net=net, weights=weights, head=net.to_dict())

    @property
    def has_net(self) -> bool:
        return self.weights is not None

    def init_state(self) -> dict[str, Any] | None:
        """The current head's weights as a torch state dict (to warm-start training), or None."""
        if self.weights is None:
            return None
        import torch

        return {k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()}

    def write_net(self, bank_dir: Path) -> None:
        """Store the head's weights in a keyword bank (``whisper_head.npz``)."""
        if self.weights is not None:
            with open(bank_dir / self.BANK_FILE, "wb") as f:
                np.savez(f, **self.weights)

    def read_net(self, bank_dir: Path) -> WhisperTacosFeatures:
        """A copy with the head stored in ``bank_dir`` (no torch), or ``self`` when none is."""
        path = bank_dir / self.BANK_FILE
        if not path.is_file():
            return self
        with np.load(path, allow_pickle=False) as z:
            weights = {k: np.asarray(z[k], np.float32) for k in z.files}
        expected = _weight_shapes(self.head or {})
        got = {k: v.shape for k, v in weights.items()}
        if got != expected:
            raise ValueError(f"{path.name}: weights {got} do not fit the head {self.head}")
        if not all(np.isfinite(v).all() for v in weights.values()):
            raise ValueError(f"{path.name}: the weights are not finite")
        return replace(self, weights=weights)

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
    def _require_weights(self) -> dict[str, np.ndarray]:
        if self.weights is None:
            raise ValueError(
                "these whisper-tacos features have no trained head attached; train one "
                "(kwsos enroll) or load a keyword bank that has one"
            )
        return self.weights

    @property
    def receptive(self) -> int:
        """Encoder frames on each side that one output frame depends on."""
        return 2 * (int(self.head.get("kernel", 5)) // 2)

    def _head(self, frames: np.ndarray) -> np.ndarray:
        """The head on a whole sequence ``(n, 384)`` -> ``(n, dim)``, in numpy (float32;
        equal to :class:`~kwsos.models.whisper_head.WhisperHead` in eval mode)."""
        w = self._require_weights()
        if not len(frames):
            return np.zeros((0, self.dim), np.float32)
        x = np.asarray(frames, np.float32)
        x = _gelu(_conv_same(x, w["net.1.weight"], w["net.1.bias"]))
        x = _gelu(_conv_same(x, w["net.3.weight"], w["net.3.bias"]))
        return _conv_same(x, w["net.5.weight"], w["net.5.bias"])

    def shot_features(self, wave: np.ndarray) -> np.ndarray:
        return self._head(self.encode_shot(wave))

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        parts = list(self.stream([wave]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Head outputs over the encoder's frame blocks, with ``receptive`` frames of context
        carried between blocks: equal to one pass over the whole sequence (zero padding at its
        two ends only)."""
        self._require_weights()
        r = self.receptive
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


def _conv_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``torch.nn.Conv1d(padding=k // 2)`` over time: ``x (n, c_in)``, ``weight (c_out, c_in, k)``;
    one matrix product of the ``k`` shifted copies of ``x`` side by side."""
    n, (c_out, c_in, k) = len(x), weight.shape
    pad = k // 2
    xp = np.zeros((n + 2 * pad, c_in), np.float32)
    xp[pad : pad + n] = x
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, c_in))[:, 0].reshape(n, k * c_in)
    w = weight.transpose(2, 1, 0).reshape(k * c_in, c_out)  # rows in the order of cols
    return cols @ w + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU of ``torch.nn.GELU()``."""
    from scipy.special import erf

    x = np.asarray(x, np.float32)
    return x * (np.float32(0.5) + np.float32(0.5) * erf(x * np.float32(0.7071067811865476)))


def _weight_shapes(head: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict of a ``WhisperHead`` with architecture ``head``."""
    i, d = int(head.get("in_dim", 384)), int(head.get("dim", 128))
    h, k = int(head.get("hidden", 256)), int(head.get("kernel", 5))
    return {
        "net.1.weight": (h, i, k),
        "net.1.bias": (h,),
        "net.3.weight": (h, h, k),
        "net.3.bias": (h,),
        "net.5.weight": (d, h, 1),
        "net.5.bias": (d,),
    }


def load_pretrained_head() -> tuple[dict[str, Any], dict[str, Any]]:
    """The bundled pretrained head: ``(state_dict, metadata)`` (architecture, pretraining
    corpus and validation, from ``whisper_head.json``)."""
    import json

    import torch

    try:
        meta = json.loads(PRETRAINED_HEAD.with_suffix(".json").read_text(encoding="utf-8"))
        state = torch.load(PRETRAINED_HEAD, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot read the bundled whisper head {PRETRAINED_HEAD}: {exc}") from None
    return state, meta


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
    from kwsos.embeddings.temporal import assemble_training_set
    from kwsos.losses import TACos
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
    bgs: list[np.ndarray] = []
    if config.no_speech:
        bgs = builtin_backgrounds(rng, n_clips=config.background_clips) + list(backgrounds)
    bg_segs = [segments(extractor.encode_shot(b), max(1, S // 2)) for b in bgs]
    ts = assemble_training_set(
        per_shot,
        [s for s in bg_segs if len(s)],
        kind=config.kind,
        reversed_segments=config.reversed_segments,
        rng=rng,
    )
    x, classes, n_pos = ts.x, ts.classes, ts.n_positions

    seed_everything(config.train.seed)
    head = WhisperHead(in_dim=x.shape[2], dim=config.dim)
    init = "previous head" if init_state is not None else "scratch"
    if init_state is None and extractor.init == "pretrained":
        state, meta = load_pretrained_head()
        arch = {k: v for k, v in meta["arch"].items() if k != "name"}
        if arch == {k: v for k, v in head.to_dict().items() if k != "name"}:
            init_state, init = state, "pretrained"
        else:
            log.warning(
                "the pretrained head is %s, not %s: training from scratch", arch, head.to_dict()
            )
    if init_state is not None:
        try:
            head.load_state_dict(init_state)
        except (RuntimeError, KeyError) as exc:
            log.warning("cannot warm-start the head (%s); training from scratch", exc)
    loss = TACos(len(classes), n_pos, dim=config.dim, n_centers=config.n_centers)

    def augment(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return spec_augment(xb, g, freq_masks=2, freq_width=48, time_masks=1, time_width=2)

    tlog = train(
        head,
        loss,
        x,
        (ts.lab_kw, ts.lab_pos),
        ts.class_ids,
        config.train,
        augment=augment,
        hook=hook,
    )
    head.cpu().eval()
    info = {
        "classes": classes,
        "n_positions": n_pos,
        "n_segments": len(x),
        "warm_start": init_state is not None,
        "init": init,
        "config": config.to_dict(),
        "log": tlog.to_dict(),
    }
    return head, tlog, info
