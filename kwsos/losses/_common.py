"""Helpers shared by the angular margin losses: cosines, targets, the AdaCos scale updates.

The scale updates are pure functions on detached tensors; the loss modules call them under
``torch.no_grad()`` and store the result in their ``scale`` buffer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EPS",
    "adacos_scale",
    "median",
    "subcluster_adacos_scale",
]

#: Norm floor when L2-normalising embeddings and centres (a zero vector stays zero, cosine 0).
EPS = 1e-12


def normalize(x: Tensor) -> Tensor:
    """L2-normalise along the last axis; a zero vector stays zero instead of becoming NaN."""
    return F.normalize(x, p=2.0, dim=-1, eps=EPS)


def median(x: Tensor) -> Tensor:
    """Median of a 1-D tensor; for an even count the mean of the two middle values.

    (``numpy.median`` convention; ``torch.median`` would return the lower of the two.)
    """
    ordered = torch.sort(x.reshape(-1)).values
    n = ordered.numel()
    return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])


def adacos_scale(cos: Tensor, target: Tensor, *, prev_scale: Tensor) -> Tensor:
    """AdaCos scale ``s~(t)`` from ``s~(t-1)`` and one batch (Diss. Def. 2.8, Eq. 10-11).

    Parameters
    ----------
    cos : Tensor, shape (batch, n_classes)
        Cosine similarities between the embeddings and the class centres.
    target : Tensor, shape (batch, n_classes)
        Soft targets, rows summing to 1.
    prev_scale : Tensor, scalar
        ``s~(t-1)``.

    Returns
    -------
    Tensor, scalar float64
        ``log(B_avg) / cos(min(pi/4, alpha_med))`` where

        * ``B_avg = mean_x sum_j (1 - target_xj) * exp(s~(t-1) * cos_xj)``: for one-hot targets
          exactly the sum over the non-target classes of Eq. 11; for soft (mixup) targets each
          class's term is weighted by the mass it does *not* carry as a target;
        * ``alpha_med`` = median over the batch of the target-weighted angle
          ``sum_j target_xj * arccos(cos_xj)`` (for one-hot targets the angle to the target
          centre).
    """
    cos = cos.detach().to(torch.float64)
    target = target.detach().to(torch.float64)
    s = prev_scale.detach().to(torch.float64)
    weight = (1.0 - target).clamp_min(0.0)
    # log of a weighted sum of exponentials; log(0) = -inf removes a term exactly.
    log_b_avg = torch.logsumexp((s * cos + torch.log(weight)).reshape(-1), dim=0) - math.log(
        cos.shape[0]
    )
    angle = (target * torch.arccos(cos.clamp(-1.0, 1.0))).sum(dim=1)
    return log_b_avg / torch.cos(median(angle).clamp(max=math.pi / 4))


def subcluster_adacos_scale(cos: Tensor, angle: Tensor, *, prev_scale: Tensor) -> Tensor:
    """Sub-cluster AdaCos scale ``s^(t)`` from ``s^(t-1)`` and one batch (Diss. Def. 3.4).

    Parameters
    ----------
    cos : Tensor, shape (batch, n_logits)
        Every similarity that enters the softmax (all centres of all classes, target included).
    angle : Tensor, shape (batch,)
        Per sample the (mixup-weighted) angle whose batch median is ``alpha^_med``.
    prev_scale : Tensor, scalar
        ``s^(t-1)``.

    Returns
    -------
    Tensor, scalar float64
        ``(sim_max + log B^_avg) / cos(min(pi/4, alpha^_med))`` with
        ``sim_max = max_{x, c} s^(t-1) * cos_xc`` (Eq. 40, the previous scale is inside it) and
        ``B^_avg = mean_x sum_c exp(s^(t-1) * cos_xc - sim_max)`` (Eq. 39), i.e. Eq. 38.
    """
    z = prev_scale.detach().to(torch.float64) * cos.detach().to(torch.float64)
    sim_max = z.max()
    b_avg = torch.exp(z - sim_max).sum(dim=1).mean()
    alpha_med = median(angle.detach().to(torch.float64))
    return (sim_max + torch.log(b_avg)) / torch.cos(alpha_med.clamp(max=math.pi / 4))


def store_scale(buffer: Tensor, new_scale: Tensor) -> None:
    """Write ``new_scale`` into the ``scale`` buffer, keeping the old value if it is not finite.

    A non-finite value only comes from non-finite embeddings (e.g. an fp16 overflow in a step
    that an AMP grad scaler then skips); it would otherwise poison every later step. ``where``
    avoids a host synchronisation.
    """
    new_scale = new_scale.to(buffer.dtype)
    buffer.copy_(torch.where(torch.isfinite(new_scale), new_scale, buffer))


def soft_target(target: Tensor, n_classes: int, batch: int, name: str = "target") -> Tensor:
    """Check a soft target matrix ``(batch, n_classes)``; integer class indices are one-hot coded."""
    if target.dim() == 1 and not torch.is_floating_point(target):
        if target.shape[0] != batch:
            raise ValueError(f"{name} has {target.shape[0]} rows, the embeddings {batch}")
        return F.one_hot(target.long(), n_classes).to(torch.float32)
    if target.dim() != 2 or target.shape != (batch, n_classes):
        raise ValueError(
            f"{name} must have shape (batch, {n_classes}) = ({batch}, {n_classes}) "
            f"(soft labels, rows summing to 1), got {tuple(target.shape)}"
        )
    return target if torch.is_floating_point(target) else target.to(torch.float32)


def soft_cross_entropy(log_p: Tensor, target: Tensor) -> Tensor:
    """Per-sample ``-sum_j target_j * log_p_j``, shape (batch,).

    ``log_p`` comes from a log-softmax of finite logits, so it is finite and a zero target
    contributes exactly 0.
    """
    return -(target.to(log_p.dtype) * log_p).sum(dim=-1)


class AdaptiveScaleLoss(nn.Module):
    """Base of the losses with the AdaCos scale: a float64 ``scale`` buffer that starts at
    ``s(0) = sqrt(2) * log(n_logits - 1)`` (Diss. Eq. 10 and 38), ``n_logits`` being the number of
    terms of the softmax (classes; classes x centres; keywords x positions)."""

    @property
    def n_logits(self) -> int:
        raise NotImplementedError

    @property
    def initial_scale(self) -> float:
        """``s(0) = sqrt(2) * log(n_logits - 1)``."""
        return math.sqrt(2.0) * math.log(self.n_logits - 1)

    def _register_scale(self) -> None:
        self.register_buffer("scale", torch.tensor(self.initial_scale, dtype=torch.float64))

    def reset_scale(self) -> None:
        """Set the scale back to ``s(0)`` (a fresh training run)."""
        with torch.no_grad():
            self.scale.fill_(self.initial_scale)


def make_centers(
    module: nn.Module, shape: tuple[int, ...], *, trainable: bool, seed: int | None
) -> None:
    """Register ``module.centers``: random unit vectors, a Parameter or (fixed) a buffer.

    Fixed centres (domain-generalising ASD, Diss. 5.3: non-trainable centres on the sphere) are
    drawn from ``torch.Generator().manual_seed(seed)`` with ``seed = 0`` when not given, so that
    they are reproducible; they are also saved in the state dict. Trainable centres use ``seed``
    when given and the global torch RNG otherwise.
    """
    generator = None
    if seed is not None or not trainable:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    centers = normalize(torch.randn(shape, generator=generator))
    if trainable:
        module.centers = nn.Parameter(centers)
    else:
        module.register_buffer("centers", centers)


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_embeddings(emb: Tensor, dim: int, ndim: int, shape_doc: str) -> None:
    if emb.dim() != ndim or emb.shape[-1] != dim:
        raise ValueError(
            f"embeddings must have shape {shape_doc} with D={dim}, got {tuple(emb.shape)}"
        )
    if emb.shape[0] == 0:
        raise ValueError("empty batch")
