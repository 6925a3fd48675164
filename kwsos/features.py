"""Frame-level features: HFCC and MFCC (DTW baselines, Diss. 6.3.7) and log-Mel (model input, Diss. 6.3.4).

Every extractor is a small frozen dataclass with the same interface, so the keyword spotter can
swap one for another (the learned TACos embeddings plug in the same way):

* ``extractor(wave)`` -> ``(n_frames, dim)`` float32 for a whole signal;
* ``extractor.stream(blocks)`` -> iterator of ``(n_i, dim)`` arrays for a signal given as
  consecutive blocks; the concatenation equals ``extractor(whole_signal)`` exactly, and the
  memory held between blocks is bounded (a frame's samples plus a few frames of context);
* ``extractor.frame_bounds_s(start, end)`` -> onset/offset in seconds of a frame range;
* ``to_dict()`` / :func:`extractor_from_dict` to save it next to a keyword bank.

Frames are not centre-padded: frame ``k`` covers samples ``[k * hop, k * hop + win)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.fft import dct

from kwsos.audio import SAMPLE_RATE

__all__ = [
    "FeatureExtractor",
    "HFCC",
    "MFCC",
    "LogMel",
    "erb_hz",
    "hfcc_filterbank",
    "mel_filterbank",
    "deltas",
    "sliding_cmvn",
    "extractor_from_dict",
    "get_extractor",
    "FEATURES",
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
        return {"name": self.name, **asdict(self)}


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
        energies = self.power_spectrum(x, self.n_fft) @ self._fb.T
        logs = np.log(np.maximum(energies, 1e-10))
        ceps = dct(logs, type=2, norm="ortho", axis=1)[:, : self.n_ceps]
        return ceps[:, 1:] if self.drop_c0 else ceps

    @property
    def context_frames(self) -> int:  # type: ignore[override]
        return (4 if self.use_deltas else 0) + self.cmvn_frames

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

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("_fb", None)
        return d


@dataclass(frozen=True)
class HFCC(_Cepstral):
    """Human factor cepstral coefficients (Skowronski & Harris 2004), 40 ms / 10 ms (Diss. 6.3.7)."""

    name: ClassVar[str] = "hfcc"
    e_factor: float = 1.0

    def _filterbank(self) -> np.ndarray:
        return hfcc_filterbank(
            self.n_fft,
            self.sample_rate,
            n_filters=self.n_filters,
            f_min_hz=self.f_min_hz,
            f_max_hz=self.f_max_hz,
            e_factor=self.e_factor,
        )


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


@dataclass(frozen=True)
class LogMel(FeatureExtractor):
    """Log-Mel magnitude spectrogram, 64 bins, Hann 1024 / hop 256 (Diss. 6.3.4): the embedding models' input."""

    name: ClassVar[str] = "logmel"
    win_samples: int = 1024
    hop_samples: int = 256
    n_mels: int = 64
    _fb: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fb = mel_filterbank(self.win_samples, self.sample_rate, n_filters=self.n_mels)
        object.__setattr__(self, "_fb", fb.astype(np.float32))

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

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("_fb", None)
        return d


FEATURES: dict[str, type[FeatureExtractor]] = {"hfcc": HFCC, "mfcc": MFCC, "logmel": LogMel}


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Build a feature extractor by name (``hfcc``, ``mfcc``, ``logmel``, ``embedding``).

    ``embedding`` (learned features, :mod:`kwsos.embeddings`) is imported on demand so that
    hand-crafted features never pull in torch.
    """
    if name == "embedding":
        from kwsos.embeddings import EmbeddingFeatures

        return EmbeddingFeatures(**options)
    try:
        cls = FEATURES[name]
    except KeyError:
        raise ValueError(
            f"unknown features {name!r}; choose one of {', '.join(FEATURES)}"
        ) from None
    return cls(**options)


def extractor_from_dict(d: dict[str, Any]) -> FeatureExtractor:
    """Inverse of ``FeatureExtractor.to_dict``."""
    d = dict(d)
    return get_extractor(d.pop("name"), **d)


# ---------------------------------------------------------------------- segmenting (Diss. 6.3.4)
#: Log-Mel value of digital silence (``log(0 + 1e-8)``): the frames used for zero padding.
SILENCE_LOGMEL = float(np.log(1e-8))


def training_segments(
    frames: np.ndarray,
    *,
    segment_frames: int = 16,
    hop_frames: int = 3,
    pad_value: float = SILENCE_LOGMEL,
) -> np.ndarray:
    """Cut a shot's frames ``(n, n_mels)`` into training segments ``(n_seg, segment_frames, n_mels)``.

    Diss. 6.3.4: segments of ``L_seg = 0.25 s`` (16 frames of 256 samples) with a hop of
    ``L_seg / 5``; here the hop is counted in frames (3 frames = 48 ms for the paper's 50 ms).
    Segments start at frame 0 and are added until the last frame is covered; the tail of the last
    segment, and a shot shorter than one segment, are padded with silence frames.
    """
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2:
        raise ValueError(f"expected frames (n_frames, n_mels), got shape {frames.shape}")
    n = len(frames)
    n_seg = 1 + max(0, -(-(n - segment_frames) // hop_frames))
    total = (n_seg - 1) * hop_frames + segment_frames
    padded = np.full((max(total, n), frames.shape[1]), pad_value, np.float32)
    padded[:n] = frames
    idx = np.arange(n_seg)[:, None] * hop_frames + np.arange(segment_frames)[None, :]
    return padded[idx]


def inference_starts(n_frames: int, *, hop_frames: int = 1, segment_frames: int = 16) -> np.ndarray:
    """First frame (may be negative) of every inference segment of a recording of ``n_frames``.

    Diss. 6.3.4: the recording is padded by half a segment on both sides and segmented with a
    hop of one frame (256 samples), so segment ``j`` covers frames ``[j - 8, j + 8)`` and is
    centred on frame ``j``. With a larger ``hop_frames`` (fast path) segments start every
    ``hop_frames`` frames, plus one more if the last frame would otherwise be left uncovered.
    """
    if not 1 <= hop_frames <= segment_frames:
        raise ValueError(f"hop_frames must be in [1, {segment_frames}], got {hop_frames}")
    half = segment_frames // 2
    centres = list(range(0, max(n_frames, 1), hop_frames))
    if centres[-1] + segment_frames - half < n_frames:
        centres.append(centres[-1] + hop_frames)
    return np.asarray(centres, np.int64) - half


def gather_segments(
    frames: np.ndarray,
    starts: np.ndarray,
    *,
    offset: int = 0,
    segment_frames: int = 16,
    pad_value: float = SILENCE_LOGMEL,
) -> np.ndarray:
    """Segments ``(len(starts), segment_frames, n_mels)`` of ``frames``, where ``frames[0]`` is frame
    ``offset`` of the recording; frames outside ``frames`` are silence (zero padding)."""
    starts = np.asarray(starts, np.int64) - offset
    lo = min(0, int(starts.min()) if len(starts) else 0)
    hi = max(len(frames), int(starts.max()) + segment_frames if len(starts) else 0)
    padded = np.full((hi - lo, frames.shape[1]), pad_value, np.float32)
    padded[-lo : -lo + len(frames)] = frames
    idx = (starts - lo)[:, None] + np.arange(segment_frames)[None, :]
    return padded[idx]


def overlap_add(
    seg_emb: np.ndarray, starts: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count, over frames ``lo..hi-1``, of the segment embeddings covering each frame.

    ``seg_emb`` is ``(n_seg, T, D)`` with segment ``i`` covering frames ``starts[i] .. starts[i]+T-1``.
    Dividing the sum by the count gives the overlap average of Diss. Fig. 28.
    """
    n_seg, t_len, dim = seg_emb.shape
    acc = np.zeros((hi - lo, dim), np.float64)
    cnt = np.zeros(hi - lo, np.int64)
    frame = np.asarray(starts, np.int64)[:, None] + np.arange(t_len)[None, :]
    keep = (frame >= lo) & (frame < hi)
    np.add.at(acc, frame[keep] - lo, seg_emb[keep])
    np.add.at(cnt, frame[keep] - lo, 1)
    return acc, cnt


def overlap_average(seg_emb: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """Combine segment embeddings ``(n_seg, T, D)`` into one sequence ``(n_frames, D)`` by
    averaging, per frame, the embeddings of all segments covering it (Diss. 6.3.4, Fig. 28)."""
    acc, cnt = overlap_add(seg_emb, starts, 0, n_frames)
    if (cnt == 0).any():
        raise ValueError("some frames are not covered by any segment")
    return (acc / cnt[:, None]).astype(np.float32)
