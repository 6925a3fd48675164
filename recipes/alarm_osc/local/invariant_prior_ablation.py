#!/usr/bin/env python
"""Ablations of the invariant real prior (issue 18), on the validation folds only (no test
scoring): for every prior whose saved validation embeddings exist, the best single threshold
on validation, the validation weighted accuracy there and at the recipe's thresholds, and the
background diagnostic. Run from the repository root after the ``run_settings.py
--save-embeddings`` runs of RESULTS_real.md:

    PYTHONPATH=. python recipes/alarm_osc/local/invariant_prior_ablation.py

Priors: bundled (synthetic), the first real prior, the invariant prior (``inv``), the invariant
recipe without backgrounds or other-class mixing (``nobg``), and without any colouring
(``nocol``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prior_ensemble import RECIPE_THR, mean_of, per_setting  # noqa: E402
from whisper_prior import (  # noqa: E402
    LEVELS,
    choose,
    clip_info,
    curves,
    evaluate,
    load_runs,
    nearest_known_shots,
    pretrained_sims,
    read_index,
    val_folds,
)

PRIORS = {
    "bundled": "exp/alarm_real_whisper/pretrained_val",
    "real": "exp/alarm_real_realprior_val",
    "inv": "exp/real_pretrain_inv/val",
    "nobg": "exp/real_pretrain_inv/nobg/val",
    "nocol": "exp/real_pretrain_nocol/val",
}


def main() -> int:
    prep = Path("data/alarm_real/prepared")
    runs = load_runs(prep, "val")
    vmap = {}
    for s, folds in read_index(prep).items():
        for k, f in enumerate(val_folds(len(folds)), 1):
            vmap[(s, f)] = k
    info = clip_info(prep.parent)
    for name, exp in PRIORS.items():
        if not Path(exp).is_dir():
            print(f"{name:8s} (no saved embeddings at {exp})")
            continue
        sims = {id(r): pretrained_sims(Path(exp), r, vmap) for r in runs}

        def fn(r, sims=sims):
            return sims[id(r)]

        thr, wa, _, _ = choose(curves(runs, fn))
        recs = evaluate(runs, fn, dict.fromkeys(LEVELS, thr))
        rec0 = evaluate(runs, fn, RECIPE_THR)
        same, right, _ = nearest_known_shots(runs, fn, info)
        print(
            f"{name:8s} val: thr {thr:.2f} WA {100 * wa:.2f} "
            f"(1sh-high {100 * per_setting(recs)['1shot_high']:.1f}, "
            f"closed {100 * mean_of(recs, 'acc_closed'):.1f}, auc {100 * mean_of(recs, 'top1_auc'):.1f}); "
            f"recipe thr WA {100 * mean_of(rec0, 'wa'):.2f}; same-bg {100 * same.mean():.1f} "
            f"(err {100 * same[~right].mean():.1f}, right {100 * same[right].mean():.1f})",
            flush=True,
        )
    # chance: share of known shots with the test clip's background, per known test clip
    ch = []
    for r in runs:
        kb = [
            info[p]["background"]
            for p, c in zip(r.shot_paths, r.shot_class, strict=True)
            if c < len(r.classes)
        ]
        for p, y in zip(r.test_paths, r.y, strict=True):
            if y != "unknown" and p in info:
                ch.append(np.mean([b == info[p]["background"] for b in kb]))
    print(f"chance (random known shot): {100 * np.mean(ch):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
