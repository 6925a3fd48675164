"""Embedding networks for machine anomalous sound detection (ASD) on raw waveforms.

Two systems of the dissertation, both taking the waveform batch ``(B, n_samples)`` (16 kHz,
already high-passed and normalised by the caller) and computing their features inside with
torch ops, so that the shared training loop (:func:`kwsos.training.train`) can feed waveforms
(mixup then mixes waveforms, as in the reference code) and the features run on the GPU when
there is one:

- :class:`TwoBranchNet`: the DCASE2022/23 system (Diss. 5.3.1, Tables 14 and 15). Branch 1: the
  magnitude STFT (Hann 1024 / hop 512, no Mel filterbank, no logarithm) with temporal mean
  normalisation (TMN) into a modified ResNet (Table 15). Branch 2: the magnitude of the DFT of
  the whole clip into a 1-D CNN with dense layers (Table 14). The two 128-d embeddings are
  concatenated (256-d).
- :class:`LogMelResNet`: the DCASE2020 system (Diss. 3.2.2, Table 4): log-Mel spectrogram
  (128 bins, window 1024, hop 512) into the modified ResNet of Table 4
  (:class:`~kwsos.models.clip_resnet.ClipResNet`).

Both expose the interface the self-supervision code (StatEx / FeatEx, Diss. 5.7) relies on:
``branch_inputs(wave)`` returns one input tensor per branch, ``embed_branches(*inputs)`` one
``(B, dim)`` embedding per branch, ``forward(wave)`` their concatenation ``(B, out_dim)``;
``n_branches``, ``out_dim`` and ``to_dict()`` (rebuilt by :func:`asd_model_from_dict`).

No bias terms (Diss. 5.3.1, Table 16; Prop. 2.5 in Sec. 2.4): with ``bias=False`` no layer has an
additive parameter -- convolutions and dense layers have no bias and batch normalisation only
scales (its shift is a bias term too: it lets a layer output a non-zero constant, i.e. learn
the trivial solution the argument rules out). Zero is then a fixed point of the whole network
(an all-zero clip gives an all-zero embedding with the initial normalisation statistics).
The Keras reference code keeps the batch-norm shifts (``use_bias=False`` only reaches the
convolutions and dense layers); ``norm_shift=True`` reproduces that.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kwsos.audio import SAMPLE_RATE
from kwsos.features.spectral import mel_filterbank
from kwsos.models.clip_resnet import ClipResNet
from kwsos.models.temporal_resnet import MODELS

__all__ = [
    "ASD_MODELS",
    "DftNet",
    "LogMelResNet",
    "LogMelSpectrogram",
    "TwoBranchNet",
    "asd_model_from_dict",
    "magnitude_dft",
    "magnitude_stft",
    "temporal_mean_normalisation",
]


# ---------------------------------------------------------------------------------------------
# Frontends (pure torch functions; work on any device)


def magnitude_stft(
    wave: torch.Tensor,
    *,
    n_fft: int = 1024,
    hop: int = 512,
    window: torch.Tensor | None = None,
    center: bool = False,
) -> torch.Tensor:
    """Magnitude spectrogram ``(B, n_samples)`` -> ``(B, n_frames, n_fft // 2 + 1)``.

    Periodic Hann window of ``n_fft`` samples (``window`` may pass a cached one). With
    ``center=False`` (the DCASE2022/23 system, ``tf.signal.stft(pad_end=False)``) frame ``k``
    covers samples ``[k * hop, k * hop + n_fft)``: 10 s at 16 kHz give 311 frames (Table 15);
    ``center=True`` reflect-pads ``n_fft // 2`` samples on both sides (librosa, Table 4: 313).
    """
    if window is None:
        window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(
        wave,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )
    return spec.abs().transpose(1, 2)


def temporal_mean_normalisation(spec: torch.Tensor) -> torch.Tensor:
    """TMN (Diss. 5.3.1): subtract every frequency bin's mean over time, ``(B, T, F)`` -> same.

    Removes everything that is constant over the clip in each bin (like cepstral mean
    normalisation), so the result is invariant to a stationary per-frequency offset
    ``spec + c[f]``; a per-frequency gain ``g[f] * spec`` is not removed (it scales the result).
    """
    return spec - spec.mean(dim=1, keepdim=True)


def magnitude_dft(wave: torch.Tensor) -> torch.Tensor:
    """Magnitude of the DFT of the whole clip, ``(B, n_samples)`` -> ``(B, n_samples // 2)``.

    ``|rfft(wave)|`` without the last bin, as in the reference code (``abs(fft(x))[:, :n // 2]``)
    and Table 14 (160000 samples -> 80000 bins): for even ``n_samples`` the dropped bin is the
    Nyquist frequency.
    """
    n = wave.shape[-1]
    return torch.fft.rfft(wave, dim=-1).abs()[..., : n // 2]


class LogMelSpectrogram(nn.Module):
    """Log-Mel power spectrogram in dB, ``(B, n_samples)`` -> ``(B, n_frames, n_mels)``.

    ``10 * log10(max(|STFT|^2 @ mel, amin))`` with centred frames (librosa's default, used by
    both the DCASE2020 embedding system, Diss. 3.2.2 / Table 4: 313 frames per 10 s, and the
    DCASE autoencoder baseline). The filterbank is kwsos's HTK-style
    :func:`~kwsos.features.spectral.mel_filterbank` (librosa uses Slaney-normalised triangles:
    in dB this differs by a constant per Mel bin, which the models' input normalisation or the
    autoencoder's first layer absorb). The filterbank is a non-persistent buffer: it is rebuilt
    from the arguments, not saved with the weights.
    """

    def __init__(
        self,
        *,
        n_mels: int = 128,
        n_fft: int = 1024,
        hop: int = 512,
        sample_rate: int = SAMPLE_RATE,
        amin: float = 1e-10,
    ) -> None:
        super().__init__()
        self.n_mels, self.n_fft, self.hop = int(n_mels), int(n_fft), int(hop)
        self.sample_rate, self.amin = int(sample_rate), float(amin)
        fb = mel_filterbank(self.n_fft, self.sample_rate, n_filters=self.n_mels)
        self.register_buffer("fb", torch.as_tensor(fb.T, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] <= self.n_fft // 2:
            raise ValueError(f"clips must be longer than {self.n_fft // 2} samples")
        power = magnitude_stft(
            wave.float(), n_fft=self.n_fft, hop=self.hop, window=self.window, center=True
        ).square()
        return 10.0 * torch.log10((power @ self.fb).clamp_min(self.amin))


# ---------------------------------------------------------------------------------------------
# Building blocks


def _drop_bias(module: nn.Module, *, norm: bool = True) -> nn.Module:
    """Remove the additive parameters of every convolution and dense layer of ``module`` and,
    with ``norm``, the shift of every batch-norm layer (which then only scales)."""
    for m in module.modules():
        is_norm = isinstance(m, nn.modules.batchnorm._BatchNorm)
        is_affine = isinstance(m, nn.Linear | nn.modules.conv._ConvNd)
        if (is_affine or (is_norm and norm)) and getattr(m, "bias", None) is not None:
            m.bias = None  # registers the parameter as None: functional ops accept bias=None
    return module


def _set_negative_slope(module: nn.Module, slope: float) -> None:
    """Replace every LeakyReLU / ReLU child of ``module`` by ReLU (slope 0) or LeakyReLU(slope)."""
    for name, child in module.named_children():
        if isinstance(child, nn.LeakyReLU | nn.ReLU):
            setattr(module, name, nn.ReLU() if slope == 0 else nn.LeakyReLU(slope))
        else:
            _set_negative_slope(child, slope)


def _has_bias(module: nn.Module) -> bool:
    return any(name.rsplit(".", 1)[-1] == "bias" for name, _ in module.named_parameters())


class _SameConv1d(nn.Conv1d):
    """Conv1d with TensorFlow's ``padding="same"``: output length ``ceil(L / stride)``, the
    padding split as evenly as possible (the extra sample on the right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, k, s = x.shape[-1], self.kernel_size[0], self.stride[0]
        total = max((math.ceil(length / s) - 1) * s + k - length, 0)
        return super().forward(F.pad(x, (total // 2, total - total // 2)))


class DftNet(nn.Module):
    """DFT branch (Diss. Table 14): ``(B, n_bins)`` spectrum magnitudes -> ``(B, dim)``.

    Three 1-D convolutions with ``channels`` filters (kernel/stride 256/64, 64/32, 16/4,
    ``same`` padding: 80000 -> 1250 -> 40 -> 10 frames), flatten (1280 for 10-s clips), four
    dense layers of ``units`` and a dense embedding layer without activation. Batch
    normalisation and ReLU after every convolution and hidden dense layer (Diss. 5.3.1: "In each
    convolutional or dense layer of both sub-networks, batch normalization and ReLU are used";
    the reference code has no batch norm after the convolutions).

    Table 14 prints "64, stride = 16" for the second convolution but its output size (1250 ->
    40) and the reference code use stride 32, which is what is implemented.
    """

    def __init__(
        self,
        n_bins: int,
        dim: int = 128,
        *,
        channels: int = 128,
        units: int = 128,
        n_dense: int = 4,
        convs: tuple[tuple[int, int], ...] = ((256, 64), (64, 32), (16, 4)),
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        if n_bins < 1:
            raise ValueError(f"n_bins must be positive, got {n_bins}")
        act = nn.ReLU() if negative_slope == 0 else nn.LeakyReLU(negative_slope)
        layers: list[nn.Module] = []
        c_in, length = 1, int(n_bins)
        for kernel, stride in convs:
            layers += [_SameConv1d(c_in, channels, kernel, stride), nn.BatchNorm1d(channels), act]
            c_in, length = channels, math.ceil(length / stride)
        self.n_bins, self.flat_dim = int(n_bins), channels * length
        self.convs = nn.Sequential(*layers)
        dense: list[nn.Module] = []
        d_in = self.flat_dim
        for _ in range(n_dense):
            dense += [nn.Linear(d_in, units), nn.BatchNorm1d(units), act]
            d_in = units
        self.dense = nn.Sequential(*dense)
        self.embed = nn.Linear(d_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_bins)`` -> ``(B, dim)``."""
        if x.ndim != 2 or x.shape[1] != self.n_bins:
            raise ValueError(f"expected DFT input (batch, {self.n_bins}), got {tuple(x.shape)}")
        h = self.convs(x.unsqueeze(1)).flatten(1)
        return self.embed(self.dense(h))


class _StftResNet(ClipResNet):
    """STFT branch (Diss. Table 15): the Table 4 ResNet on TMN magnitude spectrograms.

    :class:`ClipResNet` with ``n_fft // 2 + 1`` input bins, TMN applied again inside (TMN is
    idempotent; re-applying it keeps the branch invariant to stationary offsets whatever is
    done to its input between :meth:`TwoBranchNet.branch_inputs` and
    :meth:`TwoBranchNet.embed_branches`, e.g. StatEx), and the stem's 3x3 max-pooling without
    padding, which reproduces Table 15's sizes exactly (311x513 -> 156x257 -> 77x128 -> ... ->
    10x16x128; flatten 16 x 128 = 2048, printed "2056" in the table).
    """

    def __init__(
        self,
        n_bins: int,
        dim: int,
        *,
        channels: tuple[int, ...],
        blocks_per_stage: int,
        bias: bool,
        negative_slope: float,
    ) -> None:
        super().__init__(
            n_bins,
            dim,
            channels=channels,
            blocks_per_stage=blocks_per_stage,
            stem_pool=True,
            temporal_norm=True,
        )
        self.stem[-1] = nn.MaxPool2d(3, stride=2)  # "valid" pooling, as in the reference code
        self.embed = nn.Linear(self.embed.in_features, dim, bias=bias)
        _set_negative_slope(self, negative_slope)

    def _freq_bins(self) -> int:
        f = -(-self.n_mels // 2)  # stem convolution, stride 2, padding 3
        f = (f - 3) // 2 + 1  # max-pooling 3x3, stride 2, no padding
        for _ in range(1, len(self.channels)):
            f = -(-f // 2)
        return f


# ---------------------------------------------------------------------------------------------
# The two systems


class TwoBranchNet(nn.Module):
    """DCASE2022/23 embedding network (Diss. 5.3.1, Tables 14 and 15): ``(B, n_samples)`` raw
    waveforms -> ``(B, 2 * dim)`` (STFT-branch embedding, DFT-branch embedding).

    Parameters
    ----------
    n_samples : int
        Clip length in samples, fixed at construction because the DFT branch flattens a
        spectrum whose length depends on it (10 s at 16 kHz: 160000; the DCASE2023 reference
        tiles every clip to 18 s = 288000). The caller crops, pads or tiles clips to this length.
    dim : int
        Embedding dimension of each branch (128).
    bias : bool
        Additive terms in the layers (the paper: none, see the module docstring).
    n_fft, hop : int
        STFT window and hop in samples (1024 / 512).
    channels, blocks_per_stage
        Stem and residual-stage channels of the STFT branch (Table 15: 16, 32, 64, 128; 2 blocks
        per stage). Halve them, e.g. ``(8, 16, 32, 64)``, for a cheaper CPU model.
    dft_channels, dft_units : int
        Filters of the DFT branch's convolutions and units of its dense layers (Table 14: 128).
    norm_shift : bool or None
        Keep the batch-norm shifts (``None``: the same as ``bias``; ``True`` with ``bias=False``
        is what the Keras reference code does).
    negative_slope : float
        Slope of the activations for negative inputs: 0 is ReLU (Diss. 5.3.1), 0.1 the
        LeakyReLU of the DCASE2020 system.

    Notes
    -----
    About 2.5 M parameters with the defaults and 10-s clips (0.8 M with ``channels=(8, 16, 32,
    64)`` and ``dft_channels=64``). Forward and backward pass of a batch of 32 10-s clips on 2
    CPU cores (Xeon, torch 2.14, fp32): 1.1 s with the defaults, 0.6 s with the smaller setting.
    In training mode the batch-norm layers need batches of at least 2 clips.
    """

    n_branches = 2

    def __init__(
        self,
        n_samples: int,
        dim: int = 128,
        *,
        bias: bool = False,
        n_fft: int = 1024,
        hop: int = 512,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        blocks_per_stage: int = 2,
        dft_channels: int = 128,
        dft_units: int = 128,
        norm_shift: bool | None = None,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_samples, self.dim = int(n_samples), int(dim)
        self.bias, self.n_fft, self.hop = bool(bias), int(n_fft), int(hop)
        self.channels, self.blocks_per_stage = (
            tuple(int(c) for c in channels),
            int(blocks_per_stage),
        )
        self.dft_channels, self.dft_units = int(dft_channels), int(dft_units)
        self.norm_shift = None if norm_shift is None else bool(norm_shift)
        self.negative_slope = float(negative_slope)
        min_samples = self.n_fft + 4 * self.hop  # >= 5 frames: the stem pooling needs 3 rows
        if self.n_samples < min_samples:
            raise ValueError(
                f"n_samples must be at least {min_samples} (n_fft + 4 hops), got {self.n_samples}"
            )
        self.out_dim = self.n_branches * self.dim
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.stft_net = _StftResNet(
            self.n_fft // 2 + 1,
            self.dim,
            channels=self.channels,
            blocks_per_stage=self.blocks_per_stage,
            bias=self.bias,
            negative_slope=self.negative_slope,
        )
        self.dft_net = DftNet(
            self.n_samples // 2,
            self.dim,
            channels=self.dft_channels,
            units=self.dft_units,
            negative_slope=self.negative_slope,
        )
        if not self.bias:
            _drop_bias(self, norm=not (self.norm_shift or False))
        elif self.norm_shift is False:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.bias = None

    def _check(self, wave: torch.Tensor) -> None:
        if wave.ndim != 2 or wave.shape[1] != self.n_samples:
            raise ValueError(
                f"expected waveforms (batch, {self.n_samples}), got {tuple(wave.shape)}; "
                "crop, pad or tile the clips to the model's n_samples"
            )

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Magnitude spectrogram before TMN ``(B, T, n_fft // 2 + 1)`` (e.g. for StatEx in the
        reference order: exchange statistics, then TMN inside :meth:`embed_branches`)."""
        self._check(wave)
        return magnitude_stft(
            wave.float(), n_fft=self.n_fft, hop=self.hop, window=self.window, center=False
        )

    def branch_inputs(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n_samples)`` -> (TMN magnitude spectrogram ``(B, T, n_fft // 2 + 1)``,
        DFT magnitudes ``(B, n_samples // 2)``)."""
        spec = temporal_mean_normalisation(self.stft(wave))
        return spec, magnitude_dft(wave.float())

    def embed_branches(self, spec: torch.Tensor, dft: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Branch inputs -> (STFT embedding ``(B, dim)``, DFT embedding ``(B, dim)``)."""
        return self.stft_net(spec), self.dft_net(dft)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, n_samples)`` -> ``(B, 2 * dim)``: the branch embeddings concatenated."""
        return torch.cat(self.embed_branches(*self.branch_inputs(wave)), dim=-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus ``"name"`` (:func:`asd_model_from_dict`)."""
        return {
            "name": type(self).__name__,
            "n_samples": self.n_samples,
            "dim": self.dim,
            "bias": self.bias,
            "n_fft": self.n_fft,
            "hop": self.hop,
            "channels": list(self.channels),
            "blocks_per_stage": self.blocks_per_stage,
            "dft_channels": self.dft_channels,
            "dft_units": self.dft_units,
            "norm_shift": self.norm_shift,
            "negative_slope": self.negative_slope,
        }


class LogMelResNet(nn.Module):
    """DCASE2020 embedding network (Diss. 3.2.2, Table 4): ``(B, n_samples)`` waveforms ->
    ``(B, dim)``.

    Log-Mel spectrogram (:class:`LogMelSpectrogram`: 128 bins, window 1024, hop 512, dB) into
    :class:`~kwsos.models.clip_resnet.ClipResNet` (7x7 stem, four residual stages, LeakyReLU(0.1),
    max-pooling over time, dense 128). The standardisation of Diss. 3.2.2 (mean and standard
    deviation of the normal training data per Mel bin) is ClipResNet's input batch-norm layer.
    The 200 Hz high-pass is the caller's (it prepares the waveforms).

    Parameters
    ----------
    n_samples : int or None
        Expected clip length; the network pools time globally, so ``None`` accepts any length
        of at least ``n_fft`` samples.
    bias : bool
        Additive terms (the DCASE2020 system has them; ``False`` removes them as in
        :class:`TwoBranchNet`).
    """

    n_branches = 1

    def __init__(
        self,
        n_samples: int | None = None,
        dim: int = 128,
        *,
        bias: bool = True,
        n_mels: int = 128,
        n_fft: int = 1024,
        hop: int = 512,
        sample_rate: int = SAMPLE_RATE,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        blocks_per_stage: int = 2,
    ) -> None:
        super().__init__()
        self.n_samples = None if n_samples is None else int(n_samples)
        self.dim, self.bias = int(dim), bool(bias)
        self.n_mels, self.n_fft, self.hop = int(n_mels), int(n_fft), int(hop)
        self.sample_rate = int(sample_rate)
        self.channels, self.blocks_per_stage = (
            tuple(int(c) for c in channels),
            int(blocks_per_stage),
        )
        if self.n_samples is not None and self.n_samples < self.n_fft:
            raise ValueError(f"n_samples must be at least n_fft = {self.n_fft}")
        self.out_dim = self.dim
        self.logmel = LogMelSpectrogram(
            n_mels=self.n_mels, n_fft=self.n_fft, hop=self.hop, sample_rate=self.sample_rate
        )
        self.net = ClipResNet(
            self.n_mels, self.dim, channels=self.channels, blocks_per_stage=self.blocks_per_stage
        )
        if not self.bias:
            _drop_bias(self)

    def branch_inputs(self, wave: torch.Tensor) -> tuple[torch.Tensor]:
        """``(B, n_samples)`` -> (log-Mel ``(B, T, n_mels)``,)."""
        if wave.ndim != 2 or (self.n_samples is not None and wave.shape[1] != self.n_samples):
            want = "n_samples" if self.n_samples is None else self.n_samples
            raise ValueError(f"expected waveforms (batch, {want}), got {tuple(wave.shape)}")
        if wave.shape[1] < self.n_fft:
            raise ValueError(f"clips must have at least n_fft = {self.n_fft} samples")
        return (self.logmel(wave),)

    def embed_branches(self, logmel: torch.Tensor) -> tuple[torch.Tensor]:
        """(log-Mel ``(B, T, n_mels)``,) -> (``(B, dim)``,)."""
        return (self.net(logmel),)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, n_samples)`` -> ``(B, dim)``."""
        return torch.cat(self.embed_branches(*self.branch_inputs(wave)), dim=-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus ``"name"`` (:func:`asd_model_from_dict`)."""
        return {
            "name": type(self).__name__,
            "n_samples": self.n_samples,
            "dim": self.dim,
            "bias": self.bias,
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop": self.hop,
            "sample_rate": self.sample_rate,
            "channels": list(self.channels),
            "blocks_per_stage": self.blocks_per_stage,
        }


ASD_MODELS: dict[str, type[nn.Module]] = {
    "TwoBranchNet": TwoBranchNet,
    "LogMelResNet": LogMelResNet,
}
# One registry for building any embedding network by name (kwsos.models.model_from_dict).
MODELS.update(ASD_MODELS)  # type: ignore[arg-type]


def asd_model_from_dict(d: dict[str, Any]) -> nn.Module:
    """Inverse of ``model.to_dict()`` for the ASD networks (architecture only; load the weights
    with ``load_state_dict``)."""
    d = dict(d)
    name = d.pop("name", None)
    if name not in ASD_MODELS:
        raise ValueError(f"unknown ASD model {name!r}; choose one of {', '.join(ASD_MODELS)}")
    if "channels" in d:
        d["channels"] = tuple(d["channels"])
    return ASD_MODELS[name](**d)
