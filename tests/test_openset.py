"""OpenSetClassifier on generated tone "alarms" (3 beep patterns) and an unknown noise class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from osc_alarms import KNOWN, SR, TINY, alarm, clips

from kwsos.errors import KwsosError
from kwsos.openset import MODEL_FORMAT, OpenSetClassifier, OpenSetConfig


@pytest.fixture(scope="module")
def fitted() -> OpenSetClassifier:
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    return OpenSetClassifier(OpenSetConfig(**TINY), threshold=0.5, seed=1).fit(shots)


def test_recognises_known_and_rejects_unknown(fitted: OpenSetClassifier):
    assert fitted.classes_ == sorted(KNOWN)
    tests = {k: clips(k, 6, 100 + i) for i, k in enumerate(KNOWN)}
    for k, xs in tests.items():
        pred = fitted.predict(xs)
        assert np.mean(pred == k) >= 5 / 6, (k, pred)
    noise = clips("noise", 6, 200)
    known_scores = fitted.score_samples([x for xs in tests.values() for x in xs])
    noise_scores = fitted.score_samples(noise)
    # the noise is further from every class's shots than the alarms are from theirs
    assert np.median(noise_scores) < np.median(known_scores)
    thr = 0.5 * (np.median(noise_scores) + np.median(known_scores))
    assert np.mean(fitted.predict(noise, threshold=thr) == "unknown") >= 4 / 6


def test_known_unknowns_are_rejected():
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    clf = OpenSetClassifier(OpenSetConfig(**TINY), threshold=-1.0, seed=1)
    clf.fit(shots, {"noise": clips("noise", 2, 7)})
    assert clf.classes_ == sorted(KNOWN) and clf.unknown_classes_ == ["noise"]
    det = clf.predict_details(clips("noise", 6, 300) + clips("warble", 3, 301))
    # threshold -1 rejects nothing: only the nearest-shot-is-a-known-unknown rule acts
    assert np.mean(det.labels[:6] == "unknown") >= 5 / 6
    assert np.all(det.labels[6:] == "warble")
    assert det.similarities.shape == (9, 3)  # known classes only
    assert (
        np.all(det.unknown_similarity[:6] > det.scores[:6])
        or np.mean(det.unknown_similarity[:6] > det.scores[:6]) >= 5 / 6
    )


def test_decisions_are_consistent(fitted: OpenSetClassifier):
    xs = clips("slow_beeps", 3, 11) + clips("noise", 3, 12)
    det = fitted.predict_details(xs)
    sims = fitted.decision_function(xs)
    np.testing.assert_allclose(sims, det.similarities)
    np.testing.assert_allclose(det.scores, sims.max(axis=1))
    assert list(det.top_class) == [fitted.classes_[i] for i in sims.argmax(axis=1)]
    np.testing.assert_array_equal(det.labels == "unknown", det.decision_scores < 0.5)
    assert np.all((-1 - 1e-6 <= sims) & (sims <= 1 + 1e-6))
    # a shot is its own nearest neighbour: similarity 1 to its class
    emb = fitted.shot_embeddings_
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_save_load_round_trip(fitted: OpenSetClassifier, tmp_path: Path):
    xs = clips("fast_beeps", 2, 21) + clips("noise", 2, 22)
    path = fitted.save(tmp_path / "sub" / "model.osc")
    assert path.is_file() and not list(path.parent.glob(".*"))  # atomic: no temp file left
    state = torch.load(path, weights_only=True)
    assert state["format"] == MODEL_FORMAT and "kwsos_version" in state
    clone = OpenSetClassifier.load(path)
    assert clone.config == fitted.config and clone.classes_ == fitted.classes_
    assert clone.threshold_ == fitted.threshold_
    np.testing.assert_array_equal(clone.decision_function(xs), fitted.decision_function(xs))
    np.testing.assert_array_equal(clone.predict(xs), fitted.predict(xs))


def test_file_and_waveform_give_the_same_features(tmp_path: Path):
    x = alarm("warble", np.random.default_rng(3))
    path = tmp_path / "w.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    clf = OpenSetClassifier(OpenSetConfig(**TINY))
    np.testing.assert_allclose(clf.features([path]), clf.features([x]), atol=1e-4)
    # shorter clips are zero-padded, longer ones cut to clip_s
    assert clf.features([x[:8000], np.tile(x, 3)]).shape == (2, 61, 32)


def test_threshold_estimated_from_leave_one_out_scores():
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    clf = OpenSetClassifier(OpenSetConfig(**TINY), threshold=None, epochs=20).fit(shots)
    assert -1.0 <= clf.threshold_ <= 1.0
    one = {k: v[:1] for k, v in shots.items()}
    with pytest.raises(KwsosError, match="one shot per class"):
        OpenSetClassifier(OpenSetConfig(**TINY), threshold=None, epochs=2).fit(one)


def test_paper_schedule():
    c = OpenSetConfig()
    assert c.schedule(1) == (100, 8) and c.schedule(4) == (400, 32)  # Diss. 6.2.2
    assert OpenSetConfig(epochs=7, batch_size=5).schedule(4) == (7, 5)
    assert OpenSetConfig.from_dict(c.to_dict()) == c


def test_bad_input(fitted: OpenSetClassifier, tmp_path: Path):
    x = clips("warble", 1, 0)
    quick = OpenSetClassifier(OpenSetConfig(**TINY), epochs=1)
    with pytest.raises(KwsosError, match="has no clips"):
        quick.fit({"a": x, "b": []})
    with pytest.raises(KwsosError, match="only one class"):
        quick.fit({"a": x})
    with pytest.raises(KwsosError, match="no classes"):
        quick.fit({}, {"n": x})
    with pytest.raises(KwsosError, match="may not be called 'unknown'"):
        quick.fit({"a": x, "unknown": x})
    with pytest.raises(KwsosError, match="both known and unknown"):
        quick.fit({"a": x, "b": x}, {"a": x})
    with pytest.raises(KwsosError, match="single clip"):
        quick.fit({"a": x[0], "b": x})
    with pytest.raises(KwsosError, match="silent"):
        quick.fit({"a": x, "b": [np.zeros(SR, np.float32)]})
    with pytest.raises(KwsosError, match="1-D waveform"):
        fitted.predict([np.zeros((2, SR))])
    with pytest.raises(KwsosError, match="NaN"):
        fitted.predict([np.full(SR, np.nan)])
    with pytest.raises(KwsosError, match="not found"):
        fitted.predict([tmp_path / "missing.wav"])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(KwsosError, match="cannot read"):
        fitted.predict([bad])
    with pytest.raises(KwsosError, match="not fitted"):
        OpenSetClassifier().predict(x)
    with pytest.raises(KwsosError, match="not found"):
        OpenSetClassifier.load(tmp_path / "nothing.osc")
    with pytest.raises(KwsosError, match="open-set model"):
        OpenSetClassifier.load(bad)
    with pytest.raises(KwsosError, match="shape"):
        quick.fit_features({"a": np.zeros((1, 5, 32)), "b": np.zeros((1, 5, 32))})
    with pytest.raises(KwsosError, match="unknown open-set option"):
        OpenSetClassifier(nonsense=1)
    with pytest.raises(KwsosError, match="threshold"):
        OpenSetConfig(threshold=2.0)
    with pytest.raises(KwsosError, match="directory"):
        fitted.save(tmp_path)
