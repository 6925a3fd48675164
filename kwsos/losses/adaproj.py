"""AdaProj: adaptively scaled angular margin subspace projections (Diss. Def. 5.1-5.2, Sec. 5.6).

Every class ``k`` owns a linear subspace ``span(C_k)`` of the embedding space, spanned by
``n_basis < D`` random basis vectors. The logit of class ``k`` is the cosine similarity between the
embedding and its orthogonal projection onto that subspace; with an orthonormal basis ``Q_k``
(``D x n_basis``) this is

    cos(e, P_k e) = <e, Q_k Q_k^T e> / (||e|| ||Q_k Q_k^T e||) = ||Q_k^T e|| / ||e||  in [0, 1],

i.e. the cosine of the angle between ``e`` and the subspace. By the remark after Def. 5.2,
``||e/||e|| - P_k e/||P_k e|| ||^2 = 2 (1 - cos(e, P_k e))``, so the softmax over ``s * cos`` equals
the softmax over ``-s/2`` times the squared distance of Eq. 55 (a constant shift per sample).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kwsos.losses._common import check_embeddings, check_positive, make_centers, normalize
from kwsos.losses.adacos import AdaCosSoftmax

__all__ = ["AdaProj", "orthonormal_basis", "subspace_cosine"]


def orthonormal_basis(vectors: Tensor) -> Tensor:
    """Orthonormal bases of the spans of per-class vector sets (reduced QR, differentiable).

    Parameters
    ----------
    vectors : Tensor, shape (n_classes, n_basis, dim)
        ``n_basis <= dim`` spanning vectors per class (random vectors are linearly independent
        with probability 1).

    Returns
    -------
    Tensor, shape (n_classes, dim, n_basis)
        Columns ``Q_k[:, i]`` orthonormal with ``span(Q_k) = span(vectors[k])``.
    """
    q, _ = torch.linalg.qr(vectors.transpose(-1, -2), mode="reduced")
    return q


def subspace_cosine(emb: Tensor, basis: Tensor) -> Tensor:
    """Cosine between each embedding and its orthogonal projection onto each subspace.

    Parameters
    ----------
    emb : Tensor, shape (batch, dim)
        Embeddings, not necessarily normalised.
    basis : Tensor, shape (n_classes, dim, n_basis)
        Orthonormal bases (see :func:`orthonormal_basis`).

    Returns
    -------
    Tensor, shape (batch, n_classes)
        ``||Q_k^T e|| / ||e||`` in ``[0, 1]``; 0 for a zero embedding or an embedding orthogonal
        to the subspace (where the projection is the zero vector).
    """
    coords = torch.einsum("bd,kdn->bkn", normalize(emb), basis.to(emb.dtype))
    return torch.linalg.vector_norm(coords, dim=-1)


class AdaProj(AdaCosSoftmax):
    """AdaProj loss (Diss. Def. 5.2): softmax over ``s~ * cos(e, P_span(C_k) e)`` with the AdaCos scale.

    Loss ``-1/B sum_x sum_k target_xk log softmax(s~ * cos(x, P_k x))_k`` (Eq. 56) with soft
    (mixup) targets. The scale is the dynamically adaptive scale of AdaCos (Diss. Def. 2.8, "where
    s~ is the dynamically adaptive scale parameter of the AdaCos loss"): ``s~(0) = sqrt(2)
    log(n_classes - 1)`` and ``s~(t) = log(B_avg) / cos(min(pi/4, alpha_med))`` computed with
    :func:`~kwsos.losses.adacos_scale` from the subspace cosines of the current batch, exactly as
    :class:`~kwsos.losses.AdaCos` does with its centre cosines (one logit per class, so no
    sub-cluster sum). Same update schedule as AdaCos: in training mode every call first updates
    ``scale`` without gradient, in eval mode the stored scale is used.

    Choices where the text is loose (documented deviations):

    * The basis vectors are orthonormalised (reduced QR) before projecting. Eq. 54 writes the
      projection as ``sum_c <e, c> c`` over the raw basis vectors, which is an orthogonal
      projection only for an orthonormal ``C`` -- the assumption of Lemma 5.3 and of the remark
      that random vectors are approximately orthogonal. With QR the logit depends only on the
      span, as Def. 5.1 intends, and equals ``||Q_k^T e|| / ||e||``.
    * Eq. 55 puts the scale both inside ``d_proj`` and in front of it in Eq. 56; it is applied
      once here, to the cosine (the remark after Def. 5.2 makes the two forms equivalent up to
      the factor ``-1/2`` absorbed into the scale).
    * Default ``trainable_centers=False``: the basis vectors are fixed random vectors, as the
      centres of the domain-generalising system they replace (Sec. 5.3, 5.6.3 "without adapting
      the centers"). The SSL head of Sec. 5.7 with AdaProj (Sec. 5.8) uses trainable ones.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 3`` (as for AdaCos: with 2 classes ``s~(0) = 0`` never moves).
    dim : int
        Embedding dimension ``D``.
    n_basis : int
        Subspace dimension ``|C_k| < D`` (32 in the dissertation, Fig. 24).
    trainable_centers : bool
        If False the basis vectors are fixed random unit vectors (a buffer), drawn with ``seed``.
    seed : int or None
        Seed for the basis initialisation (fixed bases: 0 when None).

    Attributes
    ----------
    centers : Tensor, shape (n_classes, n_basis, dim)
        The (unnormalised) basis vectors ``C_k``.
    scale : Tensor, scalar float64 buffer
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 256,
        n_basis: int = 32,
        *,
        trainable_centers: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_classes=n_classes, dim=dim, n_basis=n_basis)
        if n_classes < 3:
            raise ValueError(
                f"AdaProj needs n_classes >= 3, got {n_classes}: with 2 classes s0 = 0 and the "
                "AdaCos scale never changes"
            )
        if n_basis >= dim:
            raise ValueError(
                f"n_basis must be < dim (a {n_basis}-dimensional subspace of R^{dim} would "
                "contain every embedding)"
            )
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.n_basis = int(n_basis)
        self.trainable_centers = bool(trainable_centers)
        make_centers(
            self, (self.n_classes, self.n_basis, self.dim), trainable=trainable_centers, seed=seed
        )
        self._register_scale()

    def basis(self) -> Tensor:
        """Orthonormal bases of the class subspaces, shape (n_classes, dim, n_basis)."""
        centers = self.centers.to(torch.float32)
        if self.trainable_centers:
            return orthonormal_basis(centers)
        with torch.no_grad():
            return orthonormal_basis(centers)

    def cosine(self, emb: Tensor) -> Tensor:
        """Cosine between each embedding and its projection onto each class subspace.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)

        Returns
        -------
        Tensor, shape (batch, n_classes), values in [0, 1]
        """
        check_embeddings(emb, self.dim, 2, "(batch, D)")
        return subspace_cosine(emb, self.basis())

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, n_basis={self.n_basis}, "
            f"trainable_centers={self.trainable_centers}, scale={float(self.scale):.4g}"
        )
