"""ArcFace with soft targets (Diss. Def. 2.7, Eq. 6-9)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kwsos.losses._common import (
    check_embeddings,
    check_positive,
    make_centers,
    normalize,
    soft_cross_entropy,
    soft_target,
)

__all__ = ["ArcFace"]

# acos has an infinite derivative at +-1; keep the cosine strictly inside.
_COS_CLAMP = 1.0 - 1e-7


class ArcFace(nn.Module):
    """ArcFace loss with a fixed scale and an additive angular margin (Diss. Def. 2.7).

    Logits ``s * cos(theta_j + m * target_j)`` (Eq. 7-8): the margin is added to each class's
    angle in proportion to its target weight (one-hot: the margin on the target class only;
    mixup ``lambda y1 + (1 - lambda) y2``: ``lambda m`` and ``(1 - lambda) m``). Loss
    ``-1/B sum_x sum_j target_xj log softmax_j`` (Eq. 6). Plain ``cos(theta + m)`` as in the
    dissertation, without the "easy margin" or ``theta + m > pi`` corrections of some
    implementations. (For Noisy-ArcMix, margin on the dominant class only, pass the margin
    weights as a one-hot ``margin_target``.)

    Parameters
    ----------
    n_classes : int
        Number of classes.
    dim : int
        Embedding dimension ``D``.
    scale : float
        Fixed scale ``s`` (kept in the float64 buffer ``scale`` for the same interface as the
        AdaCos losses; it is never updated).
    margin : float
        Angular margin ``m`` in radians, ``0 <= m <= pi/2``.
    trainable_centers : bool
        If False the centres are fixed random unit vectors (a buffer), drawn with ``seed``.
    seed : int or None
        Seed for the centre initialisation (fixed centres: 0 when None).

    Attributes
    ----------
    centers : Tensor, shape (n_classes, dim)
    scale : Tensor, scalar float64 buffer
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 128,
        scale: float = 30.0,
        margin: float = 0.5,
        *,
        trainable_centers: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_classes=n_classes, dim=dim)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not 0 <= margin <= math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2], got {margin}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.margin = float(margin)
        self.trainable_centers = bool(trainable_centers)
        make_centers(self, (self.n_classes, self.dim), trainable=trainable_centers, seed=seed)
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))

    def cosine(self, emb: Tensor) -> Tensor:
        """Cosine similarities to the class centres, shape (batch, n_classes)."""
        check_embeddings(emb, self.dim, 2, "(batch, D)")
        return normalize(emb) @ normalize(self.centers.to(emb.dtype)).T

    def log_probs(self, emb: Tensor) -> Tensor:
        """``log softmax(s * cos)`` without margin (inference), shape (batch, n_classes)."""
        cos = self.cosine(emb)
        return torch.log_softmax(self.scale.to(cos.dtype) * cos, dim=-1)

    def forward(self, emb: Tensor, target: Tensor, margin_target: Tensor | None = None) -> Tensor:
        """Loss with logits ``s * cos(theta_j + m * margin_target_j)``.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
        target : Tensor, shape (batch, n_classes)
            Soft targets, rows summing to 1 (or integer class indices, shape (batch,)).
        margin_target : Tensor, shape (batch, n_classes), optional
            Per-class margin weights; ``target`` when None.

        Returns
        -------
        Tensor, scalar
        """
        cos = self.cosine(emb)
        target = soft_target(target, self.n_classes, emb.shape[0])
        weights = (
            target
            if margin_target is None
            else soft_target(margin_target, self.n_classes, emb.shape[0], "margin_target")
        )
        theta = torch.arccos(cos.clamp(-_COS_CLAMP, _COS_CLAMP))
        logits = self.scale.to(cos.dtype) * torch.cos(theta + self.margin * weights.to(cos.dtype))
        return soft_cross_entropy(torch.log_softmax(logits, dim=-1), target).mean()

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, scale={float(self.scale):.4g}, "
            f"margin={self.margin}, trainable_centers={self.trainable_centers}"
        )
