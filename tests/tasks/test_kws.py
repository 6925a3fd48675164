import numpy as np
import pytest
from conftest import plain_config

from kwsos.errors import KwsosError
from kwsos.events import Event, read_events
from kwsos.features import MFCC
from kwsos.metrics import event_based_scores
from kwsos.tasks.kws import BankError, KeywordSpotter


def test_detects_every_occurrence_with_onsets(spotter, audio_set):
    events = spotter.detect(audio_set["recording"])
    ref = audio_set["events"]
    assert [e.label for e in events] == [lab for _, _, lab in ref]
    for e, (on, off, _) in zip(events, ref, strict=True):
        assert abs(e.onset - on) < 0.06 and abs(e.offset - off) < 0.06
        assert e.filename == "rec.wav" and 0 <= e.cost <= 0.05
    scores = event_based_scores(read_events(audio_set["reference"]), events)
    assert scores.f1 == 1.0


def test_loose_threshold_gives_false_alarms_and_tune_fixes_it(spotter, audio_set):
    loose = spotter.detect(audio_set["recording"], threshold=0.5)
    ref = read_events(audio_set["reference"])
    assert len(loose) > len(ref)
    s2 = KeywordSpotter(plain_config(threshold=0.5))
    for name, shots in audio_set["shots"].items():
        s2.enroll(name, shots)
    result = s2.tune([audio_set["recording"]], ref)
    assert result.scores.f1 == 1.0
    assert s2.config.decision.threshold == result.threshold
    assert result.f1.max() == 1.0 and result.f1.min() < 1.0
    assert event_based_scores(ref, s2.detect(audio_set["recording"])).f1 == 1.0


def test_save_load_round_trip(spotter, audio_set, tmp_path):
    spotter.save(tmp_path / "bank")
    loaded = KeywordSpotter.load(tmp_path / "bank")
    assert loaded.keywords == spotter.keywords
    assert loaded.config == spotter.config
    assert loaded.detect(audio_set["recording"]) == spotter.detect(audio_set["recording"])
    for kw in spotter.keywords:
        for a, b in zip(
            loaded._keywords[kw].templates, spotter._keywords[kw].templates, strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_dba_and_mfcc_variants(audio_set):
    for config in (
        plain_config(templates="dba"),
        plain_config(features=MFCC(cmvn_frames=0, drop_c0=True)),
    ):
        s = KeywordSpotter(config)
        for name, shots in audio_set["shots"].items():
            s.enroll(name, shots)
        if config.backend.templates == "dba":
            assert all(len(s._templates(k)) == 1 for k in s.keywords)
        ref = read_events(audio_set["reference"])
        assert event_based_scores(ref, s.detect(audio_set["recording"])).f1 >= 0.8


def test_bad_input(audio_set, tmp_path):
    s = KeywordSpotter()
    with pytest.raises(BankError, match="no keywords"):
        s.fit()
    with pytest.raises(KwsosError, match="too short"):
        s.enroll("x", [np.sin(np.arange(800) * 0.3).astype(np.float32)])
    with pytest.raises(KwsosError, match="must not be empty"):
        s.enroll("  ", audio_set["shots"]["alpha"])
    with pytest.raises(KwsosError, match="commas"):
        s.enroll("a,b", audio_set["shots"]["alpha"])
    s.enroll("alpha", audio_set["shots"]["alpha"])
    with pytest.raises(BankError, match="unknown keyword 'beta'"):
        s.remove("beta")
    short = tmp_path / "short.wav"
    import soundfile as sf

    sf.write(str(short), 0.5 * np.sin(np.arange(1600) * 0.2), 16000)
    with pytest.raises(KwsosError, match="shorter than the shortest"):
        s.detect(short)
    with pytest.raises(BankError, match="no keyword bank"):
        KeywordSpotter.load(tmp_path / "nothing")


def test_save_refuses_foreign_directory(spotter, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    with pytest.raises(BankError, match="refusing"):
        spotter.save(tmp_path / "docs")
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "precious"


def test_array_shots_and_event_type(audio_set):
    import soundfile as sf

    s = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        s.enroll(name, [sf.read(str(p), dtype="float32")[0] for p in shots])
    events = s.detect(audio_set["recording"])
    assert isinstance(events[0], Event) and len(events) == len(audio_set["events"])


def _crafted_candidates(spotter, ref, costs_true, costs_false):
    """DTW candidates on the reference events (cost ``costs_true[label]``) plus false alarms of
    each keyword in the long gaps between events (cost ``costs_false[label]``)."""
    from kwsos.backends import CANDIDATE_DTYPE

    det = spotter.detector
    fps = spotter.extractor.frame_rate
    kw_index = {str(k): i for i, k in enumerate(det.keywords_)}
    rows = []

    def add(label, start, end, cost):
        k = kw_index[label]
        t = int(np.flatnonzero(det.template_keyword_ == k)[0])
        rows.append((k, t, start, end, cost))

    events = sorted(ref, key=lambda e: e.onset)
    for e in events:
        add(e.label, round(e.onset * fps), round(e.offset * fps) - 1, costs_true[e.label])
    gaps = [(a.offset + 0.3, b.onset - 0.3) for a, b in zip(events, events[1:], strict=False)]
    labels = sorted(costs_false)
    n = 0
    for lo, hi in gaps:
        length = det.template_lengths_.max()
        if (hi - lo) * fps > length:
            label = labels[n % len(labels)]
            add(label, round(lo * fps), round(lo * fps) + length - 1, costs_false[label])
            n += 1
    cand = np.zeros(len(rows), CANDIDATE_DTYPE)
    for name, col in zip(
        ("keyword", "template", "start", "end", "cost"), zip(*rows, strict=True), strict=True
    ):
        cand[name] = col
    return cand, n


def test_per_keyword_thresholds_tuned_by_coordinate_ascent(audio_set, monkeypatch):
    """alpha's true matches cost 0.10 and its false alarms 0.25, beta's true matches 0.30: no
    global threshold gets F1 1, per-keyword thresholds (alpha < 0.25 <= beta) do."""
    ref = read_events(audio_set["reference"])
    s = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        s.enroll(name, shots)
    cand, n_false = _crafted_candidates(s, ref, {"alpha": 0.10, "beta": 0.30}, {"alpha": 0.25})
    assert n_false >= 2
    duration = float(max(e.offset for e in ref) + 1)
    monkeypatch.setattr(s, "_candidates", lambda rec, max_cost, hook: (cand, duration))

    glob = s.tune([audio_set["recording"]], ref)
    assert glob.scores.f1 < 1.0 and not glob.keyword_thresholds
    assert s.config.decision.keyword_thresholds == {}

    res = s.tune([audio_set["recording"]], ref, per_keyword=True)
    assert res.global_scores.f1 == pytest.approx(glob.scores.f1)
    assert res.scores.f1 == 1.0
    kt = res.keyword_thresholds
    assert 0.10 <= kt["alpha"] < 0.25 and kt["beta"] >= 0.30
    assert s.config.decision.keyword_thresholds == kt
    np.testing.assert_array_equal(s.thresholds, [kt["alpha"], kt["beta"]])
    # detect applies them (and the tuning F1 equals sed_eval's on the detections)
    est = s.detect(audio_set["recording"])
    assert event_based_scores(ref, est).f1 == 1.0
    # an explicit threshold overrides both; set_threshold alone clears the per-keyword ones
    assert event_based_scores(ref, s.detect(audio_set["recording"], threshold=0.3)).f1 < 1.0
    s.remove("beta")
    assert set(s.config.decision.keyword_thresholds) == {"alpha"}
    s.set_threshold(0.2)
    assert s.config.decision.keyword_thresholds == {}
    with pytest.raises(BankError, match="not enrolled"):
        s.set_threshold(0.2, {"gamma": 0.1})


def test_keyword_thresholds_saved_with_the_bank(spotter, tmp_path):
    s = KeywordSpotter(spotter.config)
    s._keywords = spotter._keywords
    s.set_threshold(0.05, {"alpha": 0.04})
    s.save(tmp_path / "bank")
    loaded = KeywordSpotter.load(tmp_path / "bank")
    assert loaded.config.decision.keyword_thresholds == {"alpha": 0.04}
    np.testing.assert_array_equal(loaded.thresholds, [0.04, 0.05])


def test_cost_curves_agree_with_candidates(spotter, audio_set):
    times, costs = spotter.cost_curves(audio_set["recording"])
    cands = spotter.candidates(audio_set["recording"])
    assert costs.shape == (2, len(times)) and np.all(np.diff(times) > 0)
    for k in range(2):  # the global minimum of a cost curve is one of its local minima
        assert costs[k].min() == pytest.approx(cands["cost"][cands["keyword"] == k].min())
    # each detected event's end frame is where its keyword's curve has the event's cost
    for e in spotter.detect(audio_set["recording"]):
        k = list(spotter.detector.keywords_).index(e.label)
        near = np.abs(times - e.offset) < 0.05
        assert costs[k][near].min() == pytest.approx(e.cost, abs=1e-6)


# ---------------------------------------------------------------------- many files at once
@pytest.fixture(scope="module")
def many_files(audio_set, tmp_path_factory):
    """The test recording, pieces of it (some without a keyword) and a stereo 22.05 kHz copy."""
    import soundfile as sf

    from kwsos.audio import sinc_resample

    root = tmp_path_factory.mktemp("many")
    x, sr = sf.read(str(audio_set["recording"]), dtype="float32")
    n = len(x)
    paths = [audio_set["recording"]]
    for i, (a, b) in enumerate([(0, 0.5), (0.5, 1.0), (0.1, 0.35), (0.3, 0.9), (0.115, 0.255)]):
        paths.append(root / f"piece{i}.wav")
        sf.write(str(paths[-1]), x[int(a * n) : int(b * n)], sr)
    y = sinc_resample(x.astype(np.float64), sr, 22050)
    paths.append(root / "stereo22k.flac")
    sf.write(str(paths[-1]), np.stack([y, 0.5 * y], axis=1), 22050)
    return paths


@pytest.mark.parametrize("jobs", [1, 3])
def test_detect_on_many_files_equals_file_by_file(spotter, many_files, jobs):
    per_file = [spotter.detect(p) for p in many_files]
    assert sum(map(len, per_file)) > len(per_file)  # most files hold keywords
    assert any(not events for events in per_file)  # and one holds none
    assert spotter.detect(many_files, jobs=jobs) == [e for events in per_file for e in events]
    calls = []
    got = list(
        spotter.detect_many(
            many_files, jobs=jobs, hook=lambda step, **kw: calls.append((step, kw["completed"]))
        )
    )
    assert [p for p, _ in got] == many_files
    assert [events for _, events in got] == per_file
    assert calls == [("detect", i + 1) for i in range(len(many_files))]


def test_a_corrupt_file_among_many_raises_in_its_turn(spotter, many_files, tmp_path):
    from kwsos.audio import AudioError

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage")
    files = [*many_files[:2], corrupt, *many_files[2:]]
    with pytest.raises(AudioError, match="corrupt.wav"):
        spotter.detect(files, jobs=3)
    found = spotter.detect_many(files, jobs=3)
    assert [next(found)[0], next(found)[0]] == many_files[:2]  # the files before it come out
    with pytest.raises(AudioError, match="cannot read"):
        next(found)


def test_tune_on_many_files_is_the_same_with_jobs(audio_set, many_files):
    results = []
    for jobs in (1, 3):
        s = KeywordSpotter(plain_config(threshold=0.5))
        for name, shots in audio_set["shots"].items():
            s.enroll(name, shots)
        results.append(s.tune(many_files[:4], read_events(audio_set["reference"]), jobs=jobs))
    assert results[0].threshold == results[1].threshold
    np.testing.assert_array_equal(results[0].f1, results[1].f1)


def _dead_pid() -> int:
    import os

    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_save_cleans_up_after_a_killed_save_and_keeps_the_umask(tmp_path):
    import os
    import shutil
    from pathlib import Path

    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "bank_hfcc_v010"
    bank = tmp_path / "bank"
    shutil.copytree(fixture, bank)
    pid = _dead_pid()
    # a save killed between its two renames: only the old copy is left
    os.replace(bank, tmp_path / f".bank.old-{pid}")
    (tmp_path / f".bank.tmp-{pid}-abc").mkdir()  # and a half-written new copy
    sp = KeywordSpotter.load(bank)  # restores the bank
    assert sp.keywords == ["banana", "good morning"] and bank.is_dir()
    old = os.umask(0o022)
    try:
        sp.save(bank)
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]
    assert (bank.stat().st_mode & 0o777) == 0o755
    assert KeywordSpotter.load(bank).keywords == sp.keywords
