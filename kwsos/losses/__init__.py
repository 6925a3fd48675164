"""Angular margin losses with class centres (Diss. 2.4.1, 3.4, 6.3.5).

* :class:`ArcFace` — fixed scale and margin (Def. 2.7).
* :class:`AdaCos` — dynamically adaptive scale, one centre per class (Def. 2.8).
* :class:`SubClusterAdaCos` — several centres per class, summed probabilities (Def. 3.4).
* :class:`AdaProj` — AdaCos scale, logits = cosine to the projection onto a class subspace
  (Def. 5.2).
* :class:`ArcMix`, :class:`NoisyArcMix` — mixup-aware ArcFace (Choi et al. 2024).
* :class:`SerialOEBCE` — serial outlier exposure with two binary cross-entropies (Kuroyanagi et
  al. 2024).
* :class:`SelfSupervisedLoss` — StatEx / FeatEx self-supervision around a main loss (Sec. 5.7).
* :class:`TACos` — keyword x relative-position softmax on temporal embeddings (Def. 6.4), with
  the position targets of :func:`position_labels` / :func:`uniform_positions` (Def. 6.3).

All losses normalise embeddings and centres themselves, take soft (mixup) target matrices and
keep their scale in a float64 buffer ``scale``.
"""

from __future__ import annotations

from kwsos.losses._common import adacos_scale, subcluster_adacos_scale
from kwsos.losses.adacos import AdaCos, SubClusterAdaCos
from kwsos.losses.adaproj import AdaProj
from kwsos.losses.arcface import ArcFace
from kwsos.losses.arcmix import ArcMix, NoisyArcMix
from kwsos.losses.position import position_labels, uniform_positions
from kwsos.losses.serial_oe import SerialOEBCE
from kwsos.losses.ssl import SelfSupervisedLoss
from kwsos.losses.tacos import TACos

__all__ = [
    "AdaCos",
    "AdaProj",
    "ArcFace",
    "ArcMix",
    "NoisyArcMix",
    "SelfSupervisedLoss",
    "SerialOEBCE",
    "SubClusterAdaCos",
    "TACos",
    "adacos_scale",
    "position_labels",
    "subcluster_adacos_scale",
    "uniform_positions",
]
