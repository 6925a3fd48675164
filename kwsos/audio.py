"""Audio input: load any file soundfile reads, as 16 kHz mono, high-passed and peak-normalised.

The frontend follows Diss. 6.3.4 / the TACos paper (Sec. 2.1): convert to a single channel,
normalise the amplitude by the maximum absolute value, resample to 16 kHz and high-pass filter
at 50 Hz.

Three entry points share one frontend:

* :func:`load_audio` returns a whole (short) file, e.g. an enrollment shot;
* :func:`stream_audio` yields a long recording block by block, so memory does not grow with the
  recording's duration. :func:`load_audio` is ``np.concatenate(list(stream_audio(...)))``;
* :func:`prepare_array` gives a waveform the user passes as an array (16 kHz mono) the same
  checks, peak normalisation and high-pass, so that a signal gives the same samples whether it
  comes as a file or as an array (:func:`load_clip` takes either).

Streaming details (why the blocks equal the whole-file result):

* the peak used for normalisation is found in a first, cheap pass over the raw samples (a
  file that fits in one block is decoded once and kept for the second pass);
* resampling (torchaudio's windowed-sinc ``resample``, computed in numpy by
  :func:`sinc_resample`: no torch import) is applied to blocks whose start is a
  multiple of ``orig_rate / gcd`` input samples, with a margin on both sides that is cut from
  the output, so every output sample sees the same input neighbourhood as in one pass;
* the 50 Hz high-pass is torchaudio's ``highpass_biquad`` filter (same RBJ biquad
  coefficients) run through the recursion of :func:`scipy.signal.lfilter`
  (:mod:`kwsos._biquad`, bit-identical, without the 0.5 s import of scipy.signal) so that the
  filter state is carried from block to block (torchaudio's filter restarts from zero state on
  every call).

Nothing heavy is imported with this module (scipy.signal and torch are not used; the numba
filter kernel is imported where it runs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from kwsos.errors import KwsosError
from kwsos.io import atomic_output

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "audio_info",
    "highpass_coefficients",
    "load_audio",
    "load_clip",
    "prepare_array",
    "sinc_resample",
    "stream_audio",
    "trim_silence",
    "write_audio",
]

SAMPLE_RATE = 16000
#: File suffixes treated as audio when a folder is scanned (anything soundfile reads).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")
HIGHPASS_HZ = 50.0
#: Peak below this (after mono conversion) counts as an all-silent recording.
SILENCE_PEAK = 1e-5
_RESAMPLE_MARGIN_PERIODS = 64  # margin in units of orig_rate/gcd input samples; >> sinc width


class AudioError(KwsosError):
    """A user-facing problem with an audio file (missing, unreadable, empty, silent...)."""


@dataclass(frozen=True)
class AudioInfo:
    """Basic facts about an audio file, read from its header."""

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path``; raise :class:`AudioError` if missing, unreadable or empty."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"cannot read audio file {path}: {_one_line(exc)}") from None
    if info.frames <= 0:
        raise AudioError(f"audio file is empty (0 samples): {path}")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def highpass_coefficients(
    cutoff_hz: float, sample_rate: int, q: float = 0.707
) -> tuple[np.ndarray, np.ndarray]:
    """Biquad high-pass coefficients ``(b, a)``, identical to ``torchaudio.functional.highpass_biquad``."""
    w0 = 2.0 * math.pi * cutoff_hz / sample_rate
    alpha = math.sin(w0) / 2.0 / q
    b = np.array([(1 + math.cos(w0)) / 2, -1 - math.cos(w0), (1 + math.cos(w0)) / 2])
    a = np.array([1 + alpha, -2 * math.cos(w0), 1 - alpha])
    return b / a[0], a / a[0]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _raw_blocks(path: Path, block_frames: int, limit: int | None = None) -> Iterator[np.ndarray]:
    """Mono float64 blocks of the raw file (original rate); at most ``limit`` frames in all."""
    left = limit
    try:
        with sf.SoundFile(str(path)) as f:
            while left is None or left > 0:
                n = block_frames if left is None else min(block_frames, left)
                block = f.read(n, dtype="float64", always_2d=True)
                if block.shape[0] == 0:
                    return
                if left is not None:
                    left -= block.shape[0]
                if block.shape[1] == 2:  # the same values as mean(axis=1), 10x faster
                    yield (block[:, 0] + block[:, 1]) / 2.0
                else:
                    yield block.mean(axis=1)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"cannot decode audio file {path}: {_one_line(exc)}") from None


def _peak(path: Path, blocks: Iterable[np.ndarray]) -> float:
    peak = 0.0
    for block in blocks:
        if not np.all(np.isfinite(block)):
            raise AudioError(f"audio file contains NaN or infinite samples: {path}")
        peak = max(peak, float(np.max(np.abs(block))))
    return peak


_KERNELS: dict[tuple[int, int], tuple[np.ndarray, int]] = {}


def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """:func:`_make_sinc_kernel`, kept for the next file at the same rate when it is small
    (common rates: a few hundred KB; 16001 Hz gives a 2 GB kernel, as in torchaudio)."""
    if (orig, new) in _KERNELS:
        return _KERNELS[orig, new]
    kernel, width = _make_sinc_kernel(orig, new)
    if kernel.size <= 1 << 20 and len(_KERNELS) < 16:
        _KERNELS[orig, new] = kernel, width
    return kernel, width


def _make_sinc_kernel(
    orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99
) -> tuple[np.ndarray, int]:
    """torchaudio's ``sinc_interp_hann`` resampling kernel ``(new, 2 * width + orig)`` float64
    and ``width``, for rates already divided by their gcd (the same computation as
    ``torchaudio.functional.functional._get_sinc_resample_kernel``, in numpy)."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx
    t *= base
    t = np.clip(t, -width_zeros, width_zeros)
    window = np.cos(t * math.pi / width_zeros / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel *= window * (base / orig)
    kernel.flags.writeable = False
    return kernel, width


def sinc_resample(x: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample ``x`` ``(n,)`` float64 like ``torchaudio.functional.resample`` (windowed sinc,
    Hann window, 6 zero crossings, roll-off 0.99) without importing torch: the same kernel,
    applied with a strided matrix product instead of ``conv1d`` (equal up to float64 rounding;
    the same output length, ``ceil(n * new / orig)`` evaluated in float32 as torchaudio does)."""
    if orig_rate == new_rate:
        return x
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    kernel, width = _sinc_kernel(orig, new)
    n = len(x)
    padded = np.pad(np.asarray(x, np.float64), (width, width + orig))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    # in chunks: the strided windows are copied for the product (bounded memory)
    step = max(1, (1 << 20) // kernel.shape[1])
    out = np.empty((len(windows), new))
    for i in range(0, len(windows), step):
        np.matmul(windows[i : i + step], kernel.T, out=out[i : i + step])
    target = math.ceil(np.float32(new * n / orig))
    return out.reshape(-1)[:target]


class _BlockResampler:
    """Exact block-wise resampling with torchaudio's sinc kernel (see module docstring)."""

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        g = math.gcd(orig_rate, new_rate)
        self.orig, self.new = orig_rate, new_rate
        self.in_period, self.out_period = orig_rate // g, new_rate // g
        self.margin = _RESAMPLE_MARGIN_PERIODS * self.in_period
        self.buffer = np.zeros(0)  # input not yet turned into output, plus left margin
        self.consumed = 0  # input samples (absolute index) represented by buffer[0]
        self.left = 0  # samples of left margin at the start of buffer

    def _resample(self, x: np.ndarray) -> np.ndarray:
        return sinc_resample(x, self.orig, self.new)

    def push(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        if self.orig == self.new:
            return x
        self.buffer = np.concatenate([self.buffer, x])
        if final:
            y = self._resample(self.buffer)
            out_left = self.left // self.in_period * self.out_period
            return y[out_left:]
        # emit whole periods whose right margin is available
        usable = len(self.buffer) - self.left - self.margin
        n_periods = usable // self.in_period
        if n_periods <= 0:
            return np.zeros(0)
        emit_in = n_periods * self.in_period
        y = self._resample(self.buffer[: self.left + emit_in + self.margin])
        out_left = self.left // self.in_period * self.out_period
        out = y[out_left : out_left + n_periods * self.out_period]
        # keep a left margin for the next block
        keep_from = max(0, self.left + emit_in - self.margin)
        keep_from -= keep_from % self.in_period
        self.left = self.left + emit_in - keep_from
        self.buffer = self.buffer[keep_from:]
        return out


def stream_audio(
    path: str | Path,
    *,
    block_s: float = 30.0,
    sample_rate: int = SAMPLE_RATE,
    highpass_hz: float | None = HIGHPASS_HZ,
    normalize: bool = True,
    max_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield a recording as consecutive float32 blocks at ``sample_rate`` Hz, mono.

    Parameters
    ----------
    path
        Any file soundfile reads (wav, flac, ogg, mp3, ...), any rate and channel count.
    block_s
        Approximate duration of each block in seconds (of the input).
    sample_rate
        Output rate (16 kHz for every kwsos model).
    highpass_hz
        Cut-off of the high-pass biquad (Diss. 6.3.4: 50 Hz); ``None`` disables it.
    normalize
        Divide by the maximum absolute value of the mono signal (before resampling).
    max_s
        Read only the first ``max_s`` seconds of the file, as if the file ended there (its
        peak too is that of those seconds): a clip classifier that uses the start of a clip
        does not read a long recording whole.

    Raises
    ------
    AudioError
        Missing, unreadable, empty or silent file.
    """
    info = audio_info(path)
    block_frames = max(1, int(block_s * info.sample_rate))
    limit = None if max_s is None else max(1, math.ceil(max_s * info.sample_rate))
    frames = info.frames if limit is None else min(info.frames, limit)
    if frames <= block_frames:
        # One block: decode it once instead of once for the peak and once for the output
        # (a folder of short files is otherwise read twice).
        raw: Iterable[np.ndarray] = list(_raw_blocks(info.path, block_frames, limit))
        peak = _peak(info.path, raw)
    else:
        peak = _peak(info.path, _raw_blocks(info.path, block_frames, limit))
        raw = _raw_blocks(info.path, block_frames, limit)
    if peak <= SILENCE_PEAK:
        raise AudioError(f"audio file is silent (peak amplitude {peak:.2g}): {info.path}")
    scale = 1.0 / peak if normalize else 1.0
    resampler = _BlockResampler(info.sample_rate, sample_rate)
    if highpass_hz is not None:
        b, a = highpass_coefficients(highpass_hz, sample_rate)
        zi = np.zeros(2)

    def finish(y: np.ndarray) -> np.ndarray:
        nonlocal zi
        if highpass_hz is not None and len(y):
            from kwsos._biquad import biquad_filter  # numba, loaded where it filters

            y, zi = biquad_filter(b, a, y, zi)
        return y.astype(np.float32)

    pending: np.ndarray | None = None
    for block in raw:
        if pending is not None:
            y = resampler.push(pending * scale)
            if len(y):
                yield finish(y)
        pending = block
    if pending is not None:
        y = resampler.push(pending * scale, final=True)
        if len(y):
            yield finish(y)


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    highpass_hz: float | None = HIGHPASS_HZ,
    normalize: bool = True,
) -> np.ndarray:
    """Whole file as a float32 array ``(n_samples,)`` at ``sample_rate`` Hz (see :func:`stream_audio`)."""
    blocks = list(
        stream_audio(path, sample_rate=sample_rate, highpass_hz=highpass_hz, normalize=normalize)
    )
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def prepare_array(
    wave: np.ndarray,
    *,
    what: str = "waveform",
    sample_rate: int = SAMPLE_RATE,
    highpass_hz: float | None = HIGHPASS_HZ,
    normalize: bool = True,
) -> np.ndarray:
    """The frontend of :func:`stream_audio` for a waveform given as an array.

    ``wave`` must be a non-empty 1-D numeric array at ``sample_rate`` (16 kHz for every kwsos
    model). It is peak-normalised and high-passed exactly as a file holding the same samples
    would be, and returned as float32 ``(n_samples,)``.

    Raises
    ------
    AudioError
        Not 1-D, empty, not numeric, NaN/inf samples or silent (``what`` names it).
    """
    x = np.asarray(wave)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(
            f"{what}: expected a non-empty 1-D waveform (mono, {sample_rate} Hz), got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise AudioError(f"{what}: expected a numeric waveform, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{what}: the waveform contains NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak <= SILENCE_PEAK:
        raise AudioError(f"{what}: the waveform is silent (peak amplitude {peak:.2g})")
    if normalize:
        x = x / peak
    if highpass_hz is not None:
        from kwsos._biquad import biquad_filter

        b, a = highpass_coefficients(highpass_hz, sample_rate)
        x = biquad_filter(b, a, x)[0]
    return x.astype(np.float32)


def load_clip(
    clip: str | Path | np.ndarray, *, what: str = "clip", max_s: float | None = None
) -> np.ndarray:
    """A file (:func:`stream_audio`) or a 16 kHz array (:func:`prepare_array`) as float32 16 kHz
    mono, normalised and high-passed. ``max_s``: use only the first ``max_s`` seconds of a
    file (:func:`stream_audio`'s ``max_s``: a long recording is not read whole)."""
    if isinstance(clip, np.ndarray):
        return prepare_array(clip, what=what)
    if max_s is None:
        return load_audio(clip)
    blocks = list(stream_audio(clip, block_s=max(1.0, max_s), max_s=max_s))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def trim_silence(
    wave: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    top_db: float = 35.0,
    frame_s: float = 0.025,
    hop_s: float = 0.010,
    margin_s: float = 0.02,
) -> np.ndarray:
    """Cut leading and trailing low-energy parts from an isolated keyword recording.

    A frame is active when its RMS is within ``top_db`` of the loudest frame; the result spans
    the first to the last active frame plus ``margin_s`` on both sides. Enrollment shots need
    this: a DTW template that starts or ends with silence would only match keywords that are
    surrounded by silence, which is rare in running speech.

    Parameters
    ----------
    wave
        ``(n_samples,)`` mono signal.
    """
    frame = max(1, int(frame_s * sample_rate))
    hop = max(1, int(hop_s * sample_rate))
    if len(wave) <= frame:
        return wave
    n_frames = 1 + (len(wave) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n_frames)[:, None]
    rms = np.sqrt(np.mean(np.square(wave[idx].astype(np.float64)), axis=1) + 1e-20)
    db = 20 * np.log10(rms / rms.max())
    active = np.flatnonzero(db > -top_db)
    margin = int(margin_s * sample_rate)
    start = max(0, active[0] * hop - margin)
    stop = min(len(wave), active[-1] * hop + frame + margin)
    return wave[start:stop]


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``wave`` as 32-bit float WAV, atomically (temporary file in the same folder, then rename)."""
    with atomic_output(path) as tmp:
        sf.write(
            str(tmp), np.asarray(wave, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT"
        )
