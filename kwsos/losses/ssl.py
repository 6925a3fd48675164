"""Self-supervision for anomalous sound detection: StatEx and FeatEx (Diss. Sec. 5.7).

The auxiliary classification task of the ASD embedding model (machine x section x attributes,
``C`` classes) is made harder by two self-supervised augmentations that create pseudo-anomalous
classes:

* **StatEx** (statistics exchange, variant of Diss. Def. 5.5): the time-frequency input of sample
  ``x1`` gets the first- and second-order statistics of a partner ``x2``,
  ``x_new = (x1 - mu1) / sigma1 * sigma2 + mu2``; label ``(0, 0.5 y1, 0.5 y2)`` in ``3C`` classes,
  ``(y1, 0, 0)`` when not applied (Eq. 60-61). Applied with probability 0.5 per sample, only to the
  spectrogram branch (the DFT branch input is left alone).
* **FeatEx** (feature exchange, Diss. Def. 5.6): the embedding ``(e1^1, e1^2)`` of a two-branch
  model becomes ``(e1^1, e2^2)`` -- the second branch's embedding comes from the partner; label
  ``(0, 0.5 y1, 0.5 y2)`` in ``3C`` classes, ``(y1, 0, 0)`` when not applied, probability 0.5.
* Both together (Sec. 5.7.2): the FeatEx rule is applied to the ``3C`` StatEx labels, giving
  ``9C`` classes, e.g. a sample with both: ``(0_3C, 0.5 y_stat(x1), 0.5 y_stat(x2))``.

Total loss (Sec. 5.7.2, ssl4asd paper Sec. 3.4): ``L_main(e, y_mix) + L_ssl(e_new, y_new)`` with
equal weights. ``L_main`` is the regular loss on the ``C`` classes with *fixed* centres and the
mixed-up labels; ``L_ssl`` has ``3C`` or ``9C`` classes and *trainable* centres. Mixup
(``lambda ~ U(0, 1)``) is applied first, with probability 0.5 when any SSL approach is on and 1
otherwise. Inference uses the plain embedding ``model(wave)`` (no augmentation).

StatEx axis (checked against the dissertation; this disagrees with SPEC Sec. 8)
-------------------------------------------------------------------------------
Def. 5.4 names the variant after the axis that *remains*: statistics over the time axis (one
``mu, sigma`` per frequency bin) is *frequency* StatEx, statistics over the frequency axis (one
``mu, sigma`` per frame) is *temporal* StatEx. The text then says: "Applying TMN sets the temporal
mean of each sample to zero and thus impedes using frequency StatEx. Therefore, only temporal
StatEx is applied" (the ssl4asd paper: "we applied StatEx to the frequency axis, i.e. we only used
temporal StatEx"), and the ablation "no TMN and full StatEx" is worse. The reference code's
per-frame statistics over frequency therefore *are* the published method. The default here is
``statex_axis="temporal"`` (per-frame statistics over frequency, the paper's choice with TMN);
``"frequency"`` (per-bin statistics over time) is available. Since the two-branch model applies
TMN inside ``branch_inputs`` while the reference applies StatEx *before* TMN, the temporal mean
is removed again after the exchange (``statex_tmn=True``), so the network still only sees
zero-temporal-mean spectrograms; switch it off for models without TMN. The statistics of a
TMN-ed spectrogram are not those of the magnitude spectrogram the reference exchanges; a model
that defines ``raw_branch_inputs(wave)`` (the branch inputs *before* TMN, which its
``embed_branches`` must then normalise itself) gets the reference order exactly: StatEx on the
raw magnitudes, then TMN.

Other choices
-------------
* Partners are a random cyclic shift of the batch (``perm[i] = (i + s) % B``, ``1 <= s < B``),
  so no sample is paired with itself (the reference reverses the batch, which pairs the middle
  sample of an odd batch with itself); one shift for StatEx, an independent one for FeatEx.
* The regular loss sees the (half StatEx-augmented) embedding ``e`` with the mixed label, as in
  the reference implementation (one forward pass); ``main_on_clean=True`` computes it on a second
  forward pass of the un-exchanged inputs instead (``L(x, y)`` read literally).
* FeatEx keeps branch 0 (the STFT branch of :class:`kwsos.models.asd.TwoBranchNet`) and takes all
  other branches from the partner; slot 2 of the label is the sample that gives branch 0.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from kwsos.augment import mixup
from kwsos.losses.adacos import AdaCos, SubClusterAdaCos
from kwsos.losses.adaproj import AdaProj

__all__ = [
    "SelfSupervisedLoss",
    "exchange_labels",
    "featex",
    "make_head",
    "partner_permutation",
    "statex",
]

HeadKind = Literal["adacos", "subcluster_adacos", "adaproj"]
HEADS: tuple[str, ...] = ("adacos", "subcluster_adacos", "adaproj")

#: Floor of the standard deviation in StatEx (a constant frame/bin keeps its mean only).
STATEX_EPS = 1e-8


def make_head(
    kind: str,
    n_classes: int,
    dim: int,
    *,
    trainable_centers: bool,
    n_centers: int = 16,
    n_basis: int = 32,
    seed: int | None = None,
) -> nn.Module:
    """An angular margin loss ``(emb (B, dim), target (B, n_classes)) -> scalar`` by name.

    ``"adacos"`` (:class:`AdaCos`), ``"subcluster_adacos"`` (:class:`SubClusterAdaCos` with
    ``n_centers``) or ``"adaproj"`` (:class:`AdaProj` with ``n_basis``).
    """
    if kind == "adacos":
        return AdaCos(n_classes, dim, trainable_centers=trainable_centers, seed=seed)
    if kind == "subcluster_adacos":
        return SubClusterAdaCos(
            n_classes, dim, n_centers, trainable_centers=trainable_centers, seed=seed
        )
    if kind == "adaproj":
        return AdaProj(n_classes, dim, n_basis, trainable_centers=trainable_centers, seed=seed)
    raise ValueError(f"loss must be one of {', '.join(HEADS)}, got {kind!r}")


def partner_permutation(batch: int, generator: torch.Generator) -> Tensor:
    """Random cyclic shift ``perm[i] = (i + s) % batch`` with ``1 <= s < batch`` (no fixed point)."""
    if batch < 2:
        raise ValueError("self-supervision needs a batch of at least 2 samples")
    shift = int(torch.randint(1, batch, (1,), generator=generator))
    return (torch.arange(batch) + shift) % batch


def statex(
    x1: Tensor,
    x2: Tensor,
    *,
    axis: Literal["temporal", "frequency"] = "temporal",
    eps: float = STATEX_EPS,
) -> Tensor:
    """Statistics exchange ``(x1 - mu1) / sigma1 * sigma2 + mu2`` (Diss. Def. 5.4, Eq. 59).

    Parameters
    ----------
    x1, x2 : Tensor, shape (batch, n_frames, n_bins)
        Time-frequency representations; ``x1`` gets the statistics of ``x2`` (row by row).
    axis : {"temporal", "frequency"}
        ``"temporal"`` StatEx: mean and (population) standard deviation over the frequency axis,
        one pair per frame. ``"frequency"`` StatEx: over the time axis, one pair per bin.
    eps : float
        Added to ``sigma1`` (a constant frame or bin then takes the partner's mean).

    Returns
    -------
    Tensor, shape (batch, n_frames, n_bins)
    """
    if x1.dim() != 3 or x1.shape != x2.shape:
        raise ValueError(
            f"statex needs two (batch, n_frames, n_bins) tensors, got {tuple(x1.shape)} "
            f"and {tuple(x2.shape)}"
        )
    if axis not in ("temporal", "frequency"):
        raise ValueError(f"axis must be 'temporal' or 'frequency', got {axis!r}")
    dim = -1 if axis == "temporal" else -2
    mu1, mu2 = x1.mean(dim=dim, keepdim=True), x2.mean(dim=dim, keepdim=True)
    sd1 = x1.std(dim=dim, keepdim=True, correction=0)
    sd2 = x2.std(dim=dim, keepdim=True, correction=0)
    return (x1 - mu1) / (sd1 + eps) * sd2 + mu2


def exchange_labels(y: Tensor, perm: Tensor, applied: Tensor) -> Tensor:
    """Labels of an exchange augmentation (Diss. Eq. 60-62), shape (batch, 3 * n_classes).

    Row ``i`` is ``(0, 0.5 y_i, 0.5 y_perm[i])`` where ``applied[i]`` and ``(y_i, 0, 0)``
    otherwise.

    Parameters
    ----------
    y : Tensor, shape (batch, n_classes)
        Soft labels of the samples (already mixed up / already exchanged labels).
    perm : Tensor, shape (batch,) int
        Partner of every sample.
    applied : Tensor, shape (batch,) bool
        Where the exchange was applied.
    """
    zero = torch.zeros_like(y)
    original = torch.cat([y, zero, zero], dim=1)
    exchanged = torch.cat([zero, 0.5 * y, 0.5 * y[perm]], dim=1)
    return torch.where(applied.reshape(-1, 1), exchanged, original)


def featex(
    embeddings: tuple[Tensor, ...], perm: Tensor, applied: Tensor, *, keep: int = 0
) -> tuple[Tensor, ...]:
    """Feature exchange (Diss. Def. 5.6): every branch except ``keep`` comes from the partner.

    Parameters
    ----------
    embeddings : tuple of Tensor, each (batch, dim_b)
        One embedding per branch.
    perm : Tensor, shape (batch,) int
    applied : Tensor, shape (batch,) bool
    keep : int
        Branch that stays with its own sample.

    Returns
    -------
    tuple of Tensor, each (batch, dim_b)
    """
    if len(embeddings) < 2:
        raise ValueError("FeatEx needs a model with at least two branches")
    mask = applied.reshape(-1, 1)
    return tuple(
        e if b == keep else torch.where(mask, e[perm], e) for b, e in enumerate(embeddings)
    )


class SelfSupervisedLoss(nn.Module):
    """Regular + self-supervised (StatEx / FeatEx) angular margin losses (Diss. Sec. 5.7).

    Used by :func:`kwsos.training.train` through :meth:`compute_loss` (which draws mixup,
    StatEx and FeatEx itself); ``forward(emb, target)`` is the regular loss alone.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C`` of the auxiliary task.
    dim : int
        Dimension of the concatenated embedding ``model(wave)``.
    loss : {"subcluster_adacos", "adacos", "adaproj"}
        Kind of both heads (Sec. 5.7: sub-cluster AdaCos with 16 centres; Sec. 5.8: AdaProj).
    statex, featex : bool
        Which SSL approaches are on; with neither only the regular loss is trained (mixup 1.0).
    n_centers : int
        Centres per class of sub-cluster AdaCos heads.
    n_basis : int
        Subspace dimension of AdaProj heads.
    mixup_prob : float or None
        Probability of mixing a sample; None: 0.5 with SSL, 1.0 without (Sec. 5.7.2).
    mixup_alpha : float or None
        ``lambda ~ Beta(alpha, alpha)``; None: ``U(0, 1)``.
    statex_prob, featex_prob : float
        Probability of exchanging per sample (0.5 in the paper).
    statex_axis : {"temporal", "frequency"}
        See the module docstring.
    statex_tmn : bool
        Subtract the temporal mean (per bin) of every StatEx-ed spectrogram again.
    ssl_weight : float
        Weight of the SSL loss (1: equally weighted).
    main_on_clean : bool
        Regular loss on a second forward pass without StatEx (see the module docstring).
    seed : int or None
        Seed of the fixed centres of the regular head (the SSL head uses ``seed + 1`` when given).

    Attributes
    ----------
    main : nn.Module
        Regular head, ``C`` classes, fixed centres.
    ssl : nn.Module or None
        SSL head, ``3C`` (one approach) or ``9C`` (both) classes, trainable centres.
    """

    def __init__(
        self,
        n_classes: int,
        dim: int = 256,
        *,
        loss: HeadKind = "subcluster_adacos",
        statex: bool = True,
        featex: bool = True,
        n_centers: int = 16,
        n_basis: int = 32,
        mixup_prob: float | None = None,
        mixup_alpha: float | None = None,
        statex_prob: float = 0.5,
        featex_prob: float = 0.5,
        statex_axis: Literal["temporal", "frequency"] = "temporal",
        statex_tmn: bool = True,
        ssl_weight: float = 1.0,
        main_on_clean: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if loss not in HEADS:
            raise ValueError(f"loss must be one of {', '.join(HEADS)}, got {loss!r}")
        if statex_axis not in ("temporal", "frequency"):
            raise ValueError(f"statex_axis must be 'temporal' or 'frequency', got {statex_axis!r}")
        self.use_statex, self.use_featex = bool(statex), bool(featex)
        any_ssl = self.use_statex or self.use_featex
        if mixup_prob is None:
            mixup_prob = 0.5 if any_ssl else 1.0
        for name, p in (
            ("mixup_prob", mixup_prob),
            ("statex_prob", statex_prob),
            ("featex_prob", featex_prob),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if ssl_weight < 0:
            raise ValueError(f"ssl_weight must be >= 0, got {ssl_weight}")
        self.n_classes, self.dim, self.loss_kind = int(n_classes), int(dim), loss
        self.n_centers, self.n_basis = int(n_centers), int(n_basis)
        self.mixup_prob, self.mixup_alpha = float(mixup_prob), mixup_alpha
        self.statex_prob, self.featex_prob = float(statex_prob), float(featex_prob)
        self.statex_axis, self.statex_tmn = statex_axis, bool(statex_tmn)
        self.ssl_weight, self.main_on_clean = float(ssl_weight), bool(main_on_clean)
        self.seed = seed
        heads = dict(n_centers=self.n_centers, n_basis=self.n_basis)
        self.main = make_head(
            loss, self.n_classes, self.dim, trainable_centers=False, seed=seed, **heads
        )
        factor = (3 if self.use_statex else 1) * (3 if self.use_featex else 1)
        self.n_ssl_classes = factor * self.n_classes if any_ssl else 0
        self.ssl: nn.Module | None = None
        if any_ssl:
            self.ssl = make_head(
                loss,
                self.n_ssl_classes,
                self.dim,
                trainable_centers=True,
                seed=None if seed is None else seed + 1,
                **heads,
            )

    @property
    def scale(self) -> Tensor:
        """Scale of the regular head (what the training loop logs)."""
        return self.main.scale

    def to_dict(self) -> dict:
        """JSON-able constructor arguments."""
        return {
            "n_classes": self.n_classes,
            "dim": self.dim,
            "loss": self.loss_kind,
            "statex": self.use_statex,
            "featex": self.use_featex,
            "n_centers": self.n_centers,
            "n_basis": self.n_basis,
            "mixup_prob": self.mixup_prob,
            "mixup_alpha": self.mixup_alpha,
            "statex_prob": self.statex_prob,
            "featex_prob": self.featex_prob,
            "statex_axis": self.statex_axis,
            "statex_tmn": self.statex_tmn,
            "ssl_weight": self.ssl_weight,
            "main_on_clean": self.main_on_clean,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SelfSupervisedLoss:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        return cls(d.pop("n_classes"), d.pop("dim"), **d)

    # ------------------------------------------------------------------ inference
    def cosine(self, emb: Tensor) -> Tensor:
        """Cosines of the regular head, shape (batch, n_classes)."""
        return self.main.cosine(emb)

    def log_probs(self, emb: Tensor) -> Tensor:
        """Class log-probabilities of the regular head, shape (batch, n_classes)."""
        return self.main.log_probs(emb)

    @staticmethod
    def embed(model: nn.Module, wave: Tensor) -> Tensor:
        """Inference embedding: simply ``model(wave)``, shape (batch, dim) (no augmentation)."""
        return model(wave)

    def forward(self, emb: Tensor, target: Tensor) -> Tensor:
        """Regular loss only: ``L_main(emb, target)``."""
        return self.main(emb, target)

    # ------------------------------------------------------------------ training
    def _bernoulli(self, p: float, batch: int, generator: torch.Generator) -> Tensor:
        return torch.rand(batch, generator=generator) < p

    def _statex_inputs(
        self, inputs: tuple[Tensor, ...], perm: Tensor, applied: Tensor
    ) -> tuple[Tensor, ...]:
        out = []
        for x in inputs:
            if x.dim() == 3:  # time-frequency branch; the DFT branch is left alone
                new = statex(x, x[perm], axis=self.statex_axis)
                if self.statex_tmn:
                    new = new - new.mean(dim=1, keepdim=True)
                x = torch.where(applied.reshape(-1, 1, 1), new, x)
            out.append(x)
        return tuple(out)

    def compute_loss(
        self,
        model: nn.Module,
        wave: Tensor,
        targets: tuple[Tensor, ...],
        generator: torch.Generator,
    ) -> Tensor:
        """One training step's loss: mixup, StatEx, FeatEx and both heads.

        Parameters
        ----------
        model : nn.Module
            Exposes ``branch_inputs(wave) -> tuple`` and ``embed_branches(*inputs) -> tuple``
            of ``(batch, dim_b)`` embeddings (see :mod:`kwsos.models.asd`); optionally
            ``raw_branch_inputs(wave)``, used instead of ``branch_inputs`` with StatEx.
        wave : Tensor, shape (batch, n_samples)
        targets : tuple of Tensor
            ``targets[0]``: ``(batch, n_classes)`` one-hot / soft class matrix.
        generator : torch.Generator
            CPU generator for every random draw (mixup, partners, decisions).

        Returns
        -------
        Tensor, scalar
            ``L_main(e, y_mix) + ssl_weight * L_ssl(e_new, y_new)``.
        """
        y = targets[0]
        batch = wave.shape[0]
        if y.shape != (batch, self.n_classes):
            raise ValueError(
                f"targets[0] must have shape (batch, {self.n_classes}), got {tuple(y.shape)}"
            )
        device = wave.device
        y = y.to(torch.float32)
        if self.mixup_prob > 0:
            wave_mix, (y_mix,), _ = mixup(wave, (y,), generator, alpha=self.mixup_alpha)
            use = self._bernoulli(self.mixup_prob, batch, generator).to(device)
            wave = torch.where(use.reshape(-1, 1), wave_mix, wave)
            y = torch.where(use.reshape(-1, 1), y_mix, y)
        raw_inputs = getattr(model, "raw_branch_inputs", None) if self.use_statex else None
        inputs = tuple(raw_inputs(wave) if raw_inputs is not None else model.branch_inputs(wave))
        clean = inputs
        y_ssl = y
        if self.use_statex:
            if not any(x.dim() == 3 for x in inputs):
                raise ValueError("StatEx needs a (batch, n_frames, n_bins) branch input")
            perm = partner_permutation(batch, generator).to(device)
            applied = self._bernoulli(self.statex_prob, batch, generator).to(device)
            inputs = self._statex_inputs(inputs, perm, applied)
            y_ssl = exchange_labels(y_ssl, perm, applied)
        embs = tuple(e.float() for e in model.embed_branches(*inputs))
        if self.main_on_clean and self.use_statex:
            main_emb = torch.cat([e.float() for e in model.embed_branches(*clean)], dim=-1)
        else:
            main_emb = torch.cat(embs, dim=-1)
        total = self.main(main_emb, y)
        if self.ssl is None:
            return total
        if self.use_featex:
            perm = partner_permutation(batch, generator).to(device)
            applied = self._bernoulli(self.featex_prob, batch, generator).to(device)
            embs = featex(embs, perm, applied)
            y_ssl = exchange_labels(y_ssl, perm, applied)
        return total + self.ssl_weight * self.ssl(torch.cat(embs, dim=-1), y_ssl)

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, dim={self.dim}, loss={self.loss_kind!r}, "
            f"statex={self.use_statex}, featex={self.use_featex}, mixup_prob={self.mixup_prob}"
        )
