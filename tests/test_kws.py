import numpy as np
import pytest
from conftest import plain_config

from kwsos.errors import KwsosError
from kwsos.events import Event, read_events
from kwsos.features import MFCC
from kwsos.kws import BankError, KeywordSpotter
from kwsos.metrics import event_based_scores


@pytest.fixture(scope="module")
def spotter(audio_set):
    s = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        s.enroll(name, shots)
    return s


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
    assert s2.config.threshold == result.threshold
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
        plain_config(features=MFCC(cmvn_frames=0, drop_c0=True).to_dict()),
    ):
        s = KeywordSpotter(config)
        for name, shots in audio_set["shots"].items():
            s.enroll(name, shots)
        if config.templates == "dba":
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
