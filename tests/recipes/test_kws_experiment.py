"""recipes/kws_tts/local/experiment.py: the Table-31 protocol's loader, cost separation and tables."""

import sys
from pathlib import Path

import numpy as np
import pytest

from kwsos.errors import KwsosError
from kwsos.events import read_events

ROOT = Path(__file__).resolve().parents[2]
# the recipe's local/ scripts import their siblings by name (their folder is sys.path[0])
sys.path.insert(0, str(ROOT / "recipes" / "kws_tts" / "local"))
from experiment import (  # noqa: E402 - recipe module, found through the path above
    SYSTEMS,
    KwsDataset,
    KwsSystem,
    _per_scene_scores,
    cost_separation,
    load_dataset,
    results_markdown,
    scene_markdown,
)


def test_cost_separation_targets_and_impostors(spotter, audio_set):
    ref = read_events(audio_set["reference"])
    sep = cost_separation(spotter, [audio_set["recording"]], ref)
    # one target per reference event, of its keyword; it is the lowest cost in its window
    assert sorted(sep["target_keyword"]) == sorted(e.label for e in ref)
    times, costs = spotter.cost_curves(audio_set["recording"])
    e = ref[0]
    k = list(spotter.detector.keywords_).index(e.label)
    win = (times >= e.onset - 0.1) & (times <= e.offset + 0.2)
    assert sep["target"][0] == costs[k][win].min()
    # these synthetic words are perfectly separable (tune reaches F1 1): AUC 1, and the
    # targets are below every impostor of their keyword
    assert sep["auc"] == 1.0
    for kw in ("alpha", "beta"):
        t = sep["target"][np.array(sep["target_keyword"]) == kw]
        i = sep["impostor"][np.array(sep["impostor_keyword"]) == kw]
        assert len(i) > 0 and t.max() < i.min()
    # impostors are local minima outside the keyword's events
    assert np.all(np.isfinite(sep["impostor"]))


def test_results_markdown_and_systems():
    assert {"hfcc", "tacos", "tacos_norev", "lkw", "lkw_norev", "sliding", "sliding_norev"} <= set(
        SYSTEMS
    )
    assert not SYSTEMS["tacos_norev"].reversed_segments and SYSTEMS["tacos"].reversed_segments
    scores = {"f1": 50.0, "precision": 40.0, "recall": 66.7}
    r = {
        "system": "tacos",
        "label": "TACos + DTW",
        "config": {"features": "tacos", "reversed_segments": True},
        "validation": {"global": scores, "per_keyword": scores},
        "test": {"global": scores, "per_keyword": scores},
        "enroll_s": 600.4,
        "training": {"steps": 2000},
        "realtime_factor": 52.3,
        "analysis": {"auc": 0.8123},
    }
    md = results_markdown([r])
    assert (
        "| TACos + DTW (`tacos`) | yes | global | 50.0 | 40.0 | 66.7 | **50.0** | 40.0 | 66.7 | 600 | 2000 | 52 | 81.2 |"
        in md
    )
    with pytest.raises(KwsosError, match="unknown system fields"):
        KwsSystem.from_dict({"name": "x", "features": "tacos", "epochs": 3})


def test_per_scene_scores_by_hand(tmp_path):
    from kwsos.events import Event, format_events

    ref = [
        Event("t/a1.wav", 1.0, 1.5, "yes"),
        Event("t/a2.wav", 2.0, 2.4, "no"),
        Event("t/b1.wav", 0.5, 0.9, "yes"),
    ]
    data = KwsDataset(
        Path("."),
        {},
        {"test": []},
        {"test": ref},
        {"test": {"a1.wav": "voice a", "a2.wav": "voice a", "b1.wav": "voice b"}},
    )
    # voice a: one hit (a1), one miss (a2), one false alarm (a2, wrong label); voice b: one hit
    est = [
        Event("a1.wav", 1.05, 1.5, "yes"),
        Event("a2.wav", 2.0, 2.4, "yes"),
        Event("b1.wav", 0.5, 0.8, "yes"),
    ]
    (tmp_path / "test_detections_global.csv").write_text(format_events(est, "csv"))
    res = _per_scene_scores(data, "test", tmp_path)
    assert res["voice a"]["files"] == 2 and res["voice a"]["events"] == 2
    assert res["voice a"]["global"] == {"f1": 50.0, "precision": 50.0, "recall": 50.0}
    assert res["voice b"]["global"] == {"f1": 100.0, "precision": 100.0, "recall": 100.0}
    assert "per_keyword" not in res["voice b"]  # no such detections file
    assert _per_scene_scores(data, "validation", tmp_path) == {}


def test_scene_markdown():
    ps = {
        "voice a": {"events": 3, "global": {"f1": 50.0}},
        "voice b": {"events": 2, "global": {"f1": 0.0}},
    }
    rs = [
        {"system": "hfcc", "analysis": {"per_scene": ps}},
        {
            "system": "tacos",
            "analysis": {"per_scene": {"voice a": {"events": 3, "global": {"f1": 25.0}}}},
        },
        {"system": "lkw"},
    ]
    md = scene_markdown(rs)
    assert md.splitlines()[0] == "| voice | events | `hfcc` | `tacos` |"
    assert "| voice a | 3 | 50.0 | 25.0 |" in md and "| voice b | 2 | 0.0 | - |" in md
    assert scene_markdown([{"system": "lkw"}]) == ""


def test_load_dataset_errors_are_one_line(tmp_path):
    with pytest.raises(KwsosError) as err:
        load_dataset(tmp_path)
    assert str(err.value) == (
        f"missing {tmp_path / 'train_manifest.csv'} (is this a KWS-DailyTalk-layout dataset?)"
    )
    (tmp_path / "train_manifest.csv").write_text("label,file\nyes,a.wav\n")
    with pytest.raises(KwsosError, match=r"train_manifest.csv: missing column\(s\) event_label$"):
        load_dataset(tmp_path)
    (tmp_path / "train_manifest.csv").write_text("event_label,file\n")
    with pytest.raises(KwsosError, match="lists no shots"):
        load_dataset(tmp_path)
