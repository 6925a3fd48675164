"""ArcMix and Noisy-ArcMix: ArcFace combined with mixup (Choi & Choi 2024; SPEC Sec. 3).

For a mixed sample ``x_ij = lam x_i + (1 - lam) x_j`` with labels ``y_i, y_j``:

* ArcMix:       ``lam * L_AF(x_ij, y_i) + (1 - lam) * L_AF(x_ij, y_j)``, each ArcFace term with the
  full margin ``m`` on *its own* label's class (two softmaxes with different margins).
* Noisy-ArcMix: the same two cross-entropy terms, but both computed from *one* softmax whose margin
  sits only on the dominant label's class (``y_i`` if ``lam > 1/2`` else ``y_j``): the margins are
  "inconsistent" with the mixed label, which pushes up the probability of the minor class.

Both losses take the soft mixed target ``t = lam e_i + (1 - lam) e_j`` that
:func:`kwsos.augment.mixup` produces: the term weights are the non-zero entries ``t_k`` and the
dominant class is ``argmax_k t_k``. A one-hot target (no mixup, or ``i`` and ``j`` of the same
class) reduces both to plain ArcFace. Reference hyper-parameters: ``s = 30``, ``m = 0.7``,
``lam ~ Beta(0.5, 0.5)``; the reference draws one ``lam`` per batch, :func:`kwsos.augment.mixup`
one per sample (pass ``alpha=`` :attr:`ArcMix.mixup_alpha`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kwsos.losses._common import soft_cross_entropy, soft_target
from kwsos.losses.arcface import _COS_CLAMP, ArcFace

__all__ = ["ArcMix", "NoisyArcMix", "dominant_target"]


def dominant_target(target: Tensor) -> Tensor:
    """One-hot of ``argmax`` of each row (the dominant mixup label), same shape and dtype.

    Ties (``lam = 1/2`` exactly) go to the lower class index.
    """
    return torch.zeros_like(target).scatter_(1, target.argmax(dim=1, keepdim=True), 1.0)


class ArcMix(ArcFace):
    """ArcMix loss: the mixup-weighted sum of ArcFace losses, each with the margin on its own label.

    ``L = -1/B sum_x sum_k t_xk log softmax(s * cos(theta_x + m e_k))_k``: for every class ``k``
    with ``t_xk > 0`` one softmax whose margin is on class ``k`` only. With two labels this is
    exactly ``lam * L_AF(x, y_i) + (1 - lam) * L_AF(x, y_j)``; soft targets with more non-zero
    entries are handled the same way (one term per entry). Plain ``cos(theta + m)`` as in
    :class:`~kwsos.losses.ArcFace` (no "easy margin" or ``theta + m > pi`` correction).

    Inference (:meth:`cosine`, :meth:`log_probs`) is inherited from ArcFace (no margin).

    Parameters
    ----------
    n_classes, dim, scale, margin, trainable_centers, seed
        As for :class:`~kwsos.losses.ArcFace`; defaults are the reference ``s = 30``, ``m = 0.7``.
    """

    #: ``alpha`` of the ``Beta(alpha, alpha)`` mixing coefficient in the reference implementation.
    mixup_alpha: float = 0.5

    def __init__(
        self,
        n_classes: int,
        dim: int = 128,
        scale: float = 30.0,
        margin: float = 0.7,
        *,
        trainable_centers: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            n_classes, dim, scale, margin, trainable_centers=trainable_centers, seed=seed
        )

    def forward(self, emb: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        """ArcMix loss.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
        target : Tensor, shape (batch, n_classes)
            Soft (mixup) targets ``lam e_i + (1 - lam) e_j``, rows summing to 1 (or integer
            class indices, shape (batch,)).

        Returns
        -------
        Tensor, scalar
        """
        cos = self.cosine(emb)
        target = soft_target(target, self.n_classes, emb.shape[0]).to(cos.dtype)
        s = self.scale.to(cos.dtype)
        plain = s * cos
        with_margin = s * torch.cos(torch.arccos(cos.clamp(-_COS_CLAMP, _COS_CLAMP)) + self.margin)
        # One softmax per active label: the r largest target entries of every row, r = the
        # largest number of non-zero entries in the batch (2 for mixup); padding terms have
        # weight 0.
        r = max(int((target != 0).sum(dim=1).max()), 1)
        weight, label = target.topk(r, dim=1)  # (B, r)
        logits = plain.unsqueeze(1).repeat(1, r, 1)  # (B, r, C)
        logits.scatter_(2, label.unsqueeze(2), with_margin.gather(1, label).unsqueeze(2))
        log_p = torch.log_softmax(logits, dim=-1).gather(2, label.unsqueeze(2)).squeeze(2)
        return -(weight * log_p).sum(dim=1).mean()


class NoisyArcMix(ArcMix):
    """Noisy-ArcMix loss: mixup cross-entropy with the margin on the dominant label only.

    ``L = -1/B sum_x sum_k t_xk log softmax(s * cos(theta_x + m d_x))_k`` with ``d_x`` the one-hot
    of ``argmax_k t_xk`` -- i.e. ``lam * CE(z, y_i) + (1 - lam) * CE(z, y_j)`` on one set of logits
    ``z`` whose margin is on the dominant label's class in *both* terms ("inconsistent angular
    margins"). Equivalent to ``ArcFace(emb, t, margin_target=dominant_target(t))``.
    """

    def forward(self, emb: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        """Noisy-ArcMix loss; arguments and return value as :meth:`ArcMix.forward`."""
        cos = self.cosine(emb)
        target = soft_target(target, self.n_classes, emb.shape[0]).to(cos.dtype)
        theta = torch.arccos(cos.clamp(-_COS_CLAMP, _COS_CLAMP))
        logits = self.scale.to(cos.dtype) * torch.cos(theta + self.margin * dominant_target(target))
        return soft_cross_entropy(torch.log_softmax(logits, dim=-1), target).mean()
