#!/usr/bin/env python
"""The invariant real prior (issue 18) against and with the other priors: every single, pair
and triple system from saved embeddings (threshold chosen on the validation folds, test folds
scored once), paired differences, and the background diagnostic for each. Run from the
repository root after the ``run_settings.py --save-embeddings`` runs of RESULTS_real.md:

    PYTHONPATH=. python recipes/alarm_osc/local/invariant_prior_analysis.py

Writes ``exp/real_pretrain_inv/analyse.json`` and ``analyse_tables.md``.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prior_ensemble import System, mean_of, paired, per_setting  # noqa: E402
from whisper_prior import (  # noqa: E402
    LEVELS,
    choose,
    clip_info,
    curves,
    evaluate,
    load_runs,
    nearest_known_shots,
    table,
)

t0 = time.perf_counter()
prep = Path("data/alarm_real/prepared")
val_runs, test_runs = load_runs(prep, "val"), load_runs(prep, "test")
runs = (val_runs, test_runs)
E = Path("exp/real_pretrain_inv")
S = {
    "bundled": System(
        "bundled",
        Path("exp/alarm_real_pretrained"),
        Path("exp/alarm_real_whisper/pretrained_val"),
        prep,
        runs,
    ),
    "real": System(
        "real",
        Path("exp/alarm_real_realprior_emb"),
        Path("exp/alarm_real_realprior_val"),
        prep,
        runs,
    ),
    "inv": System("inv", E / "test", E / "val", prep, runs),
}


def joint(names):
    def fn(r):
        return np.mean([S[n].by_speed[id(r)] for n in names], 0).max(0)

    return fn


combos = [
    ("bundled",),
    ("real",),
    ("inv",),
    ("bundled", "real"),
    ("bundled", "inv"),
    ("real", "inv"),
    ("bundled", "real", "inv"),
]
info = clip_info(prep.parent)
out, text, recs_by = {}, [], {}
for c in combos:
    name = "+".join(c)
    fn = joint(c)
    thr, wa_v, _, _ = choose(curves(val_runs, fn))
    recs = evaluate(test_runs, fn, dict.fromkeys(LEVELS, thr))
    recs_by[name] = recs
    same_bg, right, _ = nearest_known_shots(test_runs, fn, info)
    ps = per_setting(recs)
    out[name] = {
        "threshold": thr,
        "val_wa": wa_v,
        "test_wa": mean_of(recs, "wa"),
        "test_1shot_high": ps["1shot_high"],
        "known": mean_of(recs, "acc_known"),
        "unknown": mean_of(recs, "acc_unknown"),
        "closed": mean_of(recs, "acc_closed"),
        "auc": mean_of(recs, "top1_auc"),
        "same_bg": float(same_bg.mean()),
        "same_bg_err": float(same_bg[~right].mean()),
        "same_bg_right": float(same_bg[right].mean()),
        "per_setting": ps,
    }
    o = out[name]
    print(
        f"{name:22s} thr {thr:.2f} val {100 * wa_v:.2f} test {100 * o['test_wa']:.2f} 1sh-high {100 * o['test_1shot_high']:.1f} "
        f"known {100 * o['known']:.1f} unk {100 * o['unknown']:.1f} closed {100 * o['closed']:.1f} auc {100 * o['auc']:.1f} "
        f"same-bg {100 * o['same_bg']:.1f} (err {100 * o['same_bg_err']:.1f}, right {100 * o['same_bg_right']:.1f})",
        flush=True,
    )
    tab, _ = table(recs)
    text += [
        f"\n## {name}: joint fusion (equal weights), threshold {thr:.2f} chosen on validation, test folds\n",
        tab,
    ]
pairs = {
    "inv-real": ("real", "inv"),
    "inv-bundled": ("bundled", "inv"),
    "bundled+inv - bundled+real": ("bundled+real", "bundled+inv"),
    "bundled+real+inv - bundled+real": ("bundled+real", "bundled+real+inv"),
}
out["paired"] = {}
for k, (a, b) in pairs.items():
    d = paired(recs_by[a], recs_by[b])
    out["paired"][k] = d
    print(
        f"paired {k}: {100 * d['mean']:+.2f} ± {100 * d['sem']:.2f}, {d['wins']} / {d['losses']} of {d['n']}"
    )
(E / "analyse.json").write_text(json.dumps(out, indent=1))
(E / "analyse_tables.md").write_text("\n".join(text) + "\n")
print(f"wall {time.perf_counter() - t0:.0f} s")
