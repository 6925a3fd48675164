"""Hand-crafted spectral features: HFCC and MFCC (DTW baselines, Diss. 6.3.7) and log-Mel (the
embedding models' input, Diss. 6.3.4), with the filterbanks, deltas and sliding CMVN they use.

All are :class:`~kwsos.features.base.FeatureExtractor` subclasses registered under their
``name`` (``hfcc``, ``mfcc``, ``logmel``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from kwsos.audio import SAMPLE_RATE
from kwsos.features.base import FeatureExtractor, register_extractor

__all__ = [
    "HFCC",
    "MFCC",
    "LogMel",
    "erb_hz",
    "hz_to_mel",
    "mel_to_hz",
    "hfcc_filterbank",
    "mel_filterbank",
    "deltas",
    "sliding_cmvn",
]


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK Mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def erb_hz(f_hz: np.ndarray | float) -> np.ndarray:
    """Equivalent rectangular bandwidth of Moore & Glasberg (1983), in Hz, as used by HFCC."""
    f = np.asarray(f_hz, dtype=np.float64)
    return 6.23e-6 * f**2 + 93.39e-3 * f + 28.52


def _triangles(
    freqs: np.ndarray, low: np.ndarray, centre: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Unit-height triangles ``(n_filters, n_bins)``; a filter narrower than a bin keeps its nearest bin."""
    rise = (freqs[None, :] - low[:, None]) / (centre - low)[:, None]
    fall = (high[:, None] - freqs[None, :]) / (high - centre)[:, None]
    fb = np.clip(np.minimum(rise, fall), 0.0, None)
    for i in np.flatnonzero(fb.sum(axis=1) == 0):
        fb[i, np.argmin(np.abs(freqs - centre[i]))] = 1.0
    return fb


def hfcc_filterbank(
    n_fft: int,
    sample_rate: int = SAMPLE_RATE,
    *,
    n_filters: int = 30,
    f_min_hz: float = 100.0,
    f_max_hz: float = 7000.0,
    e_factor: float = 1.0,
) -> np.ndarray:
    """Human factor cepstral coefficient filterbank (Skowronski & Harris, 2004), ``(n_filters, n_fft//2+1)``.

    Centre frequencies are uniformly spaced on the Mel scale between ``f_min_hz`` and
    ``f_max_hz``; unlike MFCC, each triangle's bandwidth is decoupled from the spacing and set to
    ``e_factor`` times the ERB of its centre frequency, with the edges placed so that the centre
    is the Mel-scale midpoint of the edges: ``(700 + fc)^2 = (700 + f_lo)(700 + f_hi)``. This gives
    filters with less overlap than MFCC's (Diss. 6.3.7). The original paper solves for the first
    and last centre so that the outer edges hit the band limits; here the band limits are the
    outermost centres, which only moves the two outermost filters.
    """
    centres = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_filters))
    bw = e_factor * erb_hz(centres)
    low = -700.0 + (-bw + np.sqrt(bw**2 + 4.0 * (700.0 + centres) ** 2)) / 2.0
    high = low + bw
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return _triangles(freqs, low, centres, high)


def mel_filterbank(
    n_fft: int,
    sample_rate: int = SAMPLE_RATE,
    *,
    n_filters: int = 40,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
) -> np.ndarray:
    """HTK-style triangular Mel filterbank ``(n_filters, n_fft//2+1)`` (adjacent triangles overlap by half)."""
    f_max_hz = sample_rate / 2 if f_max_hz is None else f_max_hz
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_filters + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return _triangles(freqs, edges[:-2], edges[1:-1], edges[2:])


def deltas(x: np.ndarray, *, width: int = 2) -> np.ndarray:
    """HTK regression deltas ``sum_n n (x[t+n] - x[t-n]) / (2 sum n^2)`` with edge replication."""
    n = len(x)
    idx = np.arange(n)
    norm = 2.0 * sum(k * k for k in range(1, width + 1))
    out = np.zeros_like(x)
    for k in range(1, width + 1):
        out += k * (x[np.minimum(idx + k, n - 1)] - x[np.maximum(idx - k, 0)])
    return out / norm


def sliding_cmvn(
    x: np.ndarray, half_width: int, lo: int = 0, hi: int | None = None, *, variance: bool = True
) -> np.ndarray:
    """Rows ``lo..hi-1`` of ``x`` ``(n, d)`` minus the mean, over the std, of the window
    ``[t - half_width, t + half_width]`` clipped to ``[0, n)`` (``variance=False``: mean only)."""
    n = len(x)
    hi = n if hi is None else hi
    x64 = x.astype(np.float64)
    c1 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x64, axis=0)])
    c2 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x64**2, axis=0)])
    t = np.arange(lo, hi)
    a = np.maximum(t - half_width, 0)
    b = np.minimum(t + half_width + 1, n)
    k = (b - a)[:, None]
    mean = (c1[b] - c1[a]) / k
    if not variance:
        return x64[lo:hi] - mean
    var = np.maximum((c2[b] - c2[a]) / k - mean**2, 0.0)
    return (x64[lo:hi] - mean) / np.sqrt(var + 1e-8)


@dataclass(frozen=True)
class _Cepstral(FeatureExtractor):
    """Cepstra of a triangular filterbank + deltas; HFCC and MFCC differ only in the filterbank."""

    win_samples: int = 640  # 40 ms (Diss. 6.3.7)
    hop_samples: int = 160  # 10 ms
    n_fft: int = 1024
    n_filters: int = 30
    n_ceps: int = 13
    f_min_hz: float = 100.0
    f_max_hz: float = 7000.0
    preemphasis: float = 0.97
    #: Append delta and delta-delta coefficients (HTK regression, width 2).
    use_deltas: bool = True
    #: Drop c0 (the log energy). With ``cmvn_frames`` c0 becomes a normalised energy contour,
    #: which helps DTW; without normalisation it would dominate the cosine distance.
    drop_c0: bool = False
    #: Mean and variance normalisation over a sliding window of +-cmvn_frames frames (0: off).
    #: Removes the channel and speaker offsets that otherwise dominate the cosine distance
    #: between cepstra; a shot shorter than the window is normalised as a whole.
    cmvn_frames: int = 100
    _fb: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_framing()
        nyquist = self.sample_rate / 2
        if not self.win_samples <= self.n_fft <= 1 << 16:
            raise ValueError(f"n_fft must be in [win_samples, 65536], got {self.n_fft}")
        if not 1 <= self.n_filters <= 256:
            raise ValueError(f"n_filters must be in [1, 256], got {self.n_filters}")
        if not 1 <= self.n_ceps <= self.n_filters:
            raise ValueError(f"n_ceps must be in [1, n_filters], got {self.n_ceps}")
        if not 0 <= self.f_min_hz < self.f_max_hz <= nyquist:
            raise ValueError(
                f"need 0 <= f_min_hz < f_max_hz <= {nyquist:g}, got {self.f_min_hz}, {self.f_max_hz}"
            )
        if not 0 <= self.preemphasis < 1:
            raise ValueError(f"preemphasis must be in [0, 1), got {self.preemphasis}")
        if not 0 <= self.cmvn_frames <= 100_000:
            raise ValueError(f"cmvn_frames must be in [0, 100000], got {self.cmvn_frames}")
        if self.drop_c0 and self.n_ceps < 2:
            raise ValueError("drop_c0 needs n_ceps >= 2")
        object.__setattr__(self, "_fb", self._filterbank().astype(np.float32))

    def _filterbank(self) -> np.ndarray:
        raise NotImplementedError

    def _static(self, frames: np.ndarray) -> np.ndarray:
        x = frames.astype(np.float32)
        if self.preemphasis:
            # per frame, HTK style (x[-1] := x[0]) so that frames stay independent
            x = np.concatenate(
                [x[:, :1] * (1 - self.preemphasis), x[:, 1:] - self.preemphasis * x[:, :-1]], axis=1
            )
        from scipy.fft import dct  # here, not at import: 0.1 s that `kwsos keywords` never needs

        energies = self.power_spectrum(x, self.n_fft) @ self._fb.T
        logs = np.log(np.maximum(energies, 1e-10))
        ceps = dct(logs, type=2, norm="ortho", axis=1)[:, : self.n_ceps]
        return ceps[:, 1:] if self.drop_c0 else ceps

    @property
    def context_frames(self) -> int:  # type: ignore[override]
        return (4 if self.use_deltas else 0) + self.cmvn_frames

    @property
    def dim(self) -> int:  # type: ignore[override]
        """``n_ceps`` (less c0 if dropped), three times with deltas; known without running the
        extractor (loading a bank needs it, and `kwsos keywords` should not import scipy.fft)."""
        return (self.n_ceps - int(self.drop_c0)) * (3 if self.use_deltas else 1)

    def _post(
        self, static: np.ndarray, first: int, total: int | None, lo: int, hi: int
    ) -> np.ndarray:
        # Output frames lo..hi-1 need static frames lo-ctx..hi+ctx-1 (clamped to what exists):
        # +-4 for delta-deltas, +-cmvn_frames for the normalisation window. Inside a stream the
        # segment's replicated edges are never used; at the true ends of the signal the edge
        # handling is the same as for a whole signal, so streaming equals one pass.
        ctx = self.context_frames
        a = max(first, lo - ctx)
        b = min(first + len(static), hi + ctx)
        seg = static[a - first : b - first]
        if self.use_deltas:
            d = deltas(seg)
            seg = np.concatenate([seg, d, deltas(d)], axis=1)
        if self.cmvn_frames:
            seg = sliding_cmvn(seg, self.cmvn_frames, lo - a, hi - a)
            return seg.astype(np.float32)
        return seg[lo - a : hi - a].astype(np.float32)


@register_extractor
@dataclass(frozen=True)
class HFCC(_Cepstral):
    """Human factor cepstral coefficients (Skowronski & Harris 2004), 40 ms / 10 ms (Diss. 6.3.7)."""

    name: ClassVar[str] = "hfcc"
    e_factor: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.e_factor <= 10:
            raise ValueError(f"e_factor must be in (0, 10], got {self.e_factor}")
        super().__post_init__()

    def _filterbank(self) -> np.ndarray:
        return hfcc_filterbank(
            self.n_fft,
            self.sample_rate,
            n_filters=self.n_filters,
            f_min_hz=self.f_min_hz,
            f_max_hz=self.f_max_hz,
            e_factor=self.e_factor,
        )


@register_extractor
@dataclass(frozen=True)
class MFCC(_Cepstral):
    """Mel-frequency cepstral coefficients with the same framing and post-processing as :class:`HFCC`."""

    name: ClassVar[str] = "mfcc"
    n_filters: int = 40
    f_min_hz: float = 0.0
    f_max_hz: float = 8000.0

    def _filterbank(self) -> np.ndarray:
        return mel_filterbank(
            self.n_fft,
            self.sample_rate,
            n_filters=self.n_filters,
            f_min_hz=self.f_min_hz,
            f_max_hz=self.f_max_hz,
        )


@register_extractor
@dataclass(frozen=True)
class LogMel(FeatureExtractor):
    """Log-Mel magnitude spectrogram, 64 bins, Hann 1024 / hop 256 (Diss. 6.3.4): the embedding models' input."""

    name: ClassVar[str] = "logmel"
    win_samples: int = 1024
    hop_samples: int = 256
    n_mels: int = 64
    _fb: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_framing()
        if not 1 <= self.n_mels <= 512:
            raise ValueError(f"n_mels must be in [1, 512], got {self.n_mels}")
        fb = mel_filterbank(self.win_samples, self.sample_rate, n_filters=self.n_mels)
        object.__setattr__(self, "_fb", fb.astype(np.float32))

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.n_mels

    def centre_hz(self) -> np.ndarray:
        """Centre frequency of every Mel triangle ``(n_mels,)``, increasing (for augmentations
        that warp the frequency axis: :func:`kwsos.augment.random_speed`)."""
        mel = np.linspace(hz_to_mel(0.0), hz_to_mel(self.sample_rate / 2), self.n_mels + 2)
        return mel_to_hz(mel)[1:-1]

    def power_spectrum(self, frames: np.ndarray, n_fft: int) -> np.ndarray:
        window = np.hanning(self.win_samples + 1)[:-1].astype(np.float32)  # periodic Hann
        return np.abs(np.fft.rfft(frames * window, n=n_fft, axis=1)).astype(np.float32)

    def _static(self, frames: np.ndarray) -> np.ndarray:
        mag = self.power_spectrum(frames, self.win_samples)
        return np.log(mag @ self._fb.T + 1e-8).astype(np.float32)
