"""AdaCos (Diss. Def. 2.8) and sub-cluster AdaCos (Diss. Def. 3.4).

Both losses hold their class centres, compute cosine similarities themselves (embeddings and
centres are L2-normalised inside, so the model does not normalise), take *soft* targets (mixup
mixes them; integer class indices are accepted and one-hot coded) and keep the dynamically
adaptive scale in a float64 buffer ``scale`` that is saved in the state dict.

Scale schedule (both losses, and TACos)
---------------------------------------
``scale`` starts at ``s(0) = s0``. Every call of ``forward`` while ``self.training`` is True is a
training step ``t >= 1``: under ``torch.no_grad()`` the new ``s(t)`` is computed from the stored
``s(t-1)`` and the *current* batch, stored, and then used in this step's softmax. This is what
the reference implementations do and what the proof of Diss. Thm. 3.5 states ("in each iteration
t > 0, s(t) is set to a fixed value before computing the gradient"). ``s0`` itself is therefore
only used to compute ``s(1)``. In eval mode the stored scale is used unchanged. No gradient flows
into the scale. A non-finite new value (non-finite embeddings) leaves the stored scale unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from kwsos.losses._common import (
    AdaptiveScaleLoss,
    adacos_scale,
    check_embeddings,
    check_positive,
    make_centers,
    normalize,
    soft_cross_entropy,
    soft_target,
    store_scale,
    subcluster_adacos_scale,
)

__all__ = ["AdaCos", "SubClusterAdaCos"]


class AdaCosSoftmax(AdaptiveScaleLoss):
    """One logit per class, ``s~ * cosine(emb)``, and the AdaCos scale update (Diss. Def. 2.8).

    Shared by :class:`AdaCos` (cosine to one centre per class) and
    :class:`~kwsos.losses.adaproj.AdaProj` (cosine to the projection onto a class subspace);
    a subclass defines ``cosine(emb) -> (batch, n_classes)`` and ``n_classes``.
    """

    n_classes: int

    def cosine(self, emb: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_logits(self) -> int:
        """``n_classes``: ``s~(0) = sqrt(2) * log(n_classes - 1)``."""
        return self.n_classes

    def log_probs(self, emb: Tensor) -> Tensor:
        """``log softmax(s * cos)`` with the stored scale (no update), shape (batch, n_classes)."""
        cos = self.cosine(emb)
        return torch.log_softmax(self.scale.to(cos.dtype) * cos, dim=-1)

    def forward(self, emb: Tensor, target: Tensor) -> Tensor:
        """Loss ``-1/B sum_x sum_j target_xj log softmax(s * cos_x)_j`` (Eq. 6 and 12), with the
        class similarities ``cos_x`` of :meth:`cosine`.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
            Embeddings, not necessarily normalised.
        target : Tensor, shape (batch, n_classes)
            Soft targets, rows summing to 1 (or integer class indices, shape (batch,)).

        Returns
        -------
        Tensor, scalar
        """
        cos = self.cosine(emb)
        target = soft_target(target, self.n_classes, emb.shape[0])
        if self.training:
            with torch.no_grad():
                store_scale(self.scale, adacos_scale(cos, target, prev_scale=self.scale))
        log_p = torch.log_softmax(self.scale.to(cos.dtype) * cos, dim=-1)
        return soft_cross_entropy(log_p, target).mean()


class AdaCos(AdaCosSoftmax):
    """AdaCos loss: softmax over ``s~ * cos`` with the dynamically adaptive scale (Diss. Def. 2.8).

    One centre per class, no margin. ``s~(0) = sqrt(2) * log(n_classes - 1)`` and for ``t >= 1``

        s~(t) = log(B_avg(t)) / cos(min(pi/4, alpha_med(t)))                     (Eq. 10)

    with ``B_avg(t)`` the batch mean of the summed ``exp(s~(t-1) * cos)`` of the non-target
    classes (Eq. 11) and ``alpha_med(t)`` the median angle to the target centre. Soft targets:
    each class's exponential term in ``B_avg`` is weighted by ``1 - target_j`` (one-hot: exactly
    the non-target sum; mixup: the target mass is excluded) and the angle is the target-weighted
    angle ``sum_j target_j * arccos(cos_j)``. The median of an even batch is the mean of the two
    middle values. See the module docstring for when the scale is updated.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 3`` (for ``C = 2``, ``s0 = sqrt(2) log 1 = 0`` and the scale
        never moves since ``B_avg = exp(0) = 1``; use :class:`SubClusterAdaCos` or
        :class:`~kwsos.losses.ArcFace` there).
    dim : int
        Embedding dimension ``D``.
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
        *,
        trainable_centers: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_classes=n_classes, dim=dim)
        if n_classes < 3:
            raise ValueError(
                f"AdaCos needs n_classes >= 3, got {n_classes}: with 2 classes s0 = sqrt(2)*log(1) "
                "= 0 and the scale never changes; use SubClusterAdaCos or ArcFace"
            )
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.trainable_centers = bool(trainable_centers)
        make_centers(self, (self.n_classes, self.dim), trainable=trainable_centers, seed=seed)
        self._register_scale()

    def cosine(self, emb: Tensor) -> Tensor:
        """Cosine similarities to the class centres.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)

        Returns
        -------
        Tensor, shape (batch, n_classes)
        """
        check_embeddings(emb, self.dim, 2, "(batch, D)")
        return normalize(emb) @ normalize(self.centers.to(emb.dtype)).T

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, "
            f"trainable_centers={self.trainable_centers}, scale={float(self.scale):.4g}"
        )


class SubClusterAdaCos(AdaptiveScaleLoss):
    """Sub-cluster AdaCos loss (Diss. Def. 3.4): several centres per class, summed probabilities.

    ``P(class j | x) = sum_{c in C_j} softmax(s^ * cos(x, .))_c`` over all
    ``n_classes * n_centers`` centres (Eq. 42), computed as ``logsumexp`` of the centre
    log-probabilities. Loss: ``-1/B sum_x sum_j target_xj log P(j | x)`` (Eq. 41).

    Scale: ``s^(0) = sqrt(2) * log(n_classes * n_centers - 1)`` and for ``t >= 1``

        s^(t) = (sim_max(t) + log B^_avg(t)) / cos(min(pi/4, alpha^_med(t)))      (Eq. 38)

    where ``B^_avg`` sums ``exp(s^(t-1) * cos - sim_max)`` over *all* centres, the target's
    included (Eq. 39), and ``sim_max = max s^(t-1) * cos`` over the batch and all centres (Eq. 40;
    it already contains the previous scale). ``alpha^_med`` is the median over the batch of the
    mixup-weighted angle ``sum_j target_j * angle_j`` (for a mixed sample
    ``lambda * angle_{class(x1)} + (1 - lambda) * angle_{class(x2)}``), with ``angle_j``:

    * ``median_angle="nearest"`` (default): the angle to the *nearest* centre of class ``j``.
      The angle to "the class" in the sense of the inference rule ``cos(x, C_j) = max_c cos(x, c)``;
      the denominator then follows training as in AdaCos.
    * ``median_angle="sum"``: the *sum* of the angles to all ``n_centers`` centres of class ``j``,
      literally the sums written in Def. 3.4 and what the public reference code computes. By
      the triangle inequality on the sphere the sum is at least the angle between any two
      centres of the class, so unless all of a class's centres lie within pi/4 of each other
      it exceeds pi/4 and the denominator is pinned at ``cos(pi/4)``.

    With ``n_centers = 1`` both choices coincide. See the :mod:`kwsos.losses.adacos` docstring
    for when the scale is updated.

    Stability: the loss must be trained with mixup; without it the scale grows exponentially
    (Diss. Lemma 3.6). Mixup is not a guarantee either. The largest term of ``B^_avg`` is
    ``exp(0) = 1``, so ``log B^_avg >= -log(batch)`` and

        s^(t) >= (s^(t-1) * cos_max - log(batch)) / cos(min(pi/4, alpha^_med))

    with ``cos_max`` the largest cosine in the batch: while ``cos_max`` stays above
    ``cos(min(pi/4, alpha^_med))`` (with ``"sum"``: above ``cos(pi/4) = 0.707``) the scale grows
    geometrically. In toy runs with mixup (3-8 classes, linear model, Adam) it stayed below 30
    for ``D = 16`` with learning rate 1e-3, but diverged for ``D = 4`` and, for some seeds,
    for ``D = 16`` with learning rate 1e-2. Watch ``scale`` during training.

    Parameters
    ----------
    n_classes : int
        Number of classes (``n_classes * n_centers >= 2``).
    dim : int
        Embedding dimension ``D``.
    n_centers : int
        Centres per class ``N_centers`` (1 for the few-shot open-set classifier, Diss. 6.2.2).
    trainable_centers : bool
        If False the centres are fixed random unit vectors (a buffer), drawn with ``seed``.
    median_angle : {"nearest", "sum"}
        How the per-class angle of the median is taken, see above.
    seed : int or None
        Seed for the centre initialisation (fixed centres: 0 when None).

    Attributes
    ----------
    centers : Tensor, shape (n_classes, n_centers, dim)
    scale : Tensor, scalar float64 buffer
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 128,
        n_centers: int = 16,
        trainable_centers: bool = True,
        median_angle: Literal["nearest", "sum"] = "nearest",
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_classes=n_classes, dim=dim, n_centers=n_centers)
        if n_classes * n_centers < 2:
            raise ValueError("SubClusterAdaCos needs n_classes * n_centers >= 2")
        if median_angle not in ("nearest", "sum"):
            raise ValueError(f"median_angle must be 'nearest' or 'sum', got {median_angle!r}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.n_centers = int(n_centers)
        self.trainable_centers = bool(trainable_centers)
        self.median_angle = median_angle
        make_centers(
            self,
            (self.n_classes, self.n_centers, self.dim),
            trainable=trainable_centers,
            seed=seed,
        )
        self._register_scale()

    @property
    def n_logits(self) -> int:
        """``n_classes * n_centers``: ``s^(0) = sqrt(2) * log(n_classes * n_centers - 1)``."""
        return self.n_classes * self.n_centers

    def center_cosine(self, emb: Tensor) -> Tensor:
        """Cosine similarities to every centre, shape (batch, n_classes, n_centers)."""
        check_embeddings(emb, self.dim, 2, "(batch, D)")
        centers = normalize(self.centers.to(emb.dtype)).reshape(-1, self.dim)
        return (normalize(emb) @ centers.T).reshape(-1, self.n_classes, self.n_centers)

    def cosine(self, emb: Tensor) -> Tensor:
        """Cosine similarity to each class: the max over its centres, shape (batch, n_classes)."""
        return self.center_cosine(emb).amax(dim=-1)

    def _class_log_probs(self, cos: Tensor) -> Tensor:
        logits = self.scale.to(cos.dtype) * cos.reshape(cos.shape[0], -1)
        log_p = torch.log_softmax(logits, dim=-1).reshape(cos.shape)
        return torch.logsumexp(log_p, dim=-1)  # log of the summed centre probabilities, Eq. 42

    def log_probs(self, emb: Tensor) -> Tensor:
        """``log P(class | x)`` (Eq. 42) with the stored scale (no update), shape (batch, n_classes)."""
        return self._class_log_probs(self.center_cosine(emb))

    def mixup_angles(self, cos: Tensor, target: Tensor) -> Tensor:
        """Per-sample mixup-weighted angle ``sum_j target_j * angle_j``, shape (batch,).

        Parameters
        ----------
        cos : Tensor, shape (batch, n_classes, n_centers)
        target : Tensor, shape (batch, n_classes)
        """
        angles = torch.arccos(cos.detach().to(torch.float64).clamp(-1.0, 1.0))
        per_class = angles.amin(dim=-1) if self.median_angle == "nearest" else angles.sum(dim=-1)
        return (target.to(torch.float64) * per_class).sum(dim=-1)

    def forward(self, emb: Tensor, target: Tensor) -> Tensor:
        """Loss ``-1/B sum_x sum_j target_xj log P(j | x)`` (Eq. 41-42).

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
            Embeddings, not necessarily normalised.
        target : Tensor, shape (batch, n_classes)
            Soft (mixup) targets, rows summing to 1 (or integer class indices, shape (batch,)).

        Returns
        -------
        Tensor, scalar
        """
        cos = self.center_cosine(emb)
        target = soft_target(target, self.n_classes, emb.shape[0])
        if self.training:
            with torch.no_grad():
                new = subcluster_adacos_scale(
                    cos.reshape(cos.shape[0], -1),
                    self.mixup_angles(cos, target),
                    prev_scale=self.scale,
                )
                store_scale(self.scale, new)
        return soft_cross_entropy(self._class_log_probs(cos), target).mean()

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, n_centers={self.n_centers}, "
            f"trainable_centers={self.trainable_centers}, median_angle={self.median_angle!r}, "
            f"scale={float(self.scale):.4g}"
        )
