"""Outlier exposure with two binary cross-entropies (Kuroyanagi et al. 2024; SPEC Sec. 3).

The serial approach trains an embedding by outlier exposure (OE) and then models the normal
embeddings (inlier modelling: GMM / kNN / LOF in :mod:`kwsos.backends`). Only the abstract of the
paper is available to us; it names two binary cross-entropies trained jointly:

1. a *product* loss that "classifies the sound of the target machine to which product it is
   emitted from" -- for the case where normal and pseudo-anomalous data are very similar (other
   sections / products of the same machine type);
2. a *machine* loss that "identifies whether the sound is emitted from the target machine or not"
   -- for the case where they are very different (clips of other machine types).

Reading implemented here: two linear sigmoid heads on the (L2-normalised) embedding,

* ``machine`` head, ``n_machines`` logits: logit ``m`` answers "is this a clip of machine type
  ``m``?"; positive for the clip's own type, all other machine types act as outliers;
* ``section`` head, ``n_sections`` logits (sections / products / attribute classes, indexed
  globally): logit ``k`` answers "is this a clip of section ``k``?". The negatives of a clip are
  the other sections of *its own machine type* when ``section_machine`` (the machine type of
  every section) is given -- the "too similar" pseudo-anomalies of the abstract -- and all other
  sections otherwise.

Loss = ``machine_weight * mean BCE(machine) + section_weight * mean BCE(section)``, each the mean
over the batch and the (valid) logits. Soft (mixup) targets are used as BCE targets as they are.
Inference: :meth:`SerialOEBCE.score_samples` gives ``log sigma(section_k) + log sigma(machine_m)``
for a clip's claimed section (higher = more normal); the embedding itself goes to the inlier model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwsos.losses._common import check_embeddings, check_positive, normalize, soft_target

__all__ = ["SerialOEBCE"]


class SerialOEBCE(nn.Module):
    """Two binary cross-entropies for outlier exposure: machine-type head and section head.

    Parameters
    ----------
    n_machines : int
        Number of machine types (``>= 1``; with one type the machine BCE only sees positives).
    n_sections : int
        Number of sections / products / attribute classes over all machine types.
    dim : int
        Embedding dimension ``D``.
    section_machine : sequence of int, optional
        Machine type of every section, length ``n_sections``. When given, the section BCE of a
        clip only covers the sections of the machine type(s) its machine target carries mass for
        (plus its own target sections).
    normalize_embeddings : bool
        L2-normalise the embeddings before the heads (the embedding lives on the hypersphere the
        inlier model sees).
    machine_weight, section_weight : float
        Weights of the two losses.

    Attributes
    ----------
    machine_head : nn.Linear, (D -> n_machines)
    section_head : nn.Linear, (D -> n_sections)
    section_machine : Tensor, shape (n_sections,) int64 buffer (-1 when not given)
    """

    def __init__(
        self,
        n_machines: int,
        n_sections: int,
        dim: int = 128,
        *,
        section_machine: list[int] | Tensor | None = None,
        normalize_embeddings: bool = True,
        machine_weight: float = 1.0,
        section_weight: float = 1.0,
    ) -> None:
        super().__init__()
        check_positive(n_machines=n_machines, n_sections=n_sections, dim=dim)
        if machine_weight < 0 or section_weight < 0 or machine_weight + section_weight <= 0:
            raise ValueError("machine_weight and section_weight must be >= 0, not both 0")
        self.n_machines = int(n_machines)
        self.n_sections = int(n_sections)
        self.dim = int(dim)
        self.normalize_embeddings = bool(normalize_embeddings)
        self.machine_weight = float(machine_weight)
        self.section_weight = float(section_weight)
        self.machine_head = nn.Linear(self.dim, self.n_machines)
        self.section_head = nn.Linear(self.dim, self.n_sections)
        if section_machine is None:
            mapping = torch.full((self.n_sections,), -1, dtype=torch.long)
        else:
            mapping = torch.as_tensor(section_machine, dtype=torch.long).reshape(-1)
            if mapping.numel() != self.n_sections:
                raise ValueError(
                    f"section_machine must have {self.n_sections} entries, got {mapping.numel()}"
                )
            if (mapping < 0).any() or (mapping >= self.n_machines).any():
                raise ValueError(f"section_machine entries must be in [0, {self.n_machines})")
        self.register_buffer("section_machine", mapping)

    def logits(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        """Machine and section logits, shapes (batch, n_machines) and (batch, n_sections)."""
        check_embeddings(emb, self.dim, 2, "(batch, D)")
        x = normalize(emb) if self.normalize_embeddings else emb
        return self.machine_head(x), self.section_head(x)

    def log_probs(self, emb: Tensor) -> Tensor:
        """``log sigma(section logits)``, shape (batch, n_sections): log-probability of "normal
        clip of section k" for every section (higher = more normal)."""
        return F.logsigmoid(self.logits(emb)[1])

    def machine_log_probs(self, emb: Tensor) -> Tensor:
        """``log sigma(machine logits)``, shape (batch, n_machines)."""
        return F.logsigmoid(self.logits(emb)[0])

    def score_samples(self, emb: Tensor, section: Tensor) -> Tensor:
        """Normality score of each clip for its section: ``log sigma(z_sec) + log sigma(z_mach)``.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
        section : Tensor, shape (batch,) int
            Section of every clip; its machine type is ``section_machine[section]`` (the machine
            term is left out when no mapping was given).

        Returns
        -------
        Tensor, shape (batch,)
            Higher = more normal.
        """
        machine_logits, section_logits = self.logits(emb)
        section = section.long().reshape(-1, 1)
        score = F.logsigmoid(section_logits.gather(1, section)).squeeze(1)
        machine = self.section_machine[section.squeeze(1)]
        if (machine >= 0).all():
            score = score + F.logsigmoid(machine_logits.gather(1, machine.unsqueeze(1))).squeeze(1)
        return score

    def forward(self, emb: Tensor, machine_target: Tensor, section_target: Tensor) -> Tensor:
        """Weighted sum of the machine BCE and the section BCE.

        Parameters
        ----------
        emb : Tensor, shape (batch, dim)
        machine_target : Tensor, shape (batch, n_machines)
            One-hot / soft machine-type targets (or integer indices, shape (batch,)).
        section_target : Tensor, shape (batch, n_sections)
            One-hot / soft section targets (or integer indices, shape (batch,)).

        Returns
        -------
        Tensor, scalar
        """
        batch = emb.shape[0]
        machine_logits, section_logits = self.logits(emb)
        machine_t = soft_target(machine_target, self.n_machines, batch, "machine_target")
        section_t = soft_target(section_target, self.n_sections, batch, "section_target")
        machine_loss = F.binary_cross_entropy_with_logits(
            machine_logits, machine_t.to(machine_logits.dtype)
        )
        bce = F.binary_cross_entropy_with_logits(
            section_logits, section_t.to(section_logits.dtype), reduction="none"
        )
        if (self.section_machine >= 0).all():
            # Only the sections of the clip's own machine type (mixup: of either type it mixes).
            mask = (machine_t.to(section_logits.dtype) @ self._membership(section_logits)) > 0
            mask = mask | (section_t > 0)
            section_loss = (bce * mask).sum() / mask.sum().clamp_min(1)
        else:
            section_loss = bce.mean()
        return self.machine_weight * machine_loss + self.section_weight * section_loss

    def _membership(self, like: Tensor) -> Tensor:
        """(n_machines, n_sections) 0/1 matrix: section k belongs to machine type m."""
        return F.one_hot(self.section_machine, self.n_machines).T.to(like.dtype)

    def extra_repr(self) -> str:
        return (
            f"n_machines={self.n_machines}, n_sections={self.n_sections}, dim={self.dim}, "
            f"machine_weight={self.machine_weight}, section_weight={self.section_weight}"
        )
