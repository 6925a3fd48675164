"""The shared clip embedder (kwsos.embeddings.clip) on its own, without the open-set task."""

from __future__ import annotations

import numpy as np
import pytest
from osc_alarms import TINY, alarm

from kwsos.embeddings.clip import (
    ClipEmbedder,
    ClipFrontend,
    ClipFrontendConfig,
    ClipModelConfig,
    ClipTrainingConfig,
)
from kwsos.errors import KwsosError
from kwsos.tasks.openset import OpenSetConfig


def test_frontend_cuts_and_pads_to_the_clip_length():
    fe = ClipFrontend(ClipFrontendConfig(clip_s=0.5))
    rng = np.random.default_rng(0)
    long, short = rng.standard_normal(16000), rng.standard_normal(3000)
    assert len(fe.wave(long)) == len(fe.wave(short)) == 8000
    assert np.all(fe.wave(short)[3000:] == 0)
    x = fe([long, short])
    assert x.shape == (2, fe.n_frames, 64)
    with pytest.raises(KwsosError, match="single clip"):
        fe(long)
    with pytest.raises(KwsosError, match="shape"):
        fe.check(np.zeros((1, 3, 64)), "a")


def test_training_schedule():
    t = ClipTrainingConfig()
    assert t.schedule(2) == (200, 16)  # Diss. 6.2.2: 100 epochs and batch 8 per shot
    assert t.schedule(4, finetune=True) == (25, 32)  # the same number of steps for any shots
    assert ClipTrainingConfig(epochs=3, batch_size=5).schedule(9) == (3, 5)
    with pytest.raises(KwsosError, match="batch_size"):
        ClipTrainingConfig(batch_size=1)
    with pytest.raises(KwsosError, match="keep_pretrained"):
        ClipModelConfig(keep_pretrained=True)


def test_embedder_trains_and_gives_unit_embeddings_of_its_classes():
    cfg = OpenSetConfig.from_flat({**TINY, "epochs": 30})
    rng = np.random.default_rng(0)
    kinds = ["fast_beeps", "noise"]
    emb = ClipEmbedder(cfg.frontend, cfg.model, cfg.training)
    x = emb.frontend([alarm(k, rng) for k in kinds for _ in range(3)])
    emb.fit(x, np.repeat([0, 1], 3), 2)
    assert len(emb.models_) == 1 and emb.train_logs_[0]["epochs_run"] == 30
    z = emb.transform([alarm(k, rng) for k in kinds])
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    train = emb.embed_features(x)
    # each new clip is closer to the training clips of its own kind
    sims = z @ train.T
    assert sims[0, :3].mean() > sims[0, 3:].mean() and sims[1, 3:].mean() > sims[1, :3].mean()
    clone = ClipEmbedder(cfg.frontend, cfg.model, cfg.training).load_state(emb.state())
    np.testing.assert_allclose(clone.embed_features(x), train, atol=1e-6)


def test_frontend_gives_the_same_features_for_any_number_of_jobs(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(1)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[i], rng.uniform(-0.5, 0.5, 20000), 22050)
    fe = ClipFrontend(ClipFrontendConfig(clip_s=0.5))
    clips = [*paths, rng.standard_normal(9000)]
    np.testing.assert_array_equal(fe(clips, jobs=1), fe(clips, jobs=3))
