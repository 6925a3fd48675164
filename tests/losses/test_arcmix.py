"""ArcMix / Noisy-ArcMix (Choi & Choi 2024) against a direct per-term implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kwsos.losses import ArcFace
from kwsos.losses.arcmix import ArcMix, NoisyArcMix, dominant_target

from ._helpers import Adam, assert_close


def _log_softmax_at(logits: list[float], k: int) -> float:
    m = max(logits)
    return logits[k] - m - math.log(sum(math.exp(z - m) for z in logits))


def ref_term(cos: np.ndarray, label: int, margin_class: int, s: float, m: float) -> float:
    """-log softmax(s * cos(theta + m e_margin_class))_label for one sample."""
    logits = [
        s * math.cos(math.acos(c) + (m if j == margin_class else 0.0)) for j, c in enumerate(cos)
    ]
    return -_log_softmax_at(logits, label)


def ref_loss(cos, lam, yi, yj, s, m, noisy: bool) -> float:
    total = 0.0
    for b in range(len(lam)):
        dominant = yi[b] if lam[b] >= 0.5 else yj[b]
        mi = dominant if noisy else yi[b]
        mj = dominant if noisy else yj[b]
        total += lam[b] * ref_term(cos[b], yi[b], mi, s, m)  # L_AF(x_ij, y_i)
        total += (1 - lam[b]) * ref_term(cos[b], yj[b], mj, s, m)  # L_AF(x_ij, y_j)
    return total / len(lam)


LAM = np.array([0.8, 0.3, 0.55, 1.0, 0.1])
YI = np.array([0, 1, 2, 3, 2])
YJ = np.array([2, 3, 2, 0, 1])  # sample 2 mixes two clips of the same class


def _case(cls, seed: int):
    torch.manual_seed(seed)
    loss_fn = cls(4, dim=6, scale=30.0, margin=0.7)
    emb = torch.randn(5, 6, generator=torch.Generator().manual_seed(seed))
    eye = np.eye(4)
    target = LAM[:, None] * eye[YI] + (1 - LAM[:, None]) * eye[YJ]
    cos = loss_fn.cosine(emb).double().detach().numpy()
    return loss_fn, emb, torch.tensor(target, dtype=torch.float32), cos


@pytest.mark.parametrize("seed", [0, 1])
def test_arcmix_matches_per_term_definition(seed: int) -> None:
    loss_fn, emb, target, cos = _case(ArcMix, seed)
    expected = ref_loss(cos, LAM, YI, YJ, 30.0, 0.7, noisy=False)
    assert loss_fn(emb, target).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_arcmix_matches_per_term_definition(seed: int) -> None:
    loss_fn, emb, target, cos = _case(NoisyArcMix, seed)
    expected = ref_loss(cos, LAM, YI, YJ, 30.0, 0.7, noisy=True)
    assert loss_fn(emb, target).item() == pytest.approx(expected, rel=1e-4)
    arcmix = ref_loss(cos, LAM, YI, YJ, 30.0, 0.7, noisy=False)
    assert expected != pytest.approx(arcmix, rel=1e-3)  # the two losses really differ


def test_one_hot_targets_reduce_to_arcface() -> None:
    torch.manual_seed(0)
    emb = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 3, 1, 1])
    ref = ArcFace(4, dim=6, scale=30.0, margin=0.7, seed=7)
    for cls in (ArcMix, NoisyArcMix):
        loss_fn = cls(4, dim=6, seed=7)
        assert_close(loss_fn(emb, labels), ref(emb, labels), rtol=1e-5)


def test_noisy_arcmix_is_arcface_with_dominant_margin() -> None:
    loss_fn, emb, target, _ = _case(NoisyArcMix, 2)
    ref = ArcFace(4, dim=6, scale=30.0, margin=0.7)
    ref.load_state_dict(loss_fn.state_dict())
    assert_close(loss_fn(emb, target), ref(emb, target, margin_target=dominant_target(target)))
    ties_low = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # dominant class 1; a tie goes to class 0
    assert_close(dominant_target(torch.tensor([[0.2, 0.8], [0.5, 0.5]])), ties_low)


def test_defaults_and_training() -> None:
    loss_fn = ArcMix(3, dim=8)
    assert float(loss_fn.scale) == 30.0 and loss_fn.margin == 0.7 and loss_fn.mixup_alpha == 0.5
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(6)
    x = 2.0 * torch.randn(3, 8, generator=g)[y] + 0.3 * torch.randn(18, 8, generator=g)
    model = torch.nn.Linear(8, 8)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.03)
    onehot = torch.nn.functional.one_hot(y, 3).float()
    lam = torch.rand(18, generator=g)[:, None]
    perm = torch.randperm(18, generator=g)
    losses = []
    for _ in range(60):
        loss = loss_fn(
            model(lam * x + (1 - lam) * x[perm]), lam * onehot + (1 - lam) * onehot[perm]
        )
        opt.step(loss)
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < 0.6 * losses[0]
