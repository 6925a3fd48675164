"""Embedding networks on log-Mel segments (Diss. Table 30, Sec. 6.3.4 and 6.3.7).

:class:`TemporalResNet` keeps the time axis: a segment ``(T, n_mels)`` gives ``(T, dim)``, one
embedding per frame. Strides and max-pooling act on frequency only, and there is no padding or
pooling along time beyond the ``same`` padding of the 3x3 convolutions, so the network is fully
convolutional in time: it accepts any ``T`` (the fast inference path feeds a whole block).

:class:`SlidingWindowResNet` is the sliding-window baseline of Diss. 6.3.7: the same network but
max-pooling also over time in every down-sampling block and a flatten before the dense layer,
giving one ``dim`` vector per segment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "ResidualBlock",
    "SlidingWindowResNet",
    "TemporalResNet",
    "model_from_dict",
    "residual_stages",
]


class ResidualBlock(nn.Module):
    """Pre-activation residual block: (BN, LeakyReLU(0.1), 3x3 conv) x 2 + shortcut, then dropout.

    Down-sampling by ``stride`` ``(time, freq)`` happens in the first convolution; the shortcut
    max-pools by the same factor and a 1x1 convolution matches the channels when they change.
    """

    def __init__(
        self, c_in: int, c_out: int, *, stride: tuple[int, int] = (1, 1), dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.act = nn.LeakyReLU(0.1)
        shortcut: list[nn.Module] = []
        if stride != (1, 1):
            shortcut.append(nn.MaxPool2d(stride, stride=stride, ceil_mode=True))
        if c_in != c_out:
            shortcut.append(nn.Conv2d(c_in, c_out, 1, bias=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.bn1(x)))
        h = self.conv2(self.act(self.bn2(h)))
        return self.dropout(h + self.shortcut(x))


def residual_stages(
    c_in: int,
    channels: tuple[int, ...],
    blocks_per_stage: int,
    stride: Callable[[int], tuple[int, int]],
    dropout: float,
) -> nn.Sequential:
    """Stages of :class:`ResidualBlock` s: stage ``i`` has ``blocks_per_stage`` blocks with
    ``channels[i]`` channels, the first one down-sampling by ``stride(i)``."""
    blocks: list[nn.Module] = []
    c_prev = c_in
    for stage, c in enumerate(channels):
        for b in range(blocks_per_stage):
            s = stride(stage) if b == 0 else (1, 1)
            blocks.append(ResidualBlock(c_prev, c, stride=s, dropout=dropout))
            c_prev = c
    return nn.Sequential(*blocks)


class TemporalResNet(nn.Module):
    """Temporal ResNet of Diss. Table 30: ``(B, T, n_mels)`` log-Mel -> ``(B, T, dim)`` embeddings.

    Four stages of ``blocks_per_stage`` residual blocks with ``channels`` (16/32/64/128); stages
    2-4 halve the frequency axis (stride 1x2), dropout 0.2 after each block, max-pooling over the
    remaining frequency bins (64 -> 8), then a linear projection (no activation) to ``dim`` per
    frame. About 0.7 M parameters with the defaults. The input is first standardised per Mel bin
    by a batch-norm layer (the paper does not say how inputs are scaled; this keeps the raw
    ``log(mag + 1e-8)`` values, which reach -18 for digital silence, in a usable range).
    """

    def __init__(
        self,
        n_mels: int = 64,
        dim: int = 128,
        *,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        blocks_per_stage: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_mels, self.dim = n_mels, dim
        self.channels, self.blocks_per_stage, self.dropout_p = (
            tuple(channels),
            blocks_per_stage,
            dropout,
        )
        self.input_norm = nn.BatchNorm1d(n_mels)
        self.blocks = residual_stages(1, self.channels, blocks_per_stage, self._stride, dropout)
        c_last = self.channels[-1]
        self.final_bn = nn.BatchNorm2d(c_last)
        self.act = nn.LeakyReLU(0.1)
        self.embed = nn.Linear(self._flat_dim(c_last), dim)

    def _stride(self, stage: int) -> tuple[int, int]:
        return (1, 2) if stage > 0 else (1, 1)

    def _flat_dim(self, c_last: int) -> int:
        return c_last

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` -> feature maps ``(B, C, T', F')``."""
        if x.ndim != 3 or x.shape[-1] != self.n_mels:
            raise ValueError(f"expected input (batch, frames, {self.n_mels}), got {tuple(x.shape)}")
        x = self.input_norm(x.transpose(1, 2)).unsqueeze(1).transpose(2, 3)  # (B, 1, T, F)
        return self.act(self.final_bn(self.blocks(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x).amax(dim=3)  # max over the remaining frequency bins: (B, C, T)
        return self.embed(h.transpose(1, 2))  # (B, T, dim)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": type(self).__name__,
            "n_mels": self.n_mels,
            "dim": self.dim,
            "channels": list(self.channels),
            "blocks_per_stage": self.blocks_per_stage,
            "dropout": self.dropout_p,
        }


class SlidingWindowResNet(TemporalResNet):
    """Sliding-window baseline (Diss. 6.3.7): ``(B, T, n_mels)`` -> one ``(B, dim)`` vector per segment.

    Down-sampling blocks pool time as well as frequency (stride 2x2); the final maps are
    flattened before the dense layer, so the input length is fixed at ``segment_frames``.
    """

    def __init__(
        self, n_mels: int = 64, dim: int = 128, *, segment_frames: int = 16, **kw: Any
    ) -> None:
        self.segment_frames = segment_frames
        super().__init__(n_mels, dim, **kw)

    def _stride(self, stage: int) -> tuple[int, int]:
        return (2, 2) if stage > 0 else (1, 1)

    def _flat_dim(self, c_last: int) -> int:
        t, f = self.segment_frames, self.n_mels
        for _ in range(1, len(self.channels)):
            t, f = -(-t // 2), -(-f // 2)
        return c_last * t * f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.segment_frames:
            raise ValueError(f"expected segments of {self.segment_frames} frames, got {x.shape[1]}")
        return self.embed(self.trunk(x).flatten(1))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "segment_frames": self.segment_frames}


MODELS: dict[str, type[TemporalResNet]] = {
    "TemporalResNet": TemporalResNet,
    "SlidingWindowResNet": SlidingWindowResNet,
}


def model_from_dict(d: dict[str, Any]) -> TemporalResNet:
    """Inverse of ``model.to_dict()`` (architecture only; load the weights with ``load_state_dict``)."""
    d = dict(d)
    name = d.pop("name")
    if name == "WhisperHead":
        from kwsos.models.whisper_head import WhisperHead

        return WhisperHead(**d)  # type: ignore[return-value]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if "channels" in d:
        d["channels"] = tuple(d["channels"])
    return MODELS[name](**d)
