import numpy as np
import torch
from torch import nn

from kwsos.losses import AdaCos
from kwsos.training import TrainConfig, balanced_indices, train


def test_balanced_indices_oversamples_every_class_to_the_largest():
    ids = np.array([0] * 7 + [1] * 3 + [2] * 1)
    idx = balanced_indices(ids, np.random.default_rng(0))
    counts = np.bincount(ids[idx])
    assert list(counts) == [7, 7, 7]
    assert set(idx[ids[idx] == 0]) == set(range(7))  # the largest class appears exactly once each


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, 90)
    x = (centres[y] + rng.standard_normal((90, 8))).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[y], y


def test_training_reduces_the_loss_and_is_reproducible():
    x, t, y = _toy()

    def run():
        torch.manual_seed(0)
        model = nn.Linear(8, 4)
        loss = AdaCos(3, dim=4)
        cfg = TrainConfig(epochs=15, batch_size=16, mixup=False, seed=3, device="cpu")
        log = train(model, loss, x, (t,), y, cfg)
        with torch.no_grad():
            pred = loss.cosine(model(torch.from_numpy(x))).argmax(1).numpy()
        return log, pred, model.weight.detach().clone()

    log, pred, w = run()
    assert log.losses[-1] < log.losses[0]  # the adaptive scale keeps AdaCos losses well above 0
    assert (pred == y).mean() > 0.95
    log2, _, w2 = run()
    assert log2.losses == log.losses and torch.equal(w, w2)


def test_early_stop_and_hook():
    x, t, y = _toy(1)
    seen = []
    cfg = TrainConfig(epochs=200, batch_size=32, mixup=True, seed=0, device="cpu", patience=3)
    log = train(
        nn.Linear(8, 4), AdaCos(3, dim=4), x, (t,), y, cfg, hook=lambda *a, **k: seen.append(k)
    )
    assert log.stopped.startswith("early stop") and log.epochs_run < 200
    assert [s["completed"] for s in seen] == list(range(1, log.epochs_run + 1))


def test_checkpoint_written(tmp_path):
    x, t, y = _toy(2)
    ck = tmp_path / "ck.pt"
    train(
        nn.Linear(8, 4),
        AdaCos(3, dim=4),
        x,
        (t,),
        y,
        TrainConfig(epochs=2, device="cpu"),
        checkpoint=ck,
    )
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 2 and "weight" in state["model"]


def test_time_budget_stops_mid_epoch():
    x, t, y = _toy(3)
    cfg = TrainConfig(epochs=50, batch_size=8, device="cpu", max_minutes=1e-9)
    log = train(nn.Linear(8, 4), AdaCos(3, dim=4), x, (t,), y, cfg)
    assert log.stopped == "time budget" and log.steps == 1 and log.epochs_run == 1
