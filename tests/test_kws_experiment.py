import numpy as np
import pytest

from kwsos.errors import KwsosError
from kwsos.events import read_events
from kwsos.kws_experiment import SYSTEMS, KwsSystem, cost_separation, results_markdown


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
    assert {"hfcc", "tacos", "tacos_norev", "lkw", "lkw_norev", "sliding", "sliding_norev"} <= set(SYSTEMS)
    assert not SYSTEMS["tacos_norev"].reversed_segments and SYSTEMS["tacos"].reversed_segments
    scores = {"f1": 50.0, "precision": 40.0, "recall": 66.7}
    r = {
        "system": "tacos", "label": "TACos + DTW", "config": {"features": "tacos", "reversed_segments": True},
        "validation": {"global": scores, "per_keyword": scores}, "test": {"global": scores, "per_keyword": scores},
        "enroll_s": 600.4, "training": {"steps": 2000}, "realtime_factor": 52.3, "analysis": {"auc": 0.8123},
    }
    md = results_markdown([r])
    assert "| TACos + DTW (`tacos`) | yes | global | 50.0 | 40.0 | 66.7 | **50.0** | 40.0 | 66.7 | 600 | 2000 | 52 | 81.2 |" in md
    with pytest.raises(KwsosError, match="unknown system fields"):
        KwsSystem.from_dict({"name": "x", "features": "tacos", "epochs": 3})
