"""ArcFace with soft targets (Diss. Def. 2.7) against a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kwsos.losses import ArcFace

from ._helpers import Adam, assert_close


def ref_arcface(
    emb: np.ndarray, centers: np.ndarray, target: np.ndarray, s: float, m: float, weights=None
) -> float:
    weights = target if weights is None else weights
    n_batch, n_classes = target.shape
    loss = 0.0
    for b in range(n_batch):
        logits = []
        for j in range(n_classes):
            cos = np.dot(emb[b], centers[j]) / (np.linalg.norm(emb[b]) * np.linalg.norm(centers[j]))
            logits.append(s * math.cos(math.acos(cos) + m * weights[b, j]))  # Eq. 7-8
        denom = sum(math.exp(z) for z in logits)
        for j in range(n_classes):
            loss -= target[b, j] * math.log(math.exp(logits[j]) / denom)
    return loss / n_batch


TARGET = np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]])


def _emb(seed: int) -> torch.Tensor:
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))


def test_matches_reference_with_soft_margin() -> None:
    torch.manual_seed(0)
    loss_fn = ArcFace(3, dim=4, scale=10.0, margin=0.4)
    emb = _emb(1)
    loss = loss_fn(emb, torch.tensor(TARGET, dtype=torch.float32))
    centers = loss_fn.centers.detach().double().numpy()
    expected = ref_arcface(emb.double().numpy(), centers, TARGET, 10.0, 0.4)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert float(loss_fn.scale) == 10.0  # fixed, also in training mode


def test_margin_target_puts_margin_on_dominant_class_only() -> None:
    torch.manual_seed(0)
    loss_fn = ArcFace(3, dim=4, scale=8.0, margin=0.7)
    emb = _emb(2)
    dominant = np.eye(3)[TARGET.argmax(1)]
    loss = loss_fn(
        emb,
        torch.tensor(TARGET, dtype=torch.float32),
        margin_target=torch.tensor(dominant, dtype=torch.float32),
    )
    centers = loss_fn.centers.detach().double().numpy()
    expected = ref_arcface(emb.double().numpy(), centers, TARGET, 8.0, 0.7, weights=dominant)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_zero_margin_is_scaled_softmax() -> None:
    loss_fn = ArcFace(3, dim=4, scale=5.0, margin=0.0)
    emb, target = _emb(3), torch.tensor(TARGET, dtype=torch.float32)
    expected = F.cross_entropy(5.0 * loss_fn.cosine(emb), target)
    assert_close(loss_fn(emb, target), expected)
    assert_close(loss_fn.log_probs(emb), torch.log_softmax(5.0 * loss_fn.cosine(emb), 1))


def test_toy_problem() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(8)
    x = 2.0 * torch.randn(3, 8, generator=g)[y] + 0.3 * torch.randn(24, 8, generator=g)
    model = torch.nn.Linear(8, 16)
    loss_fn = ArcFace(3, dim=16, scale=10.0, margin=0.3)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.05)
    losses = []
    for _ in range(100):
        loss = loss_fn(model(x), y)
        opt.step(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert (loss_fn.cosine(model(x)).argmax(1) == y).all()


def test_gradient_is_finite_at_the_centre() -> None:
    loss_fn = ArcFace(3, dim=4)
    emb = loss_fn.centers.detach()[[0, 1, 2]].clone().requires_grad_(True)  # cos = 1 exactly
    loss_fn(emb, torch.tensor([0, 1, 2])).backward()
    assert torch.isfinite(emb.grad).all()


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        ArcFace(3, scale=0.0)
    with pytest.raises(ValueError):
        ArcFace(3, margin=2.0)
    assert "margin=0.5" in repr(ArcFace(3))
    fixed = ArcFace(3, dim=4, trainable_centers=False)
    assert list(fixed.parameters()) == []
