"""OpenSetClassifier on generated tone "alarms" (3 beep patterns) and an unknown noise class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from osc_alarms import KNOWN, SR, TINY, alarm, clips

from kwsos.embeddings.clip import ClipEmbedder
from kwsos.errors import KwsosError
from kwsos.tasks.openset import MODEL_FORMAT, OpenSetClassifier, OpenSetConfig


@pytest.fixture(scope="module")
def fitted() -> OpenSetClassifier:
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    return OpenSetClassifier(OpenSetConfig.from_flat(TINY), threshold=0.5, seed=1).fit(shots)


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
    clf = OpenSetClassifier(OpenSetConfig.from_flat(TINY), threshold=-1.0, seed=1)
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
    sims = fitted.class_similarities(xs)
    np.testing.assert_allclose(
        fitted.decision_function(xs), fitted.score_samples(xs) - fitted.threshold_
    )
    np.testing.assert_allclose(sims, det.similarities)
    np.testing.assert_allclose(det.scores, sims.max(axis=1))
    assert list(det.top_class) == [fitted.classes_[i] for i in sims.argmax(axis=1)]
    np.testing.assert_array_equal(det.labels == "unknown", det.decision_scores < 0.5)
    np.testing.assert_array_equal(det.labels == "unknown", fitted.decision_function(xs) < 0)
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
    np.testing.assert_array_equal(clone.class_similarities(xs), fitted.class_similarities(xs))
    np.testing.assert_array_equal(clone.predict(xs), fitted.predict(xs))


def test_file_and_waveform_give_the_same_features(tmp_path: Path):
    x = alarm("warble", np.random.default_rng(3))
    path = tmp_path / "w.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    clf = OpenSetClassifier(OpenSetConfig.from_flat(TINY))
    np.testing.assert_allclose(clf.features([path]), clf.features([x]), atol=1e-4)
    # shorter clips are zero-padded, longer ones cut to clip_s
    assert clf.features([x[:8000], np.tile(x, 3)]).shape == (2, 61, 32)


def test_threshold_estimated_from_leave_one_out_scores():
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    clf = OpenSetClassifier(OpenSetConfig.from_flat(TINY), threshold=None, epochs=20).fit(shots)
    assert -1.0 <= clf.threshold_ <= 1.0
    one = {k: v[:1] for k, v in shots.items()}
    with pytest.raises(KwsosError, match="one shot per class"):
        OpenSetClassifier(OpenSetConfig.from_flat(TINY), threshold=None, epochs=2).fit(one)


def test_paper_schedule():
    c = OpenSetConfig()
    assert c.schedule(1) == (100, 8) and c.schedule(4) == (400, 32)  # Diss. 6.2.2
    assert OpenSetConfig.from_flat(dict(epochs=7, batch_size=5)).schedule(4) == (7, 5)
    assert OpenSetConfig.from_dict(c.to_dict()) == c
    # fine-tuning a pretrained network: the same number of steps for any number of shots
    ft = OpenSetConfig.from_flat(dict(init="bundled"))
    assert ft.schedule(1) == (100, 8) and ft.schedule(2) == (50, 16) and ft.schedule(4) == (25, 32)


def test_bad_input(fitted: OpenSetClassifier, tmp_path: Path):
    x = clips("warble", 1, 0)
    quick = OpenSetClassifier(OpenSetConfig.from_flat(TINY), epochs=1)
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
    with pytest.raises(KwsosError, match="unknown OpenSetConfig option"):
        OpenSetClassifier(nonsense=1)
    with pytest.raises(KwsosError, match="threshold"):
        OpenSetConfig.from_flat(dict(threshold=2.0))
    with pytest.raises(KwsosError, match="directory"):
        fitted.save(tmp_path)


def test_ensemble_embedding_is_the_mean_of_the_members_similarities():
    shots = {k: clips(k, 1, i) for i, k in enumerate(KNOWN)}
    xs = clips("warble", 2, 31) + clips("noise", 2, 32)
    ens = OpenSetClassifier(OpenSetConfig.from_flat(TINY), epochs=5, ensemble=2, seed=4).fit(shots)
    assert len(ens.models_) == 2 and len(ens.train_logs_) == 2
    members = []
    for m, model in enumerate(ens.models_):
        one = OpenSetClassifier(OpenSetConfig.from_flat(TINY), epochs=5, seed=4 + m)
        one.embedder_ = ClipEmbedder(one.config.frontend, one.config.model, one.config.training)
        one.embedder_.models_ = [model]
        members.append(one.embed_features(one.features(xs)) @ one.embed_features(
            one.features([x for v in shots.values() for x in v])).T)  # fmt: skip
    emb = ens.transform(xs)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(emb @ ens.shot_embeddings_.T, np.mean(members, axis=0), atol=1e-5)
    # the second member is the network a single fit with the next seed trains
    single = OpenSetClassifier(OpenSetConfig.from_flat(TINY), epochs=5, seed=5).fit(shots)
    for a, b in zip(single.models_[0].parameters(), ens.models_[1].parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_reference_speeds_add_speed_changed_shots_as_references(tmp_path: Path):
    shots = {k: clips(k, 2, i) for i, k in enumerate(KNOWN)}
    plain = OpenSetClassifier(OpenSetConfig.from_flat(TINY), epochs=5, seed=2).fit(shots)
    refs = OpenSetClassifier(
        OpenSetConfig.from_flat(TINY), epochs=5, seed=2, reference_speeds=(0.9, 1.1)
    ).fit(shots)
    n = len(plain.shot_classes_)
    assert len(refs.shot_classes_) == 3 * n
    np.testing.assert_array_equal(refs.shot_ids_, np.tile(np.arange(n), 3))
    np.testing.assert_array_equal(refs.shot_classes_, np.tile(plain.shot_classes_, 3))
    np.testing.assert_allclose(refs.shot_embeddings_[:n], plain.shot_embeddings_, atol=1e-6)
    # block 2 is the embedding of the shots played at 0.9 x speed
    from kwsos.augment import change_speed

    x = plain.features([c for k in sorted(shots) for c in shots[k]])
    slow = change_speed(torch.from_numpy(x), torch.tensor([0.9]), bin_hz=plain.frontend.bin_hz())
    np.testing.assert_allclose(
        refs.shot_embeddings_[n : 2 * n], plain.embed_features(slow.numpy()), atol=1e-5
    )
    xs = clips("warble", 3, 41)
    # more references: a clip's similarity to a class can only grow
    assert np.all(refs.class_similarities(xs) >= plain.class_similarities(xs) - 1e-6)
    clone = OpenSetClassifier.load(refs.save(tmp_path / "refs.osc"))
    np.testing.assert_array_equal(clone.shot_ids_, refs.shot_ids_)
    np.testing.assert_array_equal(clone.class_similarities(xs), refs.class_similarities(xs))
    with pytest.raises(KwsosError, match="reference_speeds"):
        OpenSetConfig.from_flat(dict(reference_speeds=(1.0,)))


def test_pretrained_network_is_the_starting_point(tmp_path: Path):
    from kwsos.embeddings.clip import load_pretrained, pretrain, save_pretrained

    cfg = OpenSetConfig.from_flat(TINY)
    rng = np.random.default_rng(0)
    kinds = ["fast_beeps", "slow_beeps", "warble", "noise"]
    x = OpenSetClassifier(cfg).features([alarm(k, rng) for k in kinds for _ in range(4)])
    model, log = pretrain(
        x, np.repeat(kinds, 4), frontend=cfg.frontend, model=cfg.model, training=cfg.training,
        epochs=2, batch_size=8,
    )  # fmt: skip
    assert log["epochs_run"] == 2
    path = save_pretrained(model, tmp_path / "pre.pt", frontend=cfg.frontend, info={"note": "test"})
    loaded = load_pretrained(path)
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    shots = {k: clips(k, 1, i) for i, k in enumerate(KNOWN)}
    # epochs=0: the pretrained embedding itself
    frozen = OpenSetClassifier(cfg, init=str(path), epochs=0).fit(shots)
    np.testing.assert_allclose(
        frozen.shot_embeddings_,
        OpenSetClassifier(cfg, init=str(path), epochs=0).fit(shots).shot_embeddings_,
    )
    for a, b in zip(model.parameters(), frozen.models_[0].parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # fine-tuning starts from it and moves away
    tuned = OpenSetClassifier(cfg, init=str(path), epochs=3).fit(shots)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.parameters(), tuned.models_[0].parameters(), strict=True)
    )
    # keep_pretrained: the pretrained network is a member beside the fine-tuned one
    both = OpenSetClassifier(cfg, init=str(path), epochs=3, keep_pretrained=True).fit(shots)
    assert len(both.models_) == 2
    xs = clips("warble", 2, 51)
    half = np.mean([frozen.class_similarities(xs), tuned.class_similarities(xs)], axis=0)
    # max over shots of the mean similarity (one shot per class: the mean of the maxima)
    np.testing.assert_allclose(both.class_similarities(xs), half, atol=1e-5)
    clone = OpenSetClassifier.load(both.save(tmp_path / "both.osc"))
    np.testing.assert_array_equal(clone.class_similarities(xs), both.class_similarities(xs))
    with pytest.raises(KwsosError, match="needs a pretrained"):
        OpenSetConfig.from_flat(dict(keep_pretrained=True))
    with pytest.raises(KwsosError, match="n_mels 32 .classifier: 40"):
        OpenSetClassifier(cfg.replace_flat(n_mels=40), init=str(path), epochs=0).fit(shots)
    with pytest.raises(KwsosError, match="not found"):
        OpenSetClassifier(cfg, init=str(tmp_path / "none.pt")).fit(shots)
    with pytest.raises(KwsosError, match="positive"):
        OpenSetConfig.from_flat(dict(epochs=0))


def test_several_pretrained_networks_are_one_ensemble(tmp_path: Path):
    """``init=[a, b]``: each prior is fine-tuned (and kept) as it would be alone, and a clip's
    similarity is the mean over all members, i.e. the mean of the two one-prior systems."""
    from kwsos.embeddings.clip import ClipModelConfig, pretrain, save_pretrained

    cfg = OpenSetConfig.from_flat(TINY)
    rng = np.random.default_rng(3)
    kinds = ["fast_beeps", "slow_beeps", "warble", "noise"]
    x = OpenSetClassifier(cfg).features([alarm(k, rng) for k in kinds for _ in range(3)])
    paths = []
    for seed in (0, 1):  # two different priors
        model, _ = pretrain(
            x, np.repeat(kinds, 3), frontend=cfg.frontend, model=cfg.model,
            training=cfg.training.replace(seed=seed), epochs=1, batch_size=6,
        )  # fmt: skip
        paths.append(str(save_pretrained(model, tmp_path / f"p{seed}.pt", frontend=cfg.frontend)))
    shots = {k: clips(k, 1, 60 + i) for i, k in enumerate(KNOWN)}
    opts = dict(epochs=2, keep_pretrained=True)
    one = [OpenSetClassifier(cfg, init=p, **opts).fit(shots) for p in paths]
    both = OpenSetClassifier(cfg, init=paths, **opts).fit(shots)
    assert len(both.models_) == 4 and both.config.model.inits == tuple(paths)
    # member order: per prior, the kept network, then the fine-tuned one
    for mine, theirs in zip(both.models_, [*one[0].models_, *one[1].models_], strict=True):
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    xs = clips("warble", 2, 71)
    want = np.mean([c.class_similarities(xs) for c in one], axis=0)  # one shot per class
    np.testing.assert_allclose(both.class_similarities(xs), want, atol=1e-5)
    clone = OpenSetClassifier.load(both.save(tmp_path / "two.osc"))
    assert clone.config.model.init == tuple(paths) and len(clone.models_) == 4
    np.testing.assert_array_equal(clone.class_similarities(xs), both.class_similarities(xs))
    # the config: a one-element list is the plain name; repeats and empty lists are refused
    assert ClipModelConfig(init=[paths[0]]).init == paths[0]
    assert ClipModelConfig.from_dict(ClipModelConfig(init=paths).to_dict()).inits == tuple(paths)
    with pytest.raises(KwsosError, match="twice"):
        ClipModelConfig(init=[paths[0], paths[0]])
    with pytest.raises(KwsosError, match="empty"):
        ClipModelConfig(init=[])
    with pytest.raises(KwsosError, match="not found"):
        OpenSetClassifier(cfg, init=[paths[0], str(tmp_path / "nope.pt")], **opts).fit(shots)


def test_loads_a_format_1_file(fitted: OpenSetClassifier, tmp_path: Path):
    """Files written before ensembles (one "model" entry, no shot_ids) still load."""
    model = fitted.models_[0]
    state = {
        "format": "kwsos-openset/1",
        "kwsos_version": "0.1.0",
        "config": fitted.config.to_dict(),
        "model": model.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(fitted.classes_),
        "unknown_classes": list(fitted.unknown_classes_),
        "shot_embeddings": torch.from_numpy(fitted.shot_embeddings_.copy()),
        "shot_classes": torch.from_numpy(fitted.shot_classes_.astype(np.int64)),
        "threshold": float(fitted.threshold_),
        "train_log": fitted.train_log_,
    }
    path = tmp_path / "old.osc"
    torch.save(state, path)
    old = OpenSetClassifier.load(path)
    xs = clips("warble", 2, 61)
    np.testing.assert_array_equal(old.class_similarities(xs), fitted.class_similarities(xs))
    np.testing.assert_array_equal(old.shot_ids_, np.arange(len(fitted.shot_classes_)))


def test_from_references_decides_like_the_fitted_classifier(fitted: OpenSetClassifier):
    xs = clips("slow_beeps", 2, 61) + clips("noise", 2, 62)
    emb = fitted.transform(xs)
    bare = OpenSetClassifier.from_references(
        fitted.shot_embeddings_, fitted.shot_classes_, fitted.classes_, fitted.unknown_classes_,
        threshold=fitted.threshold_,
    )  # fmt: skip
    want, got = fitted.decide(emb), bare.decide(emb)
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_allclose(got.decision_scores, want.decision_scores)


def test_batched_classification_equals_one_clip_at_a_time(
    fitted: OpenSetClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Many clips in one call (read by threads while the previous batch is embedded) decide as
    one clip per call, and embed exactly as the unpipelined features -> embed_features path."""
    import kwsos.embeddings.clip as clip_module

    monkeypatch.setattr(clip_module, "_EMBED_BATCH", 4)  # 10 clips: batches of 4, 4 and 2
    rng = np.random.default_rng(71)
    items: list[Path | np.ndarray] = []
    for i, kind in enumerate([*KNOWN, "noise"] * 3):
        x = alarm(kind, rng)
        if i % 3 == 2:
            items.append(x)  # waveforms and files mixed
        else:
            items.append(tmp_path / f"{i}_{kind}.wav")
            sf.write(items[-1], x, SR)
    items = items[:10]
    threads = torch.get_num_threads()
    calls: list[tuple[str, int, int]] = []

    def hook(step: str, *, completed: int, total: int, **info: object) -> None:
        calls.append((step, completed, total))

    batched = fitted.predict_details(items, hook=hook)
    assert calls == [("embed", 4, 10), ("embed", 8, 10), ("embed", 10, 10)]
    assert torch.get_num_threads() == threads  # the network's thread count is restored
    single = [fitted.predict_details([x]) for x in items]
    assert list(batched.labels) == [s.labels[0] for s in single]
    assert list(batched.top_class) == [s.top_class[0] for s in single]
    for key in ("decision_scores", "scores", "similarities"):
        one = np.concatenate([getattr(s, key) for s in single])
        np.testing.assert_allclose(getattr(batched, key), one, atol=1e-5, err_msg=key)
    emb = fitted.transform(items)
    np.testing.assert_array_equal(emb, fitted.embed_features(fitted.features(items)))
    for jobs in (1, 3):
        np.testing.assert_array_equal(fitted.embedder_.transform(items, jobs=jobs), emb)
    with pytest.raises(KwsosError, match="missing"):  # a bad clip in the second batch
        fitted.predict_details([*items[:5], tmp_path / "missing.wav", *items[5:]])
    assert torch.get_num_threads() == threads
