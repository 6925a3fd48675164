"""A small temporal head on Whisper encoder frames (issue #19): ``(B, T, 384)`` -> ``(B, T, dim)``.

Three 1-D convolutions over time with "same" zero padding (kernel 5, 5, 1; GELU between), so
an output frame depends on its input frame and ``receptive`` frames on each side and a whole
recording is embedded in one pass (:class:`kwsos.embeddings.whisper.WhisperTacosFeatures`). It
is trained with the TACos loss on the encoder frames of the enrollment shots, in seconds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["WhisperHead"]


class WhisperHead(nn.Module):
    def __init__(
        self,
        in_dim: int = 384,
        dim: int = 128,
        hidden: int = 256,
        kernel: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {kernel}")
        self.in_dim, self.dim, self.hidden, self.kernel, self.dropout_p = (
            in_dim,
            dim,
            hidden,
            kernel,
            dropout,
        )
        pad = kernel // 2
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv1d(in_dim, hidden, kernel, padding=pad),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, kernel, padding=pad),
            nn.GELU(),
            nn.Conv1d(hidden, dim, 1),
        )

    @property
    def receptive(self) -> int:
        """Input frames on each side that one output frame depends on."""
        return 2 * (self.kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected input (batch, frames, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x.transpose(1, 2)).transpose(1, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": type(self).__name__,
            "in_dim": self.in_dim,
            "dim": self.dim,
            "hidden": self.hidden,
            "kernel": self.kernel,
            "dropout": self.dropout_p,
        }
