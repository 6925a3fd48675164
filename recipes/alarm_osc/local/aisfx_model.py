"""The ``aisfx`` sound-effects embedding network (Ma & Lerch, ISMIR 2022), re-implemented.

``aisfx`` 0.1.2 (PyPI) ships a 9-layer CNN trained on nine commercial sound-effect libraries
(model "X-Sequential-CE"): four convolution blocks (two 3x3 convolutions without bias, batch
norm and ReLU each; 64 / 128 / 256 / 512 channels; 2x2 max-pooling after the first three), the
mean over frequency, then the max over time. One 512-d vector per block of 100 frames (2.32 s)
of a 96-band log-Mel spectrogram at 44.1 kHz. 4.69 M parameters. The wheel's metadata pins
``numpy==1.23`` and ``librosa==0.9.2``, so it cannot be installed beside kwsos as a plain
dependency; this module is written from the published architecture and preprocessing and only
reads the wheel's ``checkpoint.pth`` (24.9 MB; the model and the paper are CC BY 4.0,
"Copyright (c) 2022 A.B. Ma and A. Lerch", LICENSE of the wheel).

Preprocessing: the one the paper used (``aisfx.inference.main``'s default, Essentia), re-written
in numpy / torch:

* audio at 44.1 kHz, mono (Essentia's ``EasyLoader`` with its default replay gain -6 dB scales by
  1.0, i.e. the samples are used as they are; ``peak_normalize=True`` gives the peak
  normalisation of ``aisfx``'s librosa path instead);
* frames of 2048 samples every 1024 samples, the first one centred on sample 0 (Essentia's
  ``FrameCutter``: zero padding of 1024 samples at the start, ``ceil(n / 1024) + 1`` frames,
  the last ones zero-padded);
* symmetric Hann window ``0.5 - 0.5 cos(2 pi i / 2047)``, magnitude spectrum (1025 bins);
* 96 Mel bands (HTK formula) from 0 to 22050 Hz, triangles in the Mel domain ("warping"), every
  band's weights summing to 1 ("unit_sum"), applied to the power spectrum;
* ``log10(1e4 * x + 1)``, divided by 9.457798957824707 (the ``'original'`` min-max normalisation
  of the paper, minimum 0);
* blocks of 100 frames every 50 frames (``emb_hop_size=0.5``); the last block is dropped if it
  is incomplete (``drop_partial_block=True``), unless the clip is shorter than one block (then
  it is zero-padded).

Audio at another rate is resampled with :func:`torchaudio.functional.resample` and a long
Kaiser-windowed sinc (:data:`RESAMPLE`; Essentia uses libsamplerate, the block embeddings agree
to a cosine of >= 0.998 on 16 kHz clips, see ``recipes/alarm_osc/RESULTS_aisfx.md``).

Use::

    from aisfx_model import load_aisfx
    emb = load_aisfx()                 # AisfxEmbedder; checkpoint from the installed aisfx wheel
    blocks = emb.embed_file("a.wav")   # (n_blocks, 512) float32

The checkpoint is found (without importing ``aisfx``, whose import needs its own numpy) at an
explicit path, at ``$KWSOS_AISFX_CHECKPOINT``, or inside an installed ``aisfx`` distribution
(``pip install --no-deps aisfx==0.1.2``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kwsos.errors import KwsosError

__all__ = [
    "AisfxEmbedder",
    "AisfxNet",
    "CHECKPOINT_ENV",
    "SAMPLE_RATE",
    "find_checkpoint",
    "frame_blocks",
    "load_aisfx",
    "log_mel",
    "mel_filterbank",
]

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize, 'original'
BLOCK = 100  # frames per embedding block (2.32 s)
BLOCK_HOP = 50  # emb_hop_size = 0.5
DIM = 512
CHECKPOINT_ENV = "KWSOS_AISFX_CHECKPOINT"
# a long Kaiser-windowed sinc (librosa's "kaiser_best"): closest to Essentia's libsamplerate of
# the options tried (block embeddings of 9 clips 16 -> 44.1 kHz: cosine >= 0.998 to the ones of
# Essentia's spectrogram, against >= 0.983 with torchaudio's default filter)
RESAMPLE = {"lowpass_filter_width": 64, "rolloff": 0.9475937167399596,
            "resampling_method": "sinc_interp_kaiser", "beta": 14.769656459379492}  # fmt: skip


# ------------------------------------------------------------------------------ preprocessing
def _hz2mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.01048 * np.log1p(np.asarray(f, np.float64) / 700.0)


def _mel2hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * np.expm1(np.asarray(m, np.float64) / 1127.01048)


def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` weights of Essentia's ``MelBands`` with ``htkMel`` /
    ``warping`` / ``unit_sum``: band ``i`` spans the Mel-spaced edges ``f[i]`` .. ``f[i + 2]``,
    its weight rises linearly *in Mel* from ``f[i]`` to 1 at ``f[i + 1]`` and falls towards
    ``f[i + 2]`` (every bin with ``f[i] <= j * df < f[i + 2]``); each band is then scaled to sum
    1."""
    n_bins = n_fft // 2 + 1
    df = (sample_rate / 2) / (n_bins - 1)
    edges = _mel2hz(np.linspace(_hz2mel(f_min), _hz2mel(f_max), n_mels + 2))
    freq = np.arange(n_bins) * df
    mel = _hz2mel(freq)
    medges = _hz2mel(edges)
    fb = np.zeros((n_mels, n_bins))
    for i in range(n_mels):
        lo, c, hi = edges[i : i + 3]
        up = (freq >= lo) & (freq < c)
        down = (freq >= c) & (freq < hi)
        fb[i, up] = (mel[up] - medges[i]) / (medges[i + 1] - medges[i])
        fb[i, down] = (medges[i + 2] - mel[down]) / (medges[i + 2] - medges[i + 1])
        s = fb[i].sum()
        if s > 0:
            fb[i] /= s
    return fb.astype(np.float32)


_FB: torch.Tensor | None = None


def _filterbank() -> torch.Tensor:
    global _FB
    if _FB is None:
        _FB = torch.from_numpy(mel_filterbank())
    return _FB


def log_mel(
    wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, peak_normalize: bool = False
) -> np.ndarray:
    """``(n_frames, 96)`` normalised log-Mel spectrogram of a mono waveform, as aisfx's Essentia
    path computes it (see the module docstring); ``n_frames = ceil(n / 1024) + 1`` at 44.1 kHz."""
    x = torch.as_tensor(np.asarray(wave, np.float32))
    if x.ndim != 1 or x.numel() == 0:
        raise KwsosError(f"aisfx: expected a non-empty mono waveform, got shape {tuple(x.shape)}")
    if sample_rate != SAMPLE_RATE:
        import torchaudio.functional as AF

        x = AF.resample(x, int(sample_rate), SAMPLE_RATE, **RESAMPLE)
    if peak_normalize:
        peak = float(x.abs().max())
        x = x / (peak if peak > 0 else 1.0)
    n = x.numel()
    n_frames = math.ceil(n / HOP) + 1
    total = (n_frames - 1) * HOP + N_FFT
    padded = F.pad(x, (N_FFT // 2, total - N_FFT // 2 - n))
    frames = padded.unfold(0, N_FFT, HOP)  # (n_frames, 2048)
    window = 0.5 - 0.5 * torch.cos(
        2 * math.pi * torch.arange(N_FFT, dtype=torch.float64) / (N_FFT - 1)
    )
    spec = torch.fft.rfft(frames.double() * window).abs().pow(2)  # power spectrum (T, 1025)
    bands = spec.float() @ _filterbank().T
    return (torch.log10(1e4 * bands + 1) / SPEC_MAX).numpy()


def frame_blocks(
    spec: np.ndarray, block: int = BLOCK, hop: int = BLOCK_HOP, drop_partial: bool = True
) -> np.ndarray:
    """``(n_blocks, block, n_mels)`` blocks of a spectrogram as ``aisfx.preprocessing.blocking``:
    ``ceil((T - block) / hop + 1)`` blocks, one fewer when the last is incomplete and
    ``drop_partial``, at least one; incomplete blocks are zero-padded."""
    t = spec.shape[0]
    n = int(np.ceil((t - block) / hop + 1))
    if (t - block) % hop != 0 and drop_partial:
        n -= 1
    n = max(n, 1)
    padded = np.concatenate([spec, np.zeros((block, spec.shape[1]), spec.dtype)])
    return np.stack([padded[i * hop : i * hop + block] for i in range(n)])


# -------------------------------------------------------------------------------------- model
class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, 2) if pool else x


class AisfxNet(nn.Module):
    """``(B, 100, 96)`` normalised log-Mel blocks -> ``(B, 512)`` embeddings (aisfx's
    ``EmbeddingNet('max', 3, 1, 64)``; parameter names as in its checkpoint, without the
    ``embedding_net.`` prefix)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        for i in range(4):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(chans[i], chans[i + 1]))
        self.dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        for i in range(4):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=i < 3)
        return x.mean(3).amax(2)


# ------------------------------------------------------------------------------------- loading
def find_checkpoint(checkpoint_path: str | Path | None = None) -> Path:
    """``checkpoint.pth``: ``checkpoint_path``, else ``$KWSOS_AISFX_CHECKPOINT``, else the one in
    an installed ``aisfx`` distribution (found without importing ``aisfx``)."""
    given_by = [(checkpoint_path, "checkpoint_path"), (os.environ.get(CHECKPOINT_ENV), f"${CHECKPOINT_ENV}")]  # fmt: skip
    for given, what in given_by:
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise KwsosError(f"aisfx checkpoint not found: {p} (from {what})")
            return p
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [
            Path(d) / "models" / "checkpoint.pth" for d in spec.submodule_search_locations
        ]
    try:
        dist = importlib.metadata.distribution("aisfx")
        files = dist.files or ()
        candidates += [Path(str(dist.locate_file(f))) for f in files if f.name == "checkpoint.pth"]
    except importlib.metadata.PackageNotFoundError:
        pass
    for p in candidates:
        if p.is_file():
            return p
    raise KwsosError(
        "aisfx checkpoint not found: install the weights with `pip install --no-deps aisfx==0.1.2` "
        f"or set ${CHECKPOINT_ENV} to its checkpoint.pth"
    )


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The embedding network's tensors of aisfx's ``(state_dict, ds_dict)`` pickle; loaded with
    ``weights_only=True``, allowing only the numpy scalar types of ``ds_dict``."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    # the pickle names numpy 1.x's module path; numpy 2 keeps it as an alias
    safe = [np.dtype, type(np.dtype(np.int64)), (scalar, "numpy.core.multiarray.scalar"), scalar]
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input problem
        first = (str(e).strip().splitlines() or [""])[0]
        raise KwsosError(
            f"aisfx checkpoint {path} could not be read: {type(e).__name__}: {first}"
        ) from e
    state = obj[0] if isinstance(obj, tuple | list) else obj
    prefix = "embedding_net."
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise KwsosError(f"aisfx checkpoint {path} has no embedding_net.* weights")
    return out


class AisfxEmbedder:
    """Preprocessing + :class:`AisfxNet`: waveform -> ``(n_blocks, 512)`` block embeddings."""

    def __init__(self, net: AisfxNet, *, peak_normalize: bool = False) -> None:
        self.net = net.eval()
        self.peak_normalize = peak_normalize

    @torch.no_grad()
    def embed_blocks(self, blocks: np.ndarray, batch: int = 32) -> np.ndarray:
        out = [
            self.net(torch.from_numpy(np.ascontiguousarray(blocks[i : i + batch], np.float32)))
            for i in range(0, len(blocks), batch)
        ]
        return torch.cat(out).numpy()

    def __call__(
        self,
        wave: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        *,
        hop: int = BLOCK_HOP,
        drop_partial: bool = True,
    ) -> np.ndarray:
        spec = log_mel(wave, sample_rate, peak_normalize=self.peak_normalize)
        return self.embed_blocks(frame_blocks(spec, BLOCK, hop, drop_partial))

    def embed_file(self, path: str | Path, **kw) -> np.ndarray:
        import soundfile as sf

        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return self(wave.mean(1), sr, **kw)


def load_aisfx(
    checkpoint_path: str | Path | None = None, *, peak_normalize: bool = False
) -> AisfxEmbedder:
    """The aisfx embedder with the wheel's weights (see :func:`find_checkpoint`), in eval mode."""
    path = find_checkpoint(checkpoint_path)
    net = AisfxNet()
    try:
        net.load_state_dict(_read_state(path))
    except RuntimeError as e:
        raise KwsosError(f"aisfx checkpoint {path} does not fit the network: {e}") from e
    return AisfxEmbedder(net, peak_normalize=peak_normalize)
