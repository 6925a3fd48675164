"""Clip embedding network: one vector per log-Mel clip (Diss. Table 4, Sec. 3.2.2).

The modified ResNet of the ASD baseline (Diss. Table 4): a 7x7 convolution with stride 2, a 3x3
max-pooling with stride 2 (as in the reference implementation, which gives Table 4's
``157x64 -> 78x31`` step), four stages of residual blocks (16/32/64/128 channels; stages 2-4
halve time and frequency), max-pooling over the whole remaining time axis, flatten (channels x
remaining frequency bins) and a dense embedding layer without activation (128). Batch
normalisation and LeakyReLU(0.1) everywhere (Diss. 3.2.2). The residual blocks are the
pre-activation :class:`~kwsos.models.temporal_resnet.ResidualBlock` shared with the temporal
network (Table 30).

Because time is max-pooled globally, the network accepts clips of any number of frames; the
frequency axis is flattened, so ``n_mels`` is fixed. The open-set classifier
(:mod:`kwsos.tasks.openset`) feeds fixed-length clips (Diss. 6.2.1: 4 s).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kwsos.models.temporal_resnet import MODELS, residual_stages

__all__ = ["ClipResNet"]


class ClipResNet(nn.Module):
    """``(B, T, n_mels)`` log-Mel clips -> ``(B, dim)`` embeddings (Diss. Table 4).

    Parameters
    ----------
    n_mels : int
        Mel bins of the input.
    dim : int
        Embedding dimension (Table 4: 128).
    channels : tuple of int
        Channels of the stem and the residual stages (Table 4: 16, 32, 64, 128).
    blocks_per_stage : int
        Residual blocks per stage (Table 4: 2).
    dropout : float
        Dropout after every residual block (Table 4: none).
    stem_pool : bool
        Max-pool 3x3 / stride 2 after the stem (reference implementation; Table 4's output
        sizes imply it).

    Notes
    -----
    The input is first standardised per Mel bin by a batch-norm layer: Diss. 3.2.2 standardises
    the log-Mel features with the mean and standard deviation of the training data; the
    batch-norm layer learns the same statistics during training (running averages) and keeps
    them with the weights, so no separate normaliser has to be saved.
    """

    def __init__(
        self,
        n_mels: int = 64,
        dim: int = 128,
        *,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        blocks_per_stage: int = 2,
        dropout: float = 0.0,
        stem_pool: bool = True,
        temporal_norm: bool = False,
    ) -> None:
        super().__init__()
        if not channels or blocks_per_stage < 1:
            raise ValueError("ClipResNet needs at least one stage of at least one block")
        self.n_mels, self.dim = int(n_mels), int(dim)
        self.channels = tuple(int(c) for c in channels)
        self.blocks_per_stage = int(blocks_per_stage)
        self.dropout_p = float(dropout)
        self.stem_pool = bool(stem_pool)
        self.temporal_norm = bool(temporal_norm)
        self.input_norm = nn.BatchNorm1d(self.n_mels)
        c0 = self.channels[0]
        stem: list[nn.Module] = [
            nn.Conv2d(1, c0, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(c0),
            nn.LeakyReLU(0.1),
        ]
        if self.stem_pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        self.blocks = residual_stages(
            c0,
            self.channels,
            self.blocks_per_stage,
            lambda stage: (2, 2) if stage > 0 else (1, 1),
            self.dropout_p,
        )
        c_last = self.channels[-1]
        self.final_bn = nn.BatchNorm2d(c_last)
        self.act = nn.LeakyReLU(0.1)
        self.embed = nn.Linear(c_last * self._freq_bins(), self.dim)

    def _freq_bins(self) -> int:
        f = -(-self.n_mels // 2)  # stem convolution, stride 2, padding 3
        if self.stem_pool:
            f = -(-f // 2)
        for _ in range(1, len(self.channels)):
            f = -(-f // 2)  # ResidualBlock shortcut pools with ceil_mode
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` -> ``(B, dim)``."""
        if x.ndim != 3 or x.shape[-1] != self.n_mels:
            raise ValueError(f"expected input (batch, frames, {self.n_mels}), got {tuple(x.shape)}")
        if self.temporal_norm:
            x = x - x.mean(dim=1, keepdim=True)
        x = self.input_norm(x.transpose(1, 2)).unsqueeze(1).transpose(2, 3)  # (B, 1, T, F)
        h = self.act(self.final_bn(self.blocks(self.stem(x))))  # (B, C, T', F')
        h = h.amax(dim=2)  # max over the remaining time axis (Table 4 "max pooling 10x1")
        return self.embed(h.flatten(1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": type(self).__name__,
            "n_mels": self.n_mels,
            "dim": self.dim,
            "channels": list(self.channels),
            "blocks_per_stage": self.blocks_per_stage,
            "dropout": self.dropout_p,
            "stem_pool": self.stem_pool,
            "temporal_norm": self.temporal_norm,
        }


MODELS["ClipResNet"] = ClipResNet  # type: ignore[assignment]  # model_from_dict builds it by name
