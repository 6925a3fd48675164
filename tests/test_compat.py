"""Keyword banks and open-set model files written by kwsos 0.1.0 (before the layered core) still
load and give the same results. The fixtures were made by ``tests/fixtures/make_v010_fixtures.py``
with the 0.1.0 code (commit 8d93bb5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kwsos.events import Event
from kwsos.tasks.kws import KeywordSpotter

FIX = Path(__file__).parent / "fixtures"
DEMO = Path(__file__).resolve().parent.parent / "kwsos" / "data" / "demo"


def _expected(name: str) -> list[Event]:
    rows = json.loads((FIX / name).read_text())
    return [
        Event(r["filename"], r["onset"], r["offset"], r["event_label"], r["cost"]) for r in rows
    ]


def _same_events(got: list[Event], want: list[Event], atol: float = 1e-6) -> None:
    assert [(e.filename, e.label) for e in got] == [(e.filename, e.label) for e in want]
    np.testing.assert_allclose([e.onset for e in got], [e.onset for e in want], atol=atol)
    np.testing.assert_allclose([e.offset for e in got], [e.offset for e in want], atol=atol)
    np.testing.assert_allclose([e.cost for e in got], [e.cost for e in want], atol=1e-4)


def test_v010_hfcc_bank_loads_and_detects_the_same(tmp_path):
    sp = KeywordSpotter.load(FIX / "bank_hfcc_v010")
    assert sp.keywords == ["banana", "good morning"]
    assert sp.config.decision.threshold == 0.53
    assert sp.config.decision.keyword_thresholds == {"banana": 0.5}
    assert sp.config.backend.name == "sdtw" and sp.extractor.name == "hfcc"
    want = _expected("bank_hfcc_v010_validation.json")
    assert want, "the fixture must hold detections"
    _same_events(sp.detect(DEMO / "validation.flac"), want)
    # re-saved in the current format, it still gives the same detections
    sp.save(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "bank.json").read_text())["format"] == "kwsos-bank/2"
    _same_events(KeywordSpotter.load(tmp_path / "b").detect(DEMO / "validation.flac"), want)


def test_v010_tacos_bank_loads_its_network_and_detects_the_same():
    sp = KeywordSpotter.load(FIX / "bank_tacos_v010")
    assert sp.learned and not sp.needs_training
    assert sp.extractor.net is not None and sp.extractor.model["dim"] == 16
    assert sp.config.training.dim == 16 and sp.config.training.train.max_steps == 3
    _same_events(sp.detect(DEMO / "validation.flac"), _expected("bank_tacos_v010_validation.json"))


def test_v010_bank_with_an_unknown_option_is_refused(tmp_path):
    from kwsos.tasks.kws import BankError

    bank = tmp_path / "bank"
    shutil.copytree(FIX / "bank_hfcc_v010", bank)
    meta = json.loads((bank / "bank.json").read_text())
    meta["config"]["thresold"] = 0.2  # a typo must not pass silently
    (bank / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match="thresold"):
        KeywordSpotter.load(bank)


def _osc_clips() -> list[np.ndarray]:
    # the clips of make_v010_fixtures.py (same generator, same order of draws)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000

    def tone(f):
        gate = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 3 * t))
        return (np.sin(2 * np.pi * f * t) * gate + 0.01 * rng.standard_normal(len(t))).astype(
            np.float32
        )

    for f in (440, 450, 1500, 1520):  # the shots the model was fitted on
        tone(f)
    return [tone(445), tone(1510), tone(3000)]


def test_v010_openset_model_loads_and_predicts_the_same():
    from kwsos.tasks.openset import OpenSetClassifier

    clf = OpenSetClassifier.load(FIX / "osc_v010.pt")
    assert clf.classes_ == ["high", "low"]
    assert clf.config.frontend.clip_s == 1.0 and clf.config.model.dim == 8
    assert clf.config.backend.reference_speeds == (0.95,)
    want = json.loads((FIX / "osc_v010_predictions.json").read_text())
    pred = clf.predict_details(_osc_clips())
    assert list(pred.labels) == want["labels"]
    np.testing.assert_allclose(pred.decision_scores, want["scores"], atol=1e-5)
