"""AdaProj (Diss. Def. 5.2) against hand-worked values and a least-squares projection reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kwsos.losses.adaproj import AdaProj, orthonormal_basis

from ._helpers import Adam, assert_close


def ref_projection_cosine(emb: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """cos(e, P_k e) with P_k e from a least-squares fit of e by the (raw) basis vectors."""
    out = np.zeros((emb.shape[0], centers.shape[0]))
    for b in range(emb.shape[0]):
        for k in range(centers.shape[0]):
            basis = centers[k].T  # (D, n_basis)
            coef, *_ = np.linalg.lstsq(basis, emb[b], rcond=None)
            proj = basis @ coef
            out[b, k] = emb[b] @ proj / (np.linalg.norm(emb[b]) * np.linalg.norm(proj))
    return out


def _set_centers(loss: AdaProj, centers: np.ndarray) -> None:
    with torch.no_grad():
        loss.centers.copy_(torch.tensor(centers, dtype=torch.float32))


def test_hand_worked_cosines() -> None:
    loss = AdaProj(3, dim=3, n_basis=2)
    # spans {e1, e2}, {e2, e3}, {e1, e3}, given by non-orthonormal vectors
    centers = np.array(
        [
            [[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]],
            [[0.0, 2.0, 0.0], [0.0, 1.0, 1.0]],
            [[0.0, 0.0, 3.0], [1.0, 0.0, 1.0]],
        ]
    )
    _set_centers(loss, centers)
    emb = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, -5.0]])
    # (1,2,2): |e| = 3, projections (1,2,0), (0,2,2), (1,0,2); (0,0,-5) lies in spans 2 and 3
    expected = torch.tensor(
        [[math.sqrt(5) / 3, math.sqrt(8) / 3, math.sqrt(5) / 3], [0.0, 1.0, 1.0]]
    )
    assert_close(loss.cosine(emb), expected)


def test_matches_lstsq_reference() -> None:
    loss = AdaProj(5, dim=12, n_basis=4, seed=3)
    emb = torch.randn(6, 12, generator=torch.Generator().manual_seed(1))
    expected = ref_projection_cosine(emb.double().numpy(), loss.centers.double().numpy())
    assert_close(loss.cosine(emb), torch.tensor(expected), rtol=1e-4, atol=1e-5)


def test_invariant_to_the_basis_within_the_span() -> None:
    loss = AdaProj(4, dim=10, n_basis=3, seed=0)
    emb = torch.randn(5, 10, generator=torch.Generator().manual_seed(2))
    before = loss.cosine(emb)
    g = torch.Generator().manual_seed(5)
    mixing = torch.randn(4, 3, 3, generator=g) + 3 * torch.eye(3)  # invertible per class
    old = loss.centers.clone()
    with torch.no_grad():
        loss.centers.copy_(mixing @ loss.centers)
    assert not torch.allclose(loss.centers, old, atol=0.1)  # other vectors, same spans
    assert_close(loss.cosine(emb), before, rtol=1e-4, atol=1e-5)
    q = orthonormal_basis(loss.centers)
    assert_close(q.transpose(1, 2) @ q, torch.eye(3).expand(4, 3, 3), atol=1e-5)


def test_scale_update_and_loss_formula() -> None:
    loss = AdaProj(4, dim=8, n_basis=2, seed=1)
    s0 = math.sqrt(2) * math.log(3)
    assert float(loss.scale) == pytest.approx(s0)
    emb = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    target = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.3, 0.7, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            [0.5, 0.0, 0.0, 0.5],
            [0.0, 1.0, 0.0, 0.0],
        ]
    )
    cos = ref_projection_cosine(emb.double().numpy(), loss.centers.double().numpy())
    # Eq. 10-11 by hand with the subspace cosines
    b_avg = np.mean(np.sum((1 - target) * np.exp(s0 * cos), axis=1))
    angle = np.median(np.sum(target * np.arccos(cos), axis=1))
    s1 = math.log(b_avg) / math.cos(min(math.pi / 4, angle))
    logits = s1 * cos
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected_loss = -np.mean(np.sum(target * log_p, axis=1))
    value = loss(emb, torch.tensor(target, dtype=torch.float32))
    assert float(loss.scale) == pytest.approx(s1, rel=1e-4)
    assert value.item() == pytest.approx(expected_loss, rel=1e-4)
    loss.eval()
    loss(emb, torch.tensor(target, dtype=torch.float32))
    assert float(loss.scale) == pytest.approx(s1, rel=1e-4)  # no update in eval mode
    assert_close(
        loss.log_probs(emb), torch.log_softmax(loss.scale.float() * loss.cosine(emb), dim=1)
    )


def test_gradients_and_trainable_basis() -> None:
    fixed = AdaProj(3, dim=6, n_basis=2)
    assert list(fixed.parameters()) == []
    trainable = AdaProj(3, dim=6, n_basis=2, trainable_centers=True, seed=0)
    emb = torch.zeros(3, 6)
    emb[0, 0] = 1.0
    emb.requires_grad_(True)
    value = trainable(emb, torch.tensor([0, 1, 2]))
    value.backward()
    assert torch.isfinite(emb.grad).all()
    assert trainable.centers.grad is not None and torch.isfinite(trainable.centers.grad).all()


def test_toy_problem() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(8)
    x = 2.0 * torch.randn(4, 8, generator=g)[y] + 0.3 * torch.randn(32, 8, generator=g)
    model = torch.nn.Linear(8, 16, bias=False)
    loss_fn = AdaProj(4, dim=16, n_basis=3)
    opt = Adam(model.parameters(), lr=0.02)
    target = torch.nn.functional.one_hot(y, 4).float()
    lam = torch.rand(32, generator=g)[:, None]
    perm = torch.randperm(32, generator=g)
    losses = []
    for _ in range(60):
        xm, tm = lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
        loss = loss_fn(model(xm), tm)
        opt.step(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():
        assert (loss_fn.cosine(model(x)).argmax(1) == y).float().mean() > 0.9


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="n_basis"):
        AdaProj(3, dim=8, n_basis=8)
    with pytest.raises(ValueError, match="n_classes >= 3"):
        AdaProj(2, dim=8, n_basis=2)
    with pytest.raises(ValueError):
        AdaProj(3, dim=8, n_basis=2)(torch.randn(2, 7), torch.tensor([0, 1]))
    assert "n_basis=2" in repr(AdaProj(3, dim=8, n_basis=2))
