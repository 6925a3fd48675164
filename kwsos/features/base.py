"""The feature extractor interface and its registry.

Every extractor is a small frozen dataclass with the same interface, so a task can swap one for
another (hand-crafted :mod:`kwsos.features.spectral`, learned
:mod:`kwsos.embeddings.temporal`):

* ``extractor(wave)`` -> ``(n_frames, dim)`` float32 for a whole signal;
* ``extractor.stream(blocks)`` -> iterator of ``(n_i, dim)`` arrays for a signal given as
  consecutive blocks; the concatenation equals ``extractor(whole_signal)`` exactly, and the
  memory held between blocks is bounded (a frame's samples plus a few frames of context);
* ``extractor.frame_bounds_s(start, end)`` -> onset/offset in seconds of a frame range;
* ``to_dict()`` / :func:`extractor_from_dict` to save it next to a keyword bank.

Frames are not centre-padded: frame ``k`` covers samples ``[k * hop, k * hop + win)``.

Registry (lhotse style): a subclass registers itself with :func:`register_extractor` under its
``name``; this module never imports its subclasses. Built-in extractors that live in modules
with heavy imports (the learned ``embedding`` features need torch) are listed in
``_BUILTIN_MODULES`` by module name and imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from kwsos.audio import SAMPLE_RATE
from kwsos.errors import KwsosError

__all__ = [
    "FeatureExtractor",
    "available_extractors",
    "extractor_from_dict",
    "get_extractor",
    "register_extractor",
]

_REGISTRY: dict[str, type[FeatureExtractor]] = {}
#: Where the built-in extractors are defined (imported on first use).
_BUILTIN_MODULES = {
    "hfcc": "kwsos.features.spectral",
    "mfcc": "kwsos.features.spectral",
    "logmel": "kwsos.features.spectral",
    "embedding": "kwsos.embeddings.temporal",
    "whisper": "kwsos.features.whisper",
    "whisper_tacos": "kwsos.embeddings.whisper",
}

E = TypeVar("E", bound="type[FeatureExtractor]")


def register_extractor(cls: E) -> E:
    """Class decorator: make ``cls`` available to :func:`get_extractor` under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    _REGISTRY[cls.name] = cls
    return cls


def available_extractors() -> list[str]:
    """Names :func:`get_extractor` accepts."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Build a registered feature extractor by name (``hfcc``, ``mfcc``, ``logmel``,
    ``embedding``) with ``options`` overriding its fields.

    Raises
    ------
    KwsosError
        Unknown name, or an option the extractor does not have (named in the message).
    """
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KwsosError(
            f"unknown features {name!r}; choose one of {', '.join(available_extractors())}"
        ) from None
    known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
    unknown = sorted(set(options) - known)
    if unknown:
        raise KwsosError(f"unknown option(s) for {name} features: {', '.join(unknown)}")
    from kwsos.config import check_fields

    options = check_fields(cls, options, f"{name} features")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise KwsosError(f"invalid {name} features: {exc}") from None


def extractor_from_dict(d: dict[str, Any]) -> FeatureExtractor:
    """Inverse of ``FeatureExtractor.to_dict``."""
    if not isinstance(d, dict):
        raise KwsosError(f"a features configuration must be a mapping, got {d!r}")
    d = dict(d)
    if "name" not in d or not isinstance(d["name"], str):
        raise KwsosError("a features configuration needs a 'name'")
    return get_extractor(d.pop("name"), **d)


def _frame(wave: np.ndarray, win: int, hop: int) -> np.ndarray:
    if len(wave) < win:
        return np.zeros((0, win), wave.dtype)
    n = 1 + (len(wave) - win) // hop
    return np.lib.stride_tricks.sliding_window_view(wave, win)[::hop][:n]


@dataclass(frozen=True)
class FeatureExtractor:
    """Base class: framing, power spectrum, streaming. Subclasses define :meth:`_frames`."""

    name: ClassVar[str] = ""
    sample_rate: int = SAMPLE_RATE
    win_samples: int = 640
    hop_samples: int = 160

    def __post_init__(self) -> None:
        self._check_framing()

    def _check_framing(self) -> None:
        if not 1000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be in [1000, 192000] Hz, got {self.sample_rate}")
        if not 1 <= self.win_samples <= 1 << 16:
            raise ValueError(f"win_samples must be in [1, 65536], got {self.win_samples}")
        if not 1 <= self.hop_samples <= self.win_samples:
            raise ValueError(f"hop_samples must be in [1, win_samples], got {self.hop_samples}")

    @property
    def context_frames(self) -> int:
        """Frames of context on each side that the post-processing (deltas, CMVN) needs."""
        return 0

    @property
    def dim(self) -> int:
        return self(np.zeros(self.win_samples, np.float32) + 1e-3).shape[1]

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_samples

    def n_frames(self, n_samples: int) -> int:
        return (
            1 + (n_samples - self.win_samples) // self.hop_samples
            if n_samples >= self.win_samples
            else 0
        )

    def frame_bounds_s(self, start: np.ndarray | int, end: np.ndarray | int) -> tuple[Any, Any]:
        """Onset/offset in seconds of frames ``start..end`` (inclusive): the hop-wide slots around the frame centres."""
        half = (self.win_samples - self.hop_samples) / 2
        onset = (np.asarray(start) * self.hop_samples + half) / self.sample_rate
        offset = ((np.asarray(end) + 1) * self.hop_samples + half) / self.sample_rate
        return onset, offset

    def power_spectrum(self, frames: np.ndarray, n_fft: int) -> np.ndarray:
        window = np.hamming(self.win_samples).astype(np.float32)
        spec = np.fft.rfft(frames * window, n=n_fft, axis=1)
        return (spec.real**2 + spec.imag**2).astype(np.float32)

    def _static(self, frames: np.ndarray) -> np.ndarray:
        """Frame-local features ``(n, d)`` from windows ``(n, win_samples)``."""
        raise NotImplementedError

    def _post(
        self, static: np.ndarray, first: int, total: int | None, lo: int, hi: int
    ) -> np.ndarray:
        """Output frames ``lo..hi-1`` from the static frames ``first..first+len(static)-1``."""
        return static[lo - first : hi - first]

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """``(n_samples,)`` -> ``(n_frames, dim)`` float32."""
        parts = list(self.stream([wave]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def shot_features(self, wave: np.ndarray) -> np.ndarray:
        """Features of an enrollment shot (a keyword template); the same as ``self(wave)``
        except for extractors whose short inputs need other handling (Whisper pads them)."""
        return self(wave)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Features of a signal given as consecutive sample blocks (bounded memory)."""
        win, hop, ctx = self.win_samples, self.hop_samples, self.context_frames
        buf = np.zeros(0, np.float32)
        static = np.zeros((0, 0), np.float32)
        first = 0  # absolute index of static[0]
        n_static = 0  # static frames computed so far
        emitted = 0  # output frames emitted so far
        for block in blocks:
            buf = np.concatenate([buf, np.asarray(block, np.float32)])
            frames = _frame(buf, win, hop)
            if len(frames) == 0:
                continue
            new = self._static(frames)
            buf = buf[len(frames) * hop :]
            static = new if static.size == 0 else np.concatenate([static, new])
            n_static += len(new)
            hi = n_static - ctx
            if hi > emitted:
                yield self._post(static, first, None, emitted, hi)
                emitted = hi
            keep = max(0, emitted - 2 * ctx - first)
            static, first = static[keep:], first + keep
        if n_static > emitted:
            yield self._post(static, first, n_static, emitted, n_static)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **{k: v for k, v in asdict(self).items() if not k.startswith("_")},
        }
