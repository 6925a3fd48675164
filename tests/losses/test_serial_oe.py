"""Serial OE with two binary cross-entropies (Kuroyanagi et al. 2024) against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kwsos.losses.serial_oe import SerialOEBCE

from ._helpers import Adam, assert_close

# 2 machine types; sections 0, 1 belong to machine 0 and sections 2, 3, 4 to machine 1
SECTION_MACHINE = [0, 0, 1, 1, 1]
SECTIONS = np.array([0, 3, 4, 1])
MACHINES = np.array([SECTION_MACHINE[k] for k in SECTIONS])


def _bce(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-z))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _setup(mapping):
    torch.manual_seed(0)
    loss_fn = SerialOEBCE(2, 5, dim=6, section_machine=mapping)
    emb = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    x = emb.double().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    zm = x @ loss_fn.machine_head.weight.double().detach().numpy().T
    zm += loss_fn.machine_head.bias.double().detach().numpy()
    zs = x @ loss_fn.section_head.weight.double().detach().numpy().T
    zs += loss_fn.section_head.bias.double().detach().numpy()
    return loss_fn, emb, zm, zs


def test_both_bce_over_all_classes() -> None:
    loss_fn, emb, zm, zs = _setup(None)
    tm, ts = np.eye(2)[MACHINES], np.eye(5)[SECTIONS]
    expected = _bce(zm, tm).mean() + _bce(zs, ts).mean()
    value = loss_fn(emb, torch.tensor(MACHINES), torch.tensor(SECTIONS))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert_close(loss_fn.log_probs(emb), torch.tensor(np.log(1 / (1 + np.exp(-zs)))), rtol=1e-4)


def test_section_bce_only_within_the_machine_type() -> None:
    loss_fn, emb, zm, zs = _setup(SECTION_MACHINE)
    tm, ts = np.eye(2)[MACHINES], np.eye(5)[SECTIONS]
    mask = np.array([[SECTION_MACHINE[k] == m for k in range(5)] for m in MACHINES])
    expected = _bce(zm, tm).mean() + (_bce(zs, ts) * mask).sum() / mask.sum()
    value = loss_fn(
        emb, torch.tensor(tm, dtype=torch.float32), torch.tensor(ts, dtype=torch.float32)
    )
    assert value.item() == pytest.approx(expected, rel=1e-5)
    # score = log sigma(section logit) + log sigma(machine logit of that section's type)
    logsig = lambda z: -np.log1p(np.exp(-z))  # noqa: E731
    section = np.array([1, 2, 2, 0])
    expected_score = logsig(zs[np.arange(4), section]) + logsig(
        zm[np.arange(4), [SECTION_MACHINE[k] for k in section]]
    )
    assert_close(
        loss_fn.score_samples(emb, torch.tensor(section)),
        torch.tensor(expected_score),
        rtol=1e-4,
    )


def test_learns_and_scores_own_section_higher() -> None:
    g = torch.Generator().manual_seed(0)
    sections = torch.arange(5).repeat_interleave(8)
    machines = torch.tensor(SECTION_MACHINE)[sections]
    x = 2.0 * torch.randn(5, 8, generator=g)[sections] + 0.3 * torch.randn(40, 8, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 16)
    loss_fn = SerialOEBCE(2, 5, dim=16, section_machine=SECTION_MACHINE)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.03)
    losses = []
    for _ in range(80):
        loss = loss_fn(model(x), machines, sections)
        opt.step(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        own = loss_fn.score_samples(model(x), sections)
        wrong = loss_fn.score_samples(model(x), (sections + 2) % 5)
    assert (own > wrong).float().mean() > 0.9


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="section_machine"):
        SerialOEBCE(2, 3, section_machine=[0, 1])
    with pytest.raises(ValueError, match="section_machine"):
        SerialOEBCE(2, 3, section_machine=[0, 1, 2])
    with pytest.raises(ValueError):
        SerialOEBCE(2, 3, machine_weight=0.0, section_weight=0.0)
    with pytest.raises(ValueError):
        SerialOEBCE(2, 3, dim=4)(torch.randn(2, 4), torch.zeros(2, 3), torch.zeros(2, 3))
