"""AdaCos (Diss. Def. 2.8) and sub-cluster AdaCos (Diss. Def. 3.4) against slow references."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kwsos.losses import AdaCos, SubClusterAdaCos

from ._helpers import Adam, assert_close

# ------------------------------------------------------------------------------------------
# slow, obvious references (python loops, float64)
# ------------------------------------------------------------------------------------------


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_adacos_step(
    emb: np.ndarray, centers: np.ndarray, target: np.ndarray, s_prev: float
) -> tuple[float, float]:
    """One training step of AdaCos: (s_t, loss), s_t from s_{t-1} and this batch (Eq. 10-11)."""
    n_batch, n_classes = target.shape
    cos = [[_cos(emb[b], centers[j]) for j in range(n_classes)] for b in range(n_batch)]
    total = 0.0
    for b in range(n_batch):
        for j in range(n_classes):
            total += (1.0 - target[b, j]) * math.exp(s_prev * cos[b][j])  # non-target mass
    b_avg = total / n_batch
    angles = [
        sum(target[b, j] * math.acos(cos[b][j]) for j in range(n_classes)) for b in range(n_batch)
    ]
    s = math.log(b_avg) / math.cos(min(math.pi / 4, float(np.median(angles))))
    loss = 0.0
    for b in range(n_batch):
        denom = sum(math.exp(s * cos[b][k]) for k in range(n_classes))
        for j in range(n_classes):
            loss -= target[b, j] * math.log(math.exp(s * cos[b][j]) / denom)
    return s, loss / n_batch


def ref_subcluster_step(
    emb: np.ndarray, centers: np.ndarray, target: np.ndarray, s_prev: float, median_angle: str
) -> tuple[float, float]:
    """One training step of sub-cluster AdaCos: (s_t, loss) from Eq. 38-42."""
    n_batch, n_classes = target.shape
    n_centers = centers.shape[1]
    cos = [
        [[_cos(emb[b], centers[j, k]) for k in range(n_centers)] for j in range(n_classes)]
        for b in range(n_batch)
    ]
    sim_max = max(
        s_prev * cos[b][j][k]
        for b in range(n_batch)
        for j in range(n_classes)
        for k in range(n_centers)
    )
    total = 0.0
    for b in range(n_batch):
        for j in range(n_classes):
            for k in range(n_centers):
                total += math.exp(s_prev * cos[b][j][k] - sim_max)
    b_avg = total / n_batch
    angles = []
    for b in range(n_batch):
        angle = 0.0
        for j in range(n_classes):
            per_centre = [math.acos(cos[b][j][k]) for k in range(n_centers)]
            angle += target[b, j] * (
                min(per_centre) if median_angle == "nearest" else sum(per_centre)
            )
        angles.append(angle)
    s = (sim_max + math.log(b_avg)) / math.cos(min(math.pi / 4, float(np.median(angles))))
    loss = 0.0
    for b in range(n_batch):
        denom = sum(math.exp(s * cos[b][j][k]) for j in range(n_classes) for k in range(n_centers))
        for j in range(n_classes):
            p_class = sum(math.exp(s * cos[b][j][k]) for k in range(n_centers)) / denom
            loss -= target[b, j] * math.log(p_class)
    return s, loss / n_batch


# ------------------------------------------------------------------------------------------
# data helpers
# ------------------------------------------------------------------------------------------

SOFT_1 = [[0.7, 0.3, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.2, 0.0, 0.0, 0.8]]  # mixup rows
SOFT_2 = [[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0], [0.0, 0.1, 0.0, 0.9]]


def _batch(seed: int, n_batch: int = 3, dim: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n_batch, dim, generator=g)  # not normalised on purpose


def _mixup(x: torch.Tensor, t: torch.Tensor, g: torch.Generator):
    lam = torch.rand(x.shape[0], 1, generator=g)
    perm = torch.randperm(x.shape[0], generator=g)
    return lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]


def _toy_classes(
    n_classes: int, seed: int = 0, per_class: int = 8, din: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(n_classes, din, generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return means[y] + 0.3 * torch.randn(len(y), din, generator=g), y


# ------------------------------------------------------------------------------------------
# AdaCos
# ------------------------------------------------------------------------------------------


def test_adacos_matches_reference_over_two_steps() -> None:
    torch.manual_seed(0)
    loss_fn = AdaCos(4, dim=5)
    centers = loss_fn.centers.detach().double().numpy()
    s = math.sqrt(2) * math.log(3)
    assert float(loss_fn.scale) == pytest.approx(s)
    for seed, target in ((1, SOFT_1), (2, SOFT_2)):
        emb = _batch(seed)
        t = torch.tensor(target)
        loss = loss_fn(emb, t)
        s, expected = ref_adacos_step(emb.double().numpy(), centers, np.array(target), s)
        assert float(loss_fn.scale) == pytest.approx(s, rel=1e-6)  # s_t used in step t
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_adacos_one_hot_b_avg_is_non_target_sum() -> None:
    # one-hot targets: B_avg of Eq. 11 sums the non-target classes only
    torch.manual_seed(1)
    loss_fn = AdaCos(3, dim=4)
    emb = _batch(3, n_batch=3, dim=4)
    y = torch.tensor([0, 2, 1])
    loss_fn(emb, y)  # integer class indices are one-hot coded
    cos = (F.normalize(emb, dim=1) @ F.normalize(loss_fn.centers.detach(), dim=1).T).double()
    s0 = math.sqrt(2) * math.log(2)
    mask = F.one_hot(y, 3).bool()
    b_avg = torch.exp(s0 * cos).masked_fill(mask, 0).sum(1).mean()
    angle = torch.arccos(cos[mask])
    expected = torch.log(b_avg) / torch.cos(torch.clamp(angle.median(), max=math.pi / 4))
    assert float(loss_fn.scale) == pytest.approx(float(expected), rel=1e-6)


def test_adacos_eval_does_not_update_scale() -> None:
    loss_fn = AdaCos(5, dim=5).eval()
    before = loss_fn.scale.clone()
    loss = loss_fn(_batch(0), torch.tensor([0, 1, 4]))
    assert torch.equal(loss_fn.scale, before)
    cos = loss_fn.cosine(_batch(0))
    expected = F.cross_entropy(float(before) * cos, torch.tensor([0, 1, 4]))
    assert_close(loss, expected)


def test_adacos_rejects_two_classes_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="n_classes >= 3"):
        AdaCos(2)
    loss_fn = AdaCos(4, dim=5)
    with pytest.raises(ValueError, match="target"):
        loss_fn(_batch(0), torch.ones(3, 3) / 3)
    with pytest.raises(ValueError, match="embeddings"):
        loss_fn(torch.ones(3, 4), torch.ones(3, 4) / 4)


def test_adacos_toy_problem() -> None:
    """AdaCos reaches 100 % accuracy; its loss settles at log 2 by design.

    The scale s = log(B_avg) / cos(alpha_med) makes exp(s cos(alpha_med)) = B_avg: the
    median sample's target logit balances the summed non-target logits, i.e. its target
    probability is about 1/2 once alpha_med < pi/4. With 3 classes the loss therefore cannot halve
    (start ~log 3); with 8 classes it does.
    """
    for n_classes, halves in ((3, False), (8, True)):
        torch.manual_seed(0)
        x, y = _toy_classes(n_classes)
        model = torch.nn.Linear(x.shape[1], 16)
        loss_fn = AdaCos(n_classes, dim=16)
        opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.05)
        losses = []
        for _ in range(100):
            loss = loss_fn(model(x), y)
            opt.step(loss)
            losses.append(loss.item())
        with torch.no_grad():
            accuracy = (loss_fn.cosine(model(x)).argmax(1) == y).float().mean()
        assert accuracy == 1.0
        assert losses[-1] == pytest.approx(math.log(2), abs=0.05)
        if halves:
            assert losses[-1] < 0.5 * losses[0]


# ------------------------------------------------------------------------------------------
# sub-cluster AdaCos
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("median_angle", ["nearest", "sum"])
def test_subcluster_matches_reference_over_two_steps(median_angle: str) -> None:
    torch.manual_seed(0)
    loss_fn = SubClusterAdaCos(4, dim=5, n_centers=3, median_angle=median_angle)
    centers = loss_fn.centers.detach().double().numpy()
    s = math.sqrt(2) * math.log(4 * 3 - 1)
    assert float(loss_fn.scale) == pytest.approx(s)
    for seed, target in ((1, SOFT_1), (2, SOFT_2)):
        emb = _batch(seed)
        loss = loss_fn(emb, torch.tensor(target))
        s, expected = ref_subcluster_step(
            emb.double().numpy(), centers, np.array(target), s, median_angle
        )
        assert float(loss_fn.scale) == pytest.approx(s, rel=1e-6)
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_subcluster_even_batch_median_is_mean_of_middle_values() -> None:
    torch.manual_seed(0)
    loss_fn = SubClusterAdaCos(4, dim=5, n_centers=2)
    centers = loss_fn.centers.detach().double().numpy()
    emb = _batch(5, n_batch=4)
    target = np.array([*SOFT_1, [0.25, 0.25, 0.25, 0.25]])
    loss = loss_fn(emb, torch.tensor(target, dtype=torch.float32))
    s, expected = ref_subcluster_step(
        emb.double().numpy(), centers, target, loss_fn.initial_scale, "nearest"
    )
    assert float(loss_fn.scale) == pytest.approx(s, rel=1e-6)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def _numerator(loss_fn: SubClusterAdaCos, emb: torch.Tensor) -> float:
    """sim_max + log B^_avg of Eq. 38, by hand."""
    with torch.no_grad():
        cos = loss_fn.center_cosine(emb).double().reshape(len(emb), -1)
    z = loss_fn.initial_scale * cos
    sim_max = z.max()
    return float(sim_max + torch.log(torch.exp(z - sim_max).sum(1).mean()))


def test_sum_median_pins_denominator_at_cos_pi_4_nearest_does_not() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 2, 1, 0])
    scales = {}
    for median_angle in ("nearest", "sum"):
        torch.manual_seed(3)
        loss_fn = SubClusterAdaCos(3, dim=8, n_centers=16, median_angle=median_angle)
        centres = F.normalize(loss_fn.centers.detach(), dim=-1)
        # every sample sits close to centre 0 of its class: nearest angle << pi/4
        emb = centres[y, 0] + 0.03 * torch.randn(len(y), 8, generator=g)
        with torch.no_grad():
            nearest = torch.arccos(loss_fn.center_cosine(emb)[torch.arange(len(y)), y].amax(1))
        assert nearest.max() < 0.3 < math.pi / 4
        numerator = _numerator(loss_fn, emb)
        loss_fn(emb, y)
        scales[median_angle] = float(loss_fn.scale)
        if median_angle == "sum":
            assert scales["sum"] * math.cos(math.pi / 4) == pytest.approx(numerator, rel=1e-6)
        else:
            denominator = math.cos(float(nearest.double().median()))  # odd batch
            assert denominator > 0.98
            assert scales["nearest"] * denominator == pytest.approx(numerator, rel=1e-5)
    assert scales["sum"] > 1.35 * scales["nearest"]


def test_one_centre_fixed_scale_is_softmax_cross_entropy() -> None:
    torch.manual_seed(0)
    sc = SubClusterAdaCos(4, dim=5, n_centers=1).eval()
    ada = AdaCos(4, dim=5).eval()
    with torch.no_grad():
        ada.centers.copy_(sc.centers[:, 0])
        sc.scale.fill_(7.5)
        ada.scale.fill_(7.5)
    emb, target = _batch(4), torch.tensor(SOFT_1)
    cos = F.normalize(emb, dim=1) @ F.normalize(sc.centers.detach()[:, 0], dim=1).T
    expected = F.cross_entropy(7.5 * cos, target)  # probabilities as targets
    assert_close(sc(emb, target), expected)
    assert_close(ada(emb, target), expected)
    assert_close(sc.cosine(emb), cos)


def test_class_log_probs_are_logsumexp_of_centres() -> None:
    loss_fn = SubClusterAdaCos(3, dim=5, n_centers=4).eval()
    emb = _batch(6)
    log_p = loss_fn.log_probs(emb)
    probs = torch.softmax(float(loss_fn.scale) * loss_fn.center_cosine(emb).reshape(3, -1), 1)
    assert_close(log_p.exp(), probs.reshape(3, 3, 4).sum(-1))
    assert_close(log_p.exp().sum(1), torch.ones(3))
    assert torch.equal(loss_fn.cosine(emb), loss_fn.center_cosine(emb).amax(-1))


def test_subcluster_toy_problem() -> None:
    torch.manual_seed(0)
    x, y = _toy_classes(3)
    model = torch.nn.Linear(x.shape[1], 16)
    loss_fn = SubClusterAdaCos(3, dim=16, n_centers=4)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.05)
    losses = []
    for _ in range(200):
        loss = loss_fn(model(x), y)
        opt.step(loss)
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (loss_fn.log_probs(model(x)).argmax(1) == y).float().mean()
    assert accuracy == 1.0
    assert losses[-1] < 0.5 * losses[0]


def test_subcluster_scale_stays_bounded_with_mixup() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, y = _toy_classes(8, per_class=3)
    t = F.one_hot(y, 8).float()
    model = torch.nn.Linear(x.shape[1], 16)
    loss_fn = SubClusterAdaCos(8, dim=16, n_centers=4)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    scales = []
    for _ in range(1000):
        xb, tb = _mixup(x, t, g)
        loss = loss_fn(model(xb), tb)
        opt.step(loss)
        scales.append(float(loss_fn.scale))
    assert np.isfinite(scales).all()
    assert 1.0 <= min(scales) and max(scales) <= 100.0


# ------------------------------------------------------------------------------------------
# shared module behaviour
# ------------------------------------------------------------------------------------------

LOSSES = [
    lambda: AdaCos(4, dim=5),
    lambda: SubClusterAdaCos(4, dim=5, n_centers=3),
]


@pytest.mark.parametrize("make", LOSSES)
def test_no_gradient_into_scale(make) -> None:
    torch.manual_seed(0)
    loss_fn = make()
    assert "scale" not in dict(loss_fn.named_parameters())
    frozen = copy.deepcopy(loss_fn)
    emb = _batch(1).requires_grad_(True)
    loss = loss_fn(emb, torch.tensor(SOFT_1))
    loss.backward()
    assert not loss_fn.scale.requires_grad and loss_fn.scale.grad is None
    # the gradient is that of the same loss with the (updated) scale held constant
    with torch.no_grad():
        frozen.scale.copy_(loss_fn.scale)
    emb2 = _batch(1).requires_grad_(True)
    frozen.eval()(emb2, torch.tensor(SOFT_1)).backward()
    assert_close(emb.grad, emb2.grad)
    assert_close(loss_fn.centers.grad, frozen.centers.grad)


@pytest.mark.parametrize("make", LOSSES)
def test_state_dict_round_trip_keeps_scale(make) -> None:
    torch.manual_seed(0)
    loss_fn = make()
    loss_fn(_batch(1), torch.tensor(SOFT_1))
    assert float(loss_fn.scale) != pytest.approx(loss_fn.initial_scale)
    state = loss_fn.state_dict()
    assert state["scale"].dtype == torch.float64
    torch.manual_seed(1)
    fresh = make()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.scale, loss_fn.scale)
    assert torch.equal(fresh.centers, loss_fn.centers)
    fresh.reset_scale()
    assert float(fresh.scale) == pytest.approx(fresh.initial_scale)


def test_fixed_centres_are_seeded_unit_buffers() -> None:
    a = SubClusterAdaCos(3, dim=6, n_centers=2, trainable_centers=False)
    b = SubClusterAdaCos(3, dim=6, n_centers=2, trainable_centers=False)
    c = SubClusterAdaCos(3, dim=6, n_centers=2, trainable_centers=False, seed=5)
    assert list(a.parameters()) == []
    assert "centers" in a.state_dict()
    assert torch.equal(a.centers, b.centers) and not torch.equal(a.centers, c.centers)
    assert_close(a.centers.norm(dim=-1), torch.ones(3, 2))
    fixed = AdaCos(3, dim=6, trainable_centers=False)
    assert list(fixed.parameters()) == [] and fixed.centers.shape == (3, 6)


def test_non_finite_embeddings_keep_previous_scale() -> None:
    loss_fn = SubClusterAdaCos(3, dim=5, n_centers=2)
    emb = _batch(0)
    emb[0, 0] = float("nan")
    loss_fn(emb, torch.tensor([0, 1, 2]))
    assert float(loss_fn.scale) == pytest.approx(loss_fn.initial_scale)


def test_zero_embedding_is_safe() -> None:
    loss_fn = SubClusterAdaCos(3, dim=5, n_centers=2)
    emb = torch.zeros(3, 5, requires_grad=True)
    loss = loss_fn(emb, torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert np.isfinite(float(loss_fn.scale))


def test_repr_and_invalid_options() -> None:
    text = repr(SubClusterAdaCos(3, dim=5, n_centers=2))
    assert "n_classes=3" in text and "n_centers=2" in text and "median_angle='nearest'" in text
    assert "n_classes=4" in repr(AdaCos(4, dim=5))
    with pytest.raises(ValueError, match="median_angle"):
        SubClusterAdaCos(3, median_angle="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SubClusterAdaCos(1, n_centers=1)
    with pytest.raises(ValueError):
        SubClusterAdaCos(0)
