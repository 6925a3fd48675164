"""Training keyword embeddings from shots, and the KeywordSpotter with learned features."""

import numpy as np
import pytest
from conftest import SR, word

from kwsos.embeddings.temporal import (
    NO_SPEECH,
    REVERSED_SUFFIX,
    EmbeddingTrainingConfig,
    build_training_set,
)
from kwsos.errors import KwsosError
from kwsos.tasks.kws import KeywordSpotter, SpotterConfig, default_features
from kwsos.training import TrainConfig

TINY = EmbeddingTrainingConfig(
    channels=(4, 8, 8, 16),
    dim=16,
    n_centers=2,
    background_clips=4,
    train=TrainConfig(epochs=2, batch_size=16, device="cpu", max_minutes=None),
)


def _shots(rng):
    return {name: [word(name, rng, rate=r) for r in (0.9, 1.0, 1.1)] for name in ("alpha", "beta")}


def test_training_set_classes_and_targets(rng):
    shots = _shots(rng)
    bg = [0.01 * rng.standard_normal(SR).astype(np.float32)]
    ts = build_training_set(shots, bg, kind="tacos", reversed_segments=True, rng=rng)
    assert ts.classes == [
        "alpha",
        "beta",
        "alpha" + REVERSED_SUFFIX,
        "beta" + REVERSED_SUFFIX,
        NO_SPEECH,
    ]
    assert ts.x.shape[1:] == (16, 64) and len(ts.x) == len(ts.lab_kw) == len(ts.lab_pos)
    np.testing.assert_allclose(ts.lab_kw.sum(1), 1)
    np.testing.assert_allclose(ts.lab_pos.sum(1), 1, rtol=1e-6)
    fwd = ts.class_ids == 0
    rev = ts.class_ids == 2
    # forward segments have peaked position targets, reversed and no-speech uniform ones
    assert ts.lab_pos[fwd].max(1).min() > 1 / ts.n_positions
    np.testing.assert_allclose(ts.lab_pos[rev], 1 / ts.n_positions, rtol=1e-6)
    np.testing.assert_allclose(ts.lab_pos[ts.class_ids == 4], 1 / ts.n_positions, rtol=1e-6)
    # the reversed class holds the time-flipped forward segments
    np.testing.assert_array_equal(ts.x[rev], ts.x[fwd][:, ::-1])
    # no-speech is subsampled to at most the largest keyword class
    assert (ts.class_ids == 4).sum() <= max(fwd.sum(), (ts.class_ids == 1).sum())
    # N_pos = the most segments of any shot (the longest shot's segments get distinct targets)
    longest = max(len(w) for ws in shots.values() for w in ws)
    n_frames = 1 + (longest - 1024) // 256
    assert ts.n_positions == 1 + -(-(n_frames - 16) // 3)


def test_lkw_has_one_position_and_no_reversed_option(rng):
    ts = build_training_set(_shots(rng), [], kind="lkw", reversed_segments=False)
    assert ts.n_positions == 1 and ts.classes == ["alpha", "beta"]
    np.testing.assert_array_equal(ts.lab_pos, 1)


@pytest.fixture(scope="module")
def learned(tmp_path_factory, audio_set):
    sp = KeywordSpotter(SpotterConfig(features=default_features("tacos"), training=TINY))
    for name, paths in audio_set["shots"].items():
        sp.enroll(name, paths)
    assert sp.needs_training
    tlog = sp.train_features()
    return sp, tlog


def test_spotter_trains_and_round_trips(learned, audio_set, tmp_path):
    sp, tlog = learned
    assert tlog.epochs_run == 2 and not sp.needs_training
    assert sp.extractor.training["keywords"] == {"alpha": 3, "beta": 3}
    events = sp.detect(audio_set["recording"], threshold=0.5)
    sp.save(tmp_path / "bank")
    assert (tmp_path / "bank" / "model.pt").is_file()
    again = KeywordSpotter.load(tmp_path / "bank")
    assert not again.needs_training and again.feature_name == "tacos"
    assert again.detect(audio_set["recording"], threshold=0.5) == events


def test_new_shots_make_the_network_stale(learned, audio_set, tmp_path):
    sp, _ = learned
    sp2 = KeywordSpotter.load(_saved(sp, tmp_path))
    sp2.enroll("alpha", audio_set["shots"]["alpha"][:1])
    assert sp2.needs_training
    sp2.save(tmp_path / "stale")  # no templates written for a stale network
    assert not list((tmp_path / "stale" / "templates").iterdir())
    assert KeywordSpotter.load(tmp_path / "stale").needs_training


def test_inference_mode_switch_keeps_the_network(learned, audio_set):
    sp, _ = learned
    a = sp.extractor(np.asarray(word("alpha", np.random.default_rng(0)), np.float32))
    sp.set_inference("exact")
    b = sp.extractor(np.asarray(word("alpha", np.random.default_rng(0)), np.float32))
    sp.set_inference("conv")
    assert a.shape == b.shape and not sp.needs_training


def test_inference_precision_switch(learned, audio_set):
    sp, _ = learned
    mode = sp.extractor.mode
    sp.set_inference(precision="fp32")
    assert (sp.extractor.mode, sp.extractor.precision) == (mode, "fp32")
    assert sp.config.features.precision == "fp32"
    # templates are dropped and re-extracted with the new precision on the next detect
    assert all(kw.templates is None for kw in sp._keywords.values())
    sp.detect(audio_set["recording"], threshold=0.3)
    assert all(kw.templates is not None for kw in sp._keywords.values())
    with pytest.raises(KwsosError, match="precision"):
        sp.set_inference(precision="fp16")
    sp.set_inference(precision="auto")


def _saved(sp, tmp_path):
    sp.save(tmp_path / "b")
    return tmp_path / "b"


def test_sliding_window_baseline_end_to_end(audio_set, tmp_path):
    cfg = TINY.to_dict()
    sp = KeywordSpotter(SpotterConfig.for_features("sliding").replace(training=cfg))
    for name, paths in audio_set["shots"].items():
        sp.enroll(name, paths)
    sp.train_features()
    assert set(sp.extractor.training["centres"]) == {"alpha", "beta"}
    assert sp.extractor(np.zeros(8000, np.float32) + 1e-3).shape[1] == 16
    events = sp.detect(audio_set["recording"], threshold=2.0)  # everything is positive
    assert {e.label for e in events} == {"alpha", "beta"}
    assert all(e.offset > e.onset for e in events)
    sp.save(tmp_path / "bank")
    again = KeywordSpotter.load(tmp_path / "bank")
    assert again.detect(audio_set["recording"], threshold=0.3) == sp.detect(
        audio_set["recording"], threshold=0.3
    )


def test_training_set_input_norm_matches_the_extractor(rng):
    from kwsos.embeddings.temporal import EmbeddingFeatures
    from kwsos.features import training_segments

    shots = _shots(rng)
    ex = EmbeddingFeatures(input_norm="cmvn", input_norm_frames=10)
    ts = build_training_set(
        shots, [], kind="tacos", reversed_segments=False, input_norm="cmvn", input_norm_frames=10
    )
    # the first shot's segments: the extractor's input frames of the whole shot, segmented,
    # padded with the local mean 0
    expect = training_segments(ex.input_frames(shots["alpha"][0]), pad_value=0.0)
    np.testing.assert_allclose(ts.x[: len(expect)], expect, atol=1e-6)
    raw = build_training_set(shots, [], kind="tacos", reversed_segments=False)
    assert raw.x.shape == ts.x.shape and np.abs(raw.x - ts.x).max() > 1


def test_training_config_input_norm_round_trips():
    cfg = EmbeddingTrainingConfig(input_norm="cmn", input_norm_frames=50)
    again = EmbeddingTrainingConfig.from_dict(cfg.to_dict())
    assert again.input_norm == "cmn" and again.input_norm_frames == 50
    old = {k: v for k, v in cfg.to_dict().items() if not k.startswith("input_norm")}
    assert EmbeddingTrainingConfig.from_dict(old).input_norm == "none"
    with pytest.raises(ValueError, match="input_norm"):
        EmbeddingTrainingConfig(input_norm="zscore")


def test_training_follows_the_extractors_input_norm():
    sp = KeywordSpotter(
        SpotterConfig(features=default_features("tacos", input_norm="cmn", input_norm_frames=40))
    )
    cfg = sp.training_config()
    assert (cfg.kind, cfg.input_norm, cfg.input_norm_frames) == ("tacos", "cmn", 40)
    # a training-side setting cannot drift from what inference uses
    sp.set_training(input_norm="cmvn", freq_warp=0.1)
    cfg = sp.training_config()
    assert (cfg.input_norm, cfg.freq_warp) == ("cmn", 0.1)


def test_training_config_freq_warp_round_trips_and_is_checked():
    cfg = EmbeddingTrainingConfig(freq_warp=0.15)
    assert EmbeddingTrainingConfig.from_dict(cfg.to_dict()).freq_warp == 0.15
    old = {k: v for k, v in cfg.to_dict().items() if k != "freq_warp"}
    assert EmbeddingTrainingConfig.from_dict(old).freq_warp == 0.0
    with pytest.raises(ValueError, match="freq_warp"):
        EmbeddingTrainingConfig(freq_warp=-0.1)


def test_fused_hfcc_spotter_round_trips(learned, audio_set, tmp_path):
    sp, _ = learned
    sp = KeywordSpotter.load(_saved(sp, tmp_path))
    sp.set_inference(hfcc_weight=0.5)
    events = sp.detect(audio_set["recording"], threshold=0.5)
    dim = sp.extractor.embedding_dim + 39
    assert all(t.shape[1] == dim for kw in sp._keywords.values() for t in kw.templates)
    sp.save(tmp_path / "fused")
    again = KeywordSpotter.load(tmp_path / "fused")
    assert again.extractor.hfcc_weight == 0.5
    assert again.detect(audio_set["recording"], threshold=0.5) == events
    with pytest.raises(KwsosError, match="hfcc_weight"):
        again.set_inference(hfcc_weight=2.0)


def test_tune_hfcc_weight_keeps_the_best_validation_weight(learned, audio_set, tmp_path):
    from kwsos.events import read_events

    sp = KeywordSpotter.load(_saved(learned[0], tmp_path))
    ref = read_events(audio_set["reference"])
    rec = [audio_set["recording"]]
    best, results = sp.tune_hfcc_weight(rec, ref, [1.0, 0.0, 0.5, 0.5])
    assert list(results) == [0.0, 0.5, 1.0]
    f1 = {w: r.scores.f1 for w, r in results.items()}
    assert f1[best] == max(f1.values())
    assert best == min(w for w in f1 if f1[w] == f1[best])  # ties: the smaller weight
    assert sp.extractor.hfcc_weight == best and sp.config.features.hfcc_weight == best
    assert sp.config.decision.threshold == results[best].threshold
    # the same as tuning that weight on its own
    ref_sp = KeywordSpotter.load(tmp_path / "b").set_inference(hfcc_weight=best)
    assert ref_sp.tune(rec, ref).threshold == results[best].threshold
    assert sp.evaluate(rec, ref)[0].f1 == pytest.approx(f1[best])


def test_tune_hfcc_weight_needs_learned_dtw_features(spotter, audio_set):
    from kwsos.events import read_events

    with pytest.raises(KwsosError, match="learned DTW features"):
        spotter.tune_hfcc_weight(
            [audio_set["recording"]], read_events(audio_set["reference"]), [0.5]
        )
