"""StatEx / FeatEx self-supervision (Diss. Sec. 5.7) with a tiny stand-in two-branch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from kwsos.losses.ssl import (
    SelfSupervisedLoss,
    exchange_labels,
    featex,
    partner_permutation,
    statex,
)

from ._helpers import Adam, assert_close

N_FRAMES, N_BINS = 6, 5
N_SAMPLES = N_FRAMES * N_BINS


class TinyTwoBranch(nn.Module):
    """Same interface as kwsos.models.asd.TwoBranchNet: (spec (B, T, F) with TMN, dft (B, n))."""

    n_branches = 2

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.spec_net = nn.Linear(N_SAMPLES, dim, bias=False)
        self.dft_net = nn.Linear(N_SAMPLES // 2 + 1, dim, bias=False)
        self.seen: list[tuple[torch.Tensor, ...]] = []

    def branch_inputs(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = wave.reshape(-1, N_FRAMES, N_BINS).abs()
        return spec - spec.mean(dim=1, keepdim=True), torch.fft.rfft(wave).abs()

    def embed_branches(self, spec: torch.Tensor, dft: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.seen.append((spec.detach(), dft.detach()))
        return self.spec_net(spec.flatten(1)), self.dft_net(dft)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.embed_branches(*self.branch_inputs(wave)), dim=-1)


class TinyRaw(TinyTwoBranch):
    """Offers the spectrogram before TMN; embed_branches applies TMN itself."""

    def raw_branch_inputs(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return wave.reshape(-1, N_FRAMES, N_BINS).abs(), torch.fft.rfft(wave).abs()

    def embed_branches(self, spec: torch.Tensor, dft: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return super().embed_branches(spec - spec.mean(dim=1, keepdim=True), dft)


class OneBranch(TinyTwoBranch):
    def branch_inputs(self, wave):
        return (super().branch_inputs(wave)[0],)

    def embed_branches(self, spec):
        return (self.spec_net(spec.flatten(1)),)


class Recorder(nn.Module):
    """Stand-in head that records what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls.append((emb.detach(), target.detach()))
        return emb.sum() * 0.0


Y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.25, 0.75]])


def test_exchange_labels_hand_checked() -> None:
    perm = torch.tensor([1, 2, 0])
    y3 = exchange_labels(Y, perm, torch.tensor([True, False, True]))
    expected3 = torch.tensor(
        [
            [0, 0, 0.5, 0, 0, 0.5],
            [0, 1, 0, 0, 0, 0],
            [0, 0, 0.125, 0.375, 0.5, 0],
        ]
    )
    assert_close(y3, expected3)
    # FeatEx on top of StatEx: 9C classes
    y9 = exchange_labels(y3, torch.tensor([2, 0, 1]), torch.tensor([True, True, False]))
    z6 = [0.0] * 6
    expected9 = torch.tensor(
        [
            z6 + [0, 0, 0.25, 0, 0, 0.25] + [0, 0, 0.0625, 0.1875, 0.25, 0],
            z6 + [0, 0.5, 0, 0, 0, 0] + [0, 0, 0.25, 0, 0, 0.25],
            [0, 0, 0.125, 0.375, 0.5, 0] + z6 + z6,
        ]
    )
    assert_close(y9, expected9)
    assert_close(y9.sum(dim=1), torch.ones(3))


@pytest.mark.parametrize("axis", ["temporal", "frequency"])
def test_statex_exchanges_statistics(axis: str) -> None:
    rng = np.random.default_rng(0)
    x1 = rng.normal(2.0, 3.0, size=(2, N_FRAMES, N_BINS))
    x2 = rng.gamma(2.0, 1.5, size=(2, N_FRAMES, N_BINS))
    ax = -1 if axis == "temporal" else -2  # temporal: per frame over frequency
    mu1, sd1 = x1.mean(ax, keepdims=True), x1.std(ax, keepdims=True)
    mu2, sd2 = x2.mean(ax, keepdims=True), x2.std(ax, keepdims=True)
    expected = (x1 - mu1) / sd1 * sd2 + mu2
    out = statex(torch.tensor(x1), torch.tensor(x2), axis=axis).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)  # eps in sigma1
    np.testing.assert_allclose(out.mean(ax), x2.mean(ax), atol=1e-9)
    np.testing.assert_allclose(out.std(ax), x2.std(ax), rtol=1e-6)
    other = -2 if ax == -1 else -1
    assert not np.allclose(out.mean(other), x2.mean(other))  # only this axis is exchanged


def test_featex_swaps_branch_embeddings() -> None:
    e0, e1 = torch.arange(6.0).reshape(3, 2), 10 + torch.arange(9.0).reshape(3, 3)
    perm, applied = torch.tensor([2, 0, 1]), torch.tensor([True, False, True])
    n0, n1 = featex((e0, e1), perm, applied)
    assert torch.equal(n0, e0)
    assert torch.equal(n1, torch.stack([e1[2], e1[1], e1[1]]))
    with pytest.raises(ValueError):
        featex((e0,), perm, applied)


def test_partner_permutation_has_no_fixed_point() -> None:
    g = torch.Generator().manual_seed(0)
    for batch in (2, 3, 7):
        for _ in range(5):
            perm = partner_permutation(batch, g)
            assert sorted(perm.tolist()) == list(range(batch))
            assert (perm != torch.arange(batch)).all()


def _wave(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, N_SAMPLES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("raw", [False, True])
def test_compute_loss_statex_wiring(raw: bool) -> None:
    model = TinyRaw() if raw else TinyTwoBranch()
    loss = SelfSupervisedLoss(2, dim=8, featex=False, mixup_prob=0.0, statex_prob=1.0)
    assert loss.n_ssl_classes == 6
    loss.main, loss.ssl = Recorder(), Recorder()
    wave = _wave(3)
    loss.compute_loss(model, wave, (Y,), torch.Generator().manual_seed(4))
    perm = partner_permutation(3, torch.Generator().manual_seed(4))  # the first draw
    spec, dft = model.raw_branch_inputs(wave) if raw else model.branch_inputs(wave)
    new = statex(spec, spec[perm])  # raw: the reference order, StatEx before TMN
    new = new - new.mean(dim=1, keepdim=True)  # TMN again after the exchange
    seen_spec, seen_dft = model.seen[-1]
    assert_close(seen_spec, new, atol=1e-5)
    assert torch.equal(seen_dft, dft)  # the DFT branch is not exchanged
    (main_emb, main_t), (ssl_emb, ssl_t) = loss.main.calls[0], loss.ssl.calls[0]
    assert torch.equal(main_t, Y)  # regular loss: the original (mixed) labels
    assert_close(ssl_t, exchange_labels(Y, perm, torch.ones(3, dtype=torch.bool)))
    assert torch.equal(main_emb, ssl_emb)


def test_compute_loss_featex_wiring_and_main_on_clean() -> None:
    model = TinyTwoBranch()
    loss = SelfSupervisedLoss(2, dim=8, statex=False, mixup_prob=0.0, featex_prob=1.0)
    loss.main, loss.ssl = Recorder(), Recorder()
    wave = _wave(3, seed=1)
    loss.compute_loss(model, wave, (Y,), torch.Generator().manual_seed(2))
    perm = partner_permutation(3, torch.Generator().manual_seed(2))
    e0, e1 = model.embed_branches(*model.branch_inputs(wave))
    (main_emb, _), (ssl_emb, ssl_t) = loss.main.calls[0], loss.ssl.calls[0]
    assert_close(main_emb, torch.cat([e0, e1], dim=1))
    assert_close(ssl_emb, torch.cat([e0, e1[perm]], dim=1))
    assert_close(ssl_t, exchange_labels(Y, perm, torch.ones(3, dtype=torch.bool)))

    both = SelfSupervisedLoss(2, dim=8, mixup_prob=0.0, statex_prob=1.0, main_on_clean=True)
    both.main, both.ssl = Recorder(), Recorder()
    both.compute_loss(model, wave, (Y,), torch.Generator().manual_seed(2))
    assert both.n_ssl_classes == 18 and both.ssl.calls[0][1].shape == (3, 18)
    assert_close(both.main.calls[0][0], torch.cat([e0, e1], dim=1))  # un-exchanged pass


@pytest.mark.parametrize("kind", ["adacos", "subcluster_adacos", "adaproj"])
def test_loss_decreases_on_toy_data(kind: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n_classes, per_class = 3, 8
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    t = torch.arange(N_SAMPLES, dtype=torch.float32)
    wave = torch.sin(0.4 * (labels[:, None] + 1) * t) + 0.1 * torch.randn(
        24, N_SAMPLES, generator=g
    )
    target = nn.functional.one_hot(labels, n_classes).float()
    model = TinyTwoBranch(dim=8)
    loss = SelfSupervisedLoss(n_classes, dim=16, loss=kind, n_centers=2, n_basis=3, seed=0)
    assert loss.mixup_prob == 0.5 and loss.n_ssl_classes == 27
    opt = Adam([*model.parameters(), *loss.parameters()], lr=0.02)
    losses = []
    for _ in range(40):
        value = loss.compute_loss(model, wave, (target,), g)
        assert torch.isfinite(value)
        opt.step(value)
        losses.append(value.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert float(loss.scale) == float(loss.main.scale)
    with torch.no_grad():
        assert torch.equal(loss.embed(model, wave), model(wave))
        assert loss.log_probs(model(wave)).shape == (24, n_classes)


def test_options_and_errors() -> None:
    plain = SelfSupervisedLoss(3, dim=8, statex=False, featex=False)
    assert plain.ssl is None and plain.mixup_prob == 1.0
    assert list(plain.parameters()) == []  # fixed centres in the regular head
    ssl = SelfSupervisedLoss(3, dim=8, featex=False)
    assert all(p.requires_grad for p in ssl.ssl.parameters()) and len(list(ssl.parameters())) == 1
    again = SelfSupervisedLoss.from_dict(ssl.to_dict())
    assert again.to_dict() == ssl.to_dict()
    with pytest.raises(ValueError, match="two branches"):
        SelfSupervisedLoss(2, dim=4, statex=False).compute_loss(
            OneBranch(), _wave(3), (Y,), torch.Generator().manual_seed(0)
        )
    with pytest.raises(ValueError, match="targets"):
        ssl.compute_loss(TinyTwoBranch(), _wave(3), (Y,), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError):
        SelfSupervisedLoss(3, dim=8, loss="arcface")
    with pytest.raises(ValueError):
        SelfSupervisedLoss(3, dim=8, statex_prob=1.5)
