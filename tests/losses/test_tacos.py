"""TACos (Diss. Def. 6.4, Eq. 69-73) against a slow reference, toy training and scale checks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kwsos.losses import TACos, position_labels, uniform_positions

from ._helpers import Adam, assert_close


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_tacos_step(
    emb: np.ndarray, centers: np.ndarray, lab_kw: np.ndarray, lab_pos: np.ndarray, s_prev: float
) -> tuple[float, float]:
    """One TACos training step (s_t, loss) written out with loops (Eq. 69-73, 38-40)."""
    n_batch, n_frames, _ = emb.shape
    n_kw, n_pos, n_centers, _ = centers.shape
    sim = np.zeros((n_batch, n_kw, n_pos))
    for b in range(n_batch):
        for k in range(n_kw):
            for p in range(n_pos):
                per_frame = [
                    max(_cos(emb[b, t], centers[k, p, m]) for m in range(n_centers))
                    for t in range(n_frames)
                ]
                sim[b, k, p] = sum(per_frame) / n_frames  # Eq. 69
    sim_max = max(
        s_prev * sim[b, k, p] for b in range(n_batch) for k in range(n_kw) for p in range(n_pos)
    )
    total = 0.0
    for b in range(n_batch):
        for k in range(n_kw):
            for p in range(n_pos):
                total += math.exp(s_prev * sim[b, k, p] - sim_max)
    b_avg = total / n_batch
    angles = [
        sum(
            lab_kw[b, k] * lab_pos[b, p] * math.acos(sim[b, k, p])
            for k in range(n_kw)
            for p in range(n_pos)
        )
        for b in range(n_batch)
    ]
    s = (sim_max + math.log(b_avg)) / math.cos(min(math.pi / 4, float(np.median(angles))))
    loss = 0.0
    for b in range(n_batch):
        denom = sum(math.exp(s * sim[b, k, p]) for k in range(n_kw) for p in range(n_pos))
        for k in range(n_kw):  # Eq. 71
            p_kw = sum(math.exp(s * sim[b, k, p]) for p in range(n_pos)) / denom
            loss -= lab_kw[b, k] * math.log(p_kw)
        for p in range(n_pos):  # Eq. 72
            p_pos = sum(math.exp(s * sim[b, k, p]) for k in range(n_kw)) / denom
            loss -= lab_pos[b, p] * math.log(p_pos)
    return s, loss / n_batch


def _segments(seed: int, n_batch: int = 3, n_frames: int = 2, dim: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n_batch, n_frames, dim, generator=g)


LAB_KW_1 = [[1.0, 0.0], [0.6, 0.4], [0.0, 1.0]]
LAB_POS_1 = [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]
LAB_KW_2 = [[0.0, 1.0], [1.0, 0.0], [0.3, 0.7]]
LAB_POS_2 = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]


def test_tacos_matches_reference_over_two_steps() -> None:
    torch.manual_seed(0)
    loss_fn = TACos(2, 3, dim=4, n_centers=2)
    centers = loss_fn.centers.detach().double().numpy()
    s = math.sqrt(2) * math.log(2 * 3 - 1)
    assert float(loss_fn.scale) == pytest.approx(s)
    for seed, lab_kw, lab_pos in ((1, LAB_KW_1, LAB_POS_1), (2, LAB_KW_2, LAB_POS_2)):
        emb = _segments(seed)
        loss = loss_fn(emb, torch.tensor(lab_kw), torch.tensor(lab_pos))
        s, expected = ref_tacos_step(
            emb.double().numpy(), centers, np.array(lab_kw), np.array(lab_pos), s
        )
        assert float(loss_fn.scale) == pytest.approx(s, rel=1e-6)  # s_t used in step t
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_similarities_are_mean_over_frames_of_max_over_centres() -> None:
    loss_fn = TACos(2, 3, dim=4, n_centers=2)
    emb = _segments(3, n_frames=5)
    sim = loss_fn.similarities(emb)
    assert sim.shape == (3, 2, 3)
    cos = torch.einsum(
        "btd,kpmd->btkpm", F.normalize(emb, dim=-1), F.normalize(loss_fn.centers.detach(), dim=-1)
    )
    assert_close(sim, cos.amax(-1).mean(1))


def test_marginals_sum_to_one() -> None:
    loss_fn = TACos(3, 4, dim=4, n_centers=2).eval()
    emb = _segments(4, n_batch=5)
    log_kw, log_pos = loss_fn.keyword_log_probs(emb), loss_fn.position_log_probs(emb)
    assert log_kw.shape == (5, 3) and log_pos.shape == (5, 4)
    assert_close(log_kw.exp().sum(1), torch.ones(5))
    assert_close(log_pos.exp().sum(1), torch.ones(5))
    joint = loss_fn.log_probs(emb).exp()
    assert_close(joint.sum((1, 2)), torch.ones(5))
    assert_close(joint.sum(2), log_kw.exp())


def test_one_position_is_keyword_only_loss() -> None:
    torch.manual_seed(0)
    loss_fn = TACos(3, 1, dim=4, n_centers=2)
    assert loss_fn.initial_scale == pytest.approx(math.sqrt(2) * math.log(2))
    emb = _segments(5)
    lab_kw = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.3, 0.7], [0.0, 1.0, 0.0]])
    lab_pos = torch.ones(3, 1)
    loss = loss_fn(emb, lab_kw, lab_pos)
    assert torch.equal(loss_fn.position_log_probs(emb), torch.zeros(3, 1))  # L_pos == 0
    l_kw = -(lab_kw * loss_fn.keyword_log_probs(emb)).sum(1).mean()
    assert torch.equal(loss, l_kw)
    # and it is the slow reference with a single position
    centers = loss_fn.centers.detach().double().numpy()
    s, expected = ref_tacos_step(
        emb.double().numpy(), centers, lab_kw.double().numpy(), np.ones((3, 1)),
        loss_fn.initial_scale,
    )  # fmt: skip
    assert float(loss_fn.scale) == pytest.approx(s, rel=1e-6)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_joint_angle_weight_is_outer_product() -> None:
    loss_fn = TACos(2, 3, dim=4, n_centers=2)
    with torch.no_grad():
        sim = loss_fn.similarities(_segments(6))
    lab_kw, lab_pos = torch.tensor(LAB_KW_1), torch.tensor(LAB_POS_1)
    angles = loss_fn.joint_angles(sim, lab_kw, lab_pos)
    expected = [
        sum(
            LAB_KW_1[b][k] * LAB_POS_1[b][p] * math.acos(float(sim[b, k, p]))
            for k in range(2)
            for p in range(3)
        )
        for b in range(3)
    ]
    np.testing.assert_allclose(angles.numpy(), expected, rtol=1e-6)


def _toy_segments(seed: int, n_kw: int = 2, n_pos: int = 3, reps: int = 3, n_frames: int = 4):
    """Segments whose frames scatter around one mean per (keyword, position)."""
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(n_kw, n_pos, 6, generator=g)
    kw = torch.arange(n_kw).repeat_interleave(n_pos * reps)
    pos = torch.arange(n_pos).repeat(n_kw * reps)
    x = means[kw, pos][:, None, :] + 0.5 * torch.randn(len(kw), n_frames, 6, generator=g)
    return x, kw, pos, g


def test_tacos_toy_problem() -> None:
    torch.manual_seed(0)
    x, kw, pos, _ = _toy_segments(0)
    lab_kw, lab_pos = F.one_hot(kw, 2).float(), F.one_hot(pos, 3).float()
    model = torch.nn.Linear(6, 16)  # applied frame by frame
    loss_fn = TACos(2, 3, dim=16, n_centers=2)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=0.05)
    losses = []
    for _ in range(200):
        loss = loss_fn(model(x), lab_kw, lab_pos)
        opt.step(loss)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    loss_fn.eval()
    with torch.no_grad():
        emb = model(x)
        assert (loss_fn.keyword_log_probs(emb).argmax(1) == kw).all()
        assert (loss_fn.position_log_probs(emb).argmax(1) == pos).all()


def test_tacos_scale_stays_bounded_with_mixup() -> None:
    torch.manual_seed(0)
    x, kw, pos, g = _toy_segments(1, reps=2, n_frames=2)
    lab_kw, lab_pos = F.one_hot(kw, 2).float(), F.one_hot(pos, 3).float()
    model = torch.nn.Linear(6, 16)
    loss_fn = TACos(2, 3, dim=16, n_centers=2)
    opt = Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    scales = []
    for _ in range(1000):
        lam = torch.rand(len(kw), 1, generator=g)
        perm = torch.randperm(len(kw), generator=g)
        xb = lam[:, :, None] * x + (1 - lam[:, :, None]) * x[perm]
        loss = loss_fn(
            model(xb),
            lam * lab_kw + (1 - lam) * lab_kw[perm],
            lam * lab_pos + (1 - lam) * lab_pos[perm],
        )
        opt.step(loss)
        scales.append(float(loss_fn.scale))
    assert np.isfinite(scales).all()
    assert 1.0 <= min(scales) and max(scales) <= 100.0


def test_position_helpers_feed_tacos() -> None:
    # a 2-segment shot of keyword 1 with N_pos = 3, plus one "no speech" segment (keyword 0)
    lab_pos = torch.from_numpy(np.vstack([position_labels(2, 3), uniform_positions(1, 3)]))
    lab_kw = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    loss = TACos(2, 3, dim=4, n_centers=2)(_segments(7), lab_kw, lab_pos)
    assert torch.isfinite(loss) and loss.item() > 0


def test_no_gradient_into_scale_and_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    loss_fn = TACos(2, 3, dim=4, n_centers=2)
    frozen = copy.deepcopy(loss_fn)
    emb = _segments(1).requires_grad_(True)
    loss_fn(emb, torch.tensor(LAB_KW_1), torch.tensor(LAB_POS_1)).backward()
    assert "scale" not in dict(loss_fn.named_parameters())
    assert not loss_fn.scale.requires_grad and loss_fn.scale.grad is None
    with torch.no_grad():
        frozen.scale.copy_(loss_fn.scale)
    emb2 = _segments(1).requires_grad_(True)
    frozen.eval()(emb2, torch.tensor(LAB_KW_1), torch.tensor(LAB_POS_1)).backward()
    assert_close(emb.grad, emb2.grad)

    state = loss_fn.state_dict()
    assert state["scale"].dtype == torch.float64
    fresh = TACos(2, 3, dim=4, n_centers=2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.scale, loss_fn.scale) and torch.equal(fresh.centers, loss_fn.centers)


def test_eval_does_not_update_scale_and_validation() -> None:
    loss_fn = TACos(2, 3, dim=4, n_centers=2).eval()
    loss_fn(_segments(1), torch.tensor([0, 1, 1]), torch.tensor([2, 0, 1]))
    assert float(loss_fn.scale) == pytest.approx(loss_fn.initial_scale)
    with pytest.raises(ValueError, match="embeddings"):
        loss_fn(torch.ones(3, 4), torch.tensor(LAB_KW_1), torch.tensor(LAB_POS_1))
    with pytest.raises(ValueError, match="lab_pos"):
        loss_fn(_segments(1), torch.tensor(LAB_KW_1), torch.ones(3, 2) / 2)
    with pytest.raises(ValueError):
        TACos(1, 1)
    fixed = TACos(2, 3, dim=4, n_centers=2, trainable_centers=False)
    assert list(fixed.parameters()) == [] and fixed.centers.shape == (2, 3, 2, 4)
    text = repr(loss_fn)
    assert "n_keywords=2" in text and "n_positions=3" in text
