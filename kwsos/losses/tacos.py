"""TACos: temporal AdaCos over keywords and relative positions (Diss. Def. 6.4, Sec. 6.3.5).

Every segment of a keyword shot (``T`` frames of ``D``-dimensional embeddings) is classified
jointly by keyword and by relative position (:func:`kwsos.losses.position_labels`). There is one
set of ``n_centers`` centres per (keyword, position) pair.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kwsos.losses._common import (
    AdaptiveScaleLoss,
    check_embeddings,
    check_positive,
    make_centers,
    normalize,
    soft_cross_entropy,
    soft_target,
    store_scale,
    subcluster_adacos_scale,
)

__all__ = ["TACos"]


class TACos(AdaptiveScaleLoss):
    """TACos loss ``L_tac = L_kw + L_pos`` (Diss. Def. 6.4, Eq. 69-73).

    * Similarity of a segment ``e = (e_1, ..., e_T)`` to keyword ``k`` at position ``p``
      (Eq. 69): ``sim(e, k, p) = mean_t max_{c in C[k, p]} cos(e_t, c)``.
    * One softmax over all ``n_keywords * n_positions`` logits ``s^ * sim`` (Eq. 70);
      ``log P(k) = logsumexp_p log softmax``, ``log P(p) = logsumexp_k log softmax``.
    * ``forward`` returns ``mean_x -(lab_kw . log P(kw) + lab_pos . log P(pos))`` over the batch
      rows (Eq. 71-73). Each row is one segment; averaging first over the segments of a sample
      and then over samples (Eq. 73) is the trainer's business (weight or sample the rows).

    Adaptive scale: the sub-cluster AdaCos scale (Diss. Def. 3.4, Eq. 38-40) where the
    "centres" of Eq. 39 are the ``n_keywords * n_positions`` similarities that enter the softmax
    (the max over the ``n_centers`` centres is already inside ``sim``):
    ``s^(0) = sqrt(2) * log(n_keywords * n_positions - 1)``;
    ``sim_max = max s^(t-1) * sim``, ``B^_avg = mean_x sum_{k,p} exp(s^(t-1) * sim - sim_max)``
    and ``alpha^_med`` = median over the batch of ``sum_{k,p} w_kp * arccos(sim_kp)`` with the
    joint target weight ``w = outer(lab_kw, lab_pos)``. For one keyword and one position
    distribution this outer product is the exact joint target; under mixup of two segments with
    different positions it also puts mass on the "crossed" pairs (keyword of one, position of
    the other), so it is an approximation of the mixed joint target. The scale is updated exactly
    as for the other AdaCos losses (see :mod:`kwsos.losses.adacos`): in training mode, from
    ``s^(t-1)`` and the current batch, then used in this step's softmax. Train it with mixup; the
    stability remarks of :class:`~kwsos.losses.SubClusterAdaCos` apply.

    With ``n_positions = 1`` this is the keyword-only loss ``L_kw`` (the "L_kw only" baseline,
    the two-dimensional AdaCos of the ITG 2021 paper): ``log P(pos) = log 1`` and ``L_pos`` is
    exactly 0 (it is not computed).

    Parameters
    ----------
    n_keywords : int
        Keyword classes ``N_kw`` (including "no speech" and reversed-keyword classes, if used).
    n_positions : int
        Position classes ``N_pos`` (``n_keywords * n_positions >= 2``).
    dim : int
        Embedding dimension ``D``.
    n_centers : int
        Centres per (keyword, position) pair, ``N_centers``.
    trainable_centers : bool
        If False the centres are fixed random unit vectors (a buffer), drawn with ``seed``.
    seed : int or None
        Seed for the centre initialisation (fixed centres: 0 when None).

    Attributes
    ----------
    centers : Tensor, shape (n_keywords, n_positions, n_centers, dim)
    scale : Tensor, scalar float64 buffer
    """

    def __init__(
        self,
        n_keywords: int,
        n_positions: int,
        dim: int = 128,
        n_centers: int = 16,
        *,
        trainable_centers: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_keywords=n_keywords, n_positions=n_positions, dim=dim, n_centers=n_centers)
        if n_keywords * n_positions < 2:
            raise ValueError("TACos needs n_keywords * n_positions >= 2")
        self.n_keywords = int(n_keywords)
        self.n_positions = int(n_positions)
        self.dim = int(dim)
        self.n_centers = int(n_centers)
        self.trainable_centers = bool(trainable_centers)
        make_centers(
            self,
            (self.n_keywords, self.n_positions, self.n_centers, self.dim),
            trainable=trainable_centers,
            seed=seed,
        )
        self._register_scale()

    @property
    def n_logits(self) -> int:
        """``n_keywords * n_positions``: ``s^(0) = sqrt(2) * log(n_keywords * n_positions - 1)``."""
        return self.n_keywords * self.n_positions

    def similarities(self, emb: Tensor) -> Tensor:
        """``sim(e, k, p) = mean_t max_c cos(e_t, c)`` (Eq. 69).

        Parameters
        ----------
        emb : Tensor, shape (batch, n_frames, dim)
            One segment of ``n_frames`` frame embeddings per row, not necessarily normalised.

        Returns
        -------
        Tensor, shape (batch, n_keywords, n_positions)
        """
        check_embeddings(emb, self.dim, 3, "(batch, n_frames, D)")
        batch, n_frames, _ = emb.shape
        centers = normalize(self.centers.to(emb.dtype)).reshape(-1, self.dim)
        cos = normalize(emb).reshape(-1, self.dim) @ centers.T
        cos = cos.reshape(batch, n_frames, self.n_keywords, self.n_positions, self.n_centers)
        return cos.amax(dim=-1).mean(dim=1)

    def _joint_log_probs(self, sim: Tensor) -> Tensor:
        logits = self.scale.to(sim.dtype) * sim.reshape(sim.shape[0], -1)
        return torch.log_softmax(logits, dim=-1).reshape(sim.shape)

    def _marginals(self, log_p: Tensor) -> tuple[Tensor, Tensor]:
        log_p_kw = torch.logsumexp(log_p, dim=2)
        if self.n_positions == 1:
            log_p_pos = torch.zeros_like(log_p[:, 0, :])  # P(pos) = 1 exactly: L_pos = 0
        else:
            log_p_pos = torch.logsumexp(log_p, dim=1)
        return log_p_kw, log_p_pos

    def log_probs(self, emb: Tensor) -> Tensor:
        """Joint ``log softmax(s * sim)`` (Eq. 70), stored scale, shape (batch, n_keywords, n_positions)."""
        return self._joint_log_probs(self.similarities(emb))

    def keyword_log_probs(self, emb: Tensor) -> Tensor:
        """``log P(keyword)`` = logsumexp over positions, stored scale, shape (batch, n_keywords)."""
        return self._marginals(self.log_probs(emb))[0]

    def position_log_probs(self, emb: Tensor) -> Tensor:
        """``log P(position)`` = logsumexp over keywords, stored scale, shape (batch, n_positions)."""
        return self._marginals(self.log_probs(emb))[1]

    def joint_angles(self, sim: Tensor, lab_kw: Tensor, lab_pos: Tensor) -> Tensor:
        """Per-segment target-weighted angle ``sum_{k,p} lab_kw[k] lab_pos[p] arccos(sim_kp)``.

        Parameters
        ----------
        sim : Tensor, shape (batch, n_keywords, n_positions)
        lab_kw : Tensor, shape (batch, n_keywords)
        lab_pos : Tensor, shape (batch, n_positions)

        Returns
        -------
        Tensor, shape (batch,), float64
        """
        angles = torch.arccos(sim.detach().to(torch.float64).clamp(-1.0, 1.0))
        weight = lab_kw.to(torch.float64)[:, :, None] * lab_pos.to(torch.float64)[:, None, :]
        return (weight * angles).sum(dim=(1, 2))

    def forward(self, emb: Tensor, lab_kw: Tensor, lab_pos: Tensor) -> Tensor:
        """``mean_x -(lab_kw . log P(kw) + lab_pos . log P(pos))`` over segments (Eq. 71-73).

        Parameters
        ----------
        emb : Tensor, shape (batch, n_frames, dim)
            One segment per row.
        lab_kw : Tensor, shape (batch, n_keywords)
            Soft keyword targets (rows summing to 1; integer indices, shape (batch,), accepted).
        lab_pos : Tensor, shape (batch, n_positions)
            Soft relative-position targets (:func:`~kwsos.losses.position_labels`,
            :func:`~kwsos.losses.uniform_positions`; integer indices accepted).

        Returns
        -------
        Tensor, scalar
        """
        sim = self.similarities(emb)
        lab_kw = soft_target(lab_kw, self.n_keywords, emb.shape[0], "lab_kw")
        lab_pos = soft_target(lab_pos, self.n_positions, emb.shape[0], "lab_pos")
        if self.training:
            with torch.no_grad():
                new = subcluster_adacos_scale(
                    sim.reshape(sim.shape[0], -1),
                    self.joint_angles(sim, lab_kw, lab_pos),
                    prev_scale=self.scale,
                )
                store_scale(self.scale, new)
        log_p_kw, log_p_pos = self._marginals(self._joint_log_probs(sim))
        loss = soft_cross_entropy(log_p_kw, lab_kw)
        if self.n_positions > 1:
            loss = loss + soft_cross_entropy(log_p_pos, lab_pos)
        return loss.mean()

    def extra_repr(self) -> str:
        return (
            f"n_keywords={self.n_keywords}, n_positions={self.n_positions}, dim={self.dim}, "
            f"n_centers={self.n_centers}, trainable_centers={self.trainable_centers}, "
            f"scale={float(self.scale):.4g}"
        )
