#!/usr/bin/env python
"""Two priors as one ensemble (issue #18 [OSC-real]): the recipe's system with the bundled
(synthetic-pretrained) clip network and the same system with the clip network pretrained on real
recordings (``conf/pretrained_real.json``), fused at the score level. Results:
``RESULTS_prior_ensemble.md``.

Per run (setting, seed, fold) and per test clip and shot, the similarity is
``w * cos_b + (1 - w) * cos_a`` (a = bundled, b = real prior), where each system's cosine is
the max over the shot and its reference speed copies (0.92-1.08), taken from the embeddings that
``run_settings.py --save-embeddings`` kept of that system's own fine-tuned networks. Then the
open-set rule of :meth:`kwsos.tasks.openset.OpenSetClassifier.decide`: max per class, a clip
nearer to a known-unknown shot than to any known class is unknown, and so is one whose best score
is below the threshold. All of this is ``whisper_prior.py``'s scoring machinery, imported.

The weight ``w`` in {0, 0.1, ..., 1} and the threshold (one for all 9 settings; per shot count as
a secondary variant) are chosen on the validation folds (``whisper_prior.py val-index``:
``exp/alarm_real_whisper/val_prepared``), maximising the mean weighted accuracy over the 9
settings; the test folds (the recipe's) are then scored once. ``w = 0`` and ``w = 1`` are the two
systems alone, with their threshold chosen the same way.

    PY="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python"
    $PY recipes/alarm_osc/local/prior_ensemble.py --out exp/prior_ensemble

System ``a`` (default: the bundled prior) and ``b`` (default: the real prior) can be any two
saved runs: ``--b-seed-offset 10`` with a second run of ``conf/pretrained.json`` trained with
``--seeds 10,11,12,13,14`` gives the control "two fine-tunings of the same prior".
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from whisper_prior import (  # noqa: E402
    LEVELS,
    SETTINGS,
    THRESHOLDS,
    Run,
    choose,
    class_sims,
    curves,
    decide,
    evaluate,
    load_runs,
    pretrained_sims,
    read_index,
    table,
    val_folds,
)

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # weight of system b (the real prior)
SHOTS = (1, 2, 4)
REF_SPEEDS = (0.92, 0.96, 1.0, 1.04, 1.08)  # the shot and its reference speed copies
RECIPE_THR = {"low": 0.55, "middle": 0.55, "high": 0.6}


# ------------------------------------------------------------------- thin wrappers (no copies)
def choose_per_shots(curve: dict[str, np.ndarray]) -> tuple[dict[int, float], float]:
    """Like :func:`whisper_prior.choose`, but one threshold per shot count (1, 2, 4), each the
    best for the mean over that shot count's 3 settings; returns the thresholds and the mean
    weighted accuracy over the 9 settings that they give."""
    thr, was = {}, []
    for k in SHOTS:
        m = np.mean([curve[s] for s in SETTINGS if s.startswith(f"{k}shot")], 0)
        j = int(np.argmax(m))
        thr[k] = float(THRESHOLDS[j])
        was.append(float(m[j]))
    return thr, float(np.mean(was))


def evaluate_per_shots(runs: list[Run], sims_fn, thr_by_shots: dict[int, float]) -> list[dict]:
    """:func:`whisper_prior.evaluate` with a threshold per shot count (its own thresholds are per
    openness level): each shot count's runs are evaluated with that count's threshold."""
    recs = []
    for k, t in thr_by_shots.items():
        sub = [r for r in runs if r.setting.startswith(f"{k}shot")]
        recs += evaluate(sub, sims_fn, dict.fromkeys(LEVELS, t))
    order = {(r.setting, r.fold): i for i, r in enumerate(runs)}
    return sorted(recs, key=lambda d: order[(d["setting"], d["fold"])])


# ---------------------------------------------------------------------------- the two systems
class System:
    """One system's shot-level similarities (``whisper_prior.pretrained_sims``: max over its
    reference speeds) for every validation and test run, loaded once. ``seed_offset``: its runs
    were trained with the seeds 0-4 plus this offset on the same folds (``run_settings.py
    --seeds 10,11,...``), the control of a second fine-tuning of the same prior."""

    def __init__(
        self, name: str, test_exp: Path, val_exp: Path, prepared: Path, runs, seed_offset: int = 0
    ) -> None:
        self.name = name
        vmap = {}
        for s, folds in read_index(prepared).items():
            for k, f in enumerate(val_folds(len(folds)), 1):
                vmap[(s, f)] = k
        self.sims: dict[int, np.ndarray] = {}
        self.by_speed: dict[int, np.ndarray] = {}
        val_runs, test_runs = runs
        for exp, rs, vm in ((val_exp, val_runs, vmap), (test_exp, test_runs, None)):
            for r in rs:
                shifted = copy.copy(r)  # the saved file is named after the training seed
                shifted.seed = r.seed + seed_offset
                sims = pretrained_sims(exp, shifted, vm)
                if sims is None:
                    raise SystemExit(f"{exp}/embeddings: nothing for {r.setting} seed {shifted.seed} "
                                     "(run run_settings.py with --save-embeddings)")  # fmt: skip
                self.sims[id(r)] = sims
                self.by_speed[id(r)] = speed_sims(exp, shifted, vm)
                assert np.array_equal(self.by_speed[id(r)].max(0), sims), "speeds differ"


def speed_sims(exp: Path, run: Run, val_map: dict | None = None) -> np.ndarray:
    """``pretrained_sims`` before its max over the reference speeds: ``(5, n_test, n_shots)``
    for the speeds 0.92, 0.96, 1.0, 1.04, 1.08 (the shot order is the one ``pretrained_sims``
    checked; the caller asserts that the max over the speeds equals it)."""
    fold = val_map[(run.setting, run.fold)] if val_map else run.fold
    with np.load(exp / "embeddings" / f"{run.setting}_seed{run.seed}_fold{fold:02d}.npz") as z:
        keep = [int(np.argmin(np.abs(z["speeds"] - v))) for v in REF_SPEEDS]
        return np.stack([z["test"] @ z["shots"][k].T for k in keep])


def mixer(a: System, b: System, w: float):
    """Shot-level similarities ``w * b + (1 - w) * a`` of a run."""

    def fn(r: Run) -> np.ndarray:
        if w == 0.0:
            return a.sims[id(r)]
        if w == 1.0:
            return b.sims[id(r)]
        return w * b.sims[id(r)] + (1.0 - w) * a.sims[id(r)]

    return fn


def joint_mixer(a: System, b: System, w: float):
    """The fusion that ONE kwsos classifier holding all four networks would compute (the two
    systems' embeddings side by side, weighted sqrt(1 - w) : sqrt(w)): the weighted mean per
    reference speed, then the max over the speeds (:func:`mixer` takes each system's max over
    the speeds first)."""

    def fn(r: Run) -> np.ndarray:
        return (w * b.by_speed[id(r)] + (1.0 - w) * a.by_speed[id(r)]).max(0)

    return fn


def mean_of(recs: list[dict], key: str) -> float:
    by = defaultdict(list)
    for r in recs:
        by[r["setting"]].append(r[key])
    return float(np.mean([np.mean(by[s]) for s in SETTINGS]))


def per_setting(recs: list[dict]) -> dict[str, float]:
    by = defaultdict(list)
    for r in recs:
        by[r["setting"]].append(r["wa"])
    return {s: float(np.mean(by[s])) for s in SETTINGS}


def paired(recs_a: list[dict], recs_b: list[dict]) -> dict[str, float]:
    """Paired difference b - a in WA over the runs (same folds and seeds): mean, standard error
    of the mean over the 45 runs, and how many runs b wins / loses."""
    key = {(r["setting"], r["fold"]): r["wa"] for r in recs_a}
    d = np.asarray([r["wa"] - key[(r["setting"], r["fold"])] for r in recs_b])
    return {"mean": float(d.mean()), "sem": float(d.std(ddof=1) / np.sqrt(len(d))),
            "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "n": len(d)}  # fmt: skip


def complementarity(runs: list[Run], a: System, b: System) -> dict[str, float]:
    """Closed-set top-1 of the two systems on the known test clips (no rejection): both right,
    only ``a``, only ``b``, neither (fractions), pooled over the runs."""
    counts = np.zeros(4)
    for r in runs:
        n_cls = len(r.classes) + len(r.unknown_classes)
        known = r.y != "unknown"
        tops = []
        for s in (a, b):
            best, _ = decide(class_sims(s.sims[id(r)], r.shot_class, n_cls), len(r.classes))
            tops.append(np.asarray(r.classes, dtype=object)[best][known] == r.y[known])
        ra, rb = tops
        counts += [np.sum(ra & rb), np.sum(ra & ~rb), np.sum(~ra & rb), np.sum(~ra & ~rb)]
    f = counts / counts.sum()
    keys = ("both", f"only_{a.name}", f"only_{b.name}", "neither")
    return dict(zip(keys, map(float, f), strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("exp/prior_ensemble"))
    p.add_argument("--prepared", type=Path, default=Path("data/alarm_real/prepared"))
    defaults = {
        "a": ("bundled", "exp/alarm_real_pretrained", "exp/alarm_real_whisper/pretrained_val"),
        "b": ("real", "exp/alarm_real_realprior_emb", "exp/alarm_real_realprior_val"),
    }
    for k, (name, test, val) in defaults.items():
        p.add_argument(f"--{k}", type=Path, default=Path(test),
                       help=f"test-fold run (with --save-embeddings) of system {k} ({test})")  # fmt: skip
        p.add_argument(f"--{k}-val", type=Path, default=Path(val),
                       help=f"its validation-fold run ({val})")  # fmt: skip
        p.add_argument(f"--{k}-name", default=name)
        p.add_argument(f"--{k}-seed-offset", type=int, default=0,
                       help="its runs were trained with seeds 0-4 + this (same folds)")  # fmt: skip
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    test_runs = load_runs(args.prepared, "test")
    val_runs = load_runs(args.prepared, "val")
    runs = (val_runs, test_runs)
    bundled = System(args.a_name, args.a, args.a_val, args.prepared, runs, args.a_seed_offset)
    real = System(args.b_name, args.b, args.b_val, args.prepared, runs, args.b_seed_offset)
    print(f"{len(val_runs)} validation runs, {len(test_runs)} test runs; "
          f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip

    report: dict = {"weights": {}}
    text: list[str] = []

    # 0. sanity: each system at the recipe's thresholds reproduces its table (78.3 / 78.4 %)
    for s in (bundled, real):
        recs = evaluate(test_runs, lambda r, s=s: s.sims[id(r)], RECIPE_THR)
        report[f"recipe_thr_{s.name}"] = mean_of(recs, "wa")
        print(f"{s.name} at the recipe's thresholds: {100 * mean_of(recs, 'wa'):.2f} %")
    a, b = bundled.name, real.name

    # 1. the weight grid: threshold(s) on validation, test scored at them
    for w in WEIGHTS:
        fn = mixer(bundled, real, w)
        cv = curves(val_runs, fn)
        thr, wa_v, per_level, lev_wa = choose(cv)
        thr_k, wa_vk = choose_per_shots(cv)
        recs = evaluate(test_runs, fn, dict.fromkeys(LEVELS, thr))
        recs_k = evaluate_per_shots(test_runs, fn, thr_k)
        report["weights"][str(w)] = {
            "threshold": thr, "val_wa": wa_v, "test_wa": mean_of(recs, "wa"),
            "test_known": mean_of(recs, "acc_known"), "test_unknown": mean_of(recs, "acc_unknown"),
            "test_closed": mean_of(recs, "acc_closed"), "test_auc": mean_of(recs, "top1_auc"),
            "per_level": per_level, "per_level_val_wa": lev_wa,
            "per_shots": thr_k, "per_shots_val_wa": wa_vk, "per_shots_test_wa": mean_of(recs_k, "wa"),
            "test_per_setting": per_setting(recs),
        }  # fmt: skip
        print(f"w={w}: thr {thr:.2f} val {100 * wa_v:.2f} test {100 * mean_of(recs, 'wa'):.2f} | "
              f"per shots {thr_k} val {100 * wa_vk:.2f} test {100 * mean_of(recs_k, 'wa'):.2f}",
              flush=True)  # fmt: skip

    W = report["weights"]
    # 1b. the same grid for the joint fusion (one classifier with all four networks)
    report["joint"] = {}
    for w in WEIGHTS[1:-1]:
        fn = joint_mixer(bundled, real, w)
        thr, wa_v, _, _ = choose(curves(val_runs, fn))
        recs = evaluate(test_runs, fn, dict.fromkeys(LEVELS, thr))
        report["joint"][str(w)] = {"threshold": thr, "val_wa": wa_v, "test_wa": mean_of(recs, "wa")}
        print(f"joint w={w}: thr {thr:.2f} val {100 * wa_v:.2f} test {100 * mean_of(recs, 'wa'):.2f}",
              flush=True)  # fmt: skip
    # 2. the choice, on validation only: the weight with the best single-threshold validation WA
    w_best = max(WEIGHTS, key=lambda w: W[str(w)]["val_wa"])
    best_single = max((0.0, 1.0), key=lambda w: W[str(w)]["val_wa"])
    report["chosen"] = {"weight": w_best, "threshold": W[str(w_best)]["threshold"],
                        "best_single_on_val": best_single}  # fmt: skip

    text.append(f"## Weight grid (w = weight of {b}; threshold chosen on validation)\n")
    text.append("| w | thr | val WA | test WA | test known | test unknown rej. | test closed-set | "
                "test top-1 AUC | per-shot thr (1/2/4) | val WA | test WA |")  # fmt: skip
    text.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in WEIGHTS:
        v = W[str(w)]
        k = v["per_shots"]
        mark = "**" if w == w_best else ""
        text.append(
            f"| {mark}{w}{mark} | {v['threshold']:.2f} | {100 * v['val_wa']:.1f} | "
            f"{100 * v['test_wa']:.1f} | {100 * v['test_known']:.1f} | {100 * v['test_unknown']:.1f} | "
            f"{100 * v['test_closed']:.1f} | {100 * v['test_auc']:.1f} | "
            f"{k[1]:.2f} / {k[2]:.2f} / {k[4]:.2f} | {100 * v['per_shots_val_wa']:.1f} | "
            f"{100 * v['per_shots_test_wa']:.1f} |"
        )

    # 3. full tables: the chosen ensemble and the two systems alone, each at its chosen threshold
    recs_by = {}
    for w, title in ((w_best, f"Ensemble w = {w_best} (chosen on validation)"),
                     (0.0, f"{a} alone (w = 0)"), (1.0, f"{b} alone (w = 1)")):  # fmt: skip
        thr = W[str(w)]["threshold"]
        recs = evaluate(test_runs, mixer(bundled, real, w), dict.fromkeys(LEVELS, thr))
        recs_by[w] = recs
        tab, _ = table(recs)
        text += [f"\n## {title}, threshold {thr:.2f} (chosen on validation), test folds\n", tab]
        thr_k = W[str(w)]["per_shots"]
        tab_k, _ = table(evaluate_per_shots(test_runs, mixer(bundled, real, w), thr_k))
        text += [f"\n### the same with per-shot-count thresholds {thr_k}\n", tab_k]

    J = report["joint"]
    w_joint = max(J, key=lambda w: J[w]["val_wa"])
    text.append("\n## Joint fusion (one classifier with all four networks: mean per reference "
                "speed, then max over the speeds), threshold chosen on validation\n")  # fmt: skip
    text.append("| w | thr | val WA | test WA |\n|---|---|---|---|")
    for w, v in J.items():
        mark = "**" if w == w_joint else ""
        text.append(f"| {mark}{w}{mark} | {v['threshold']:.2f} | {100 * v['val_wa']:.1f} | "
                    f"{100 * v['test_wa']:.1f} |")  # fmt: skip
    thr_j = J[w_joint]["threshold"]
    recs_j = evaluate(test_runs, joint_mixer(bundled, real, float(w_joint)),
                      dict.fromkeys(LEVELS, thr_j))  # fmt: skip
    tab_j, _ = table(recs_j)
    text += [f"\n### joint fusion w = {w_joint}, threshold {thr_j:.2f}, test folds\n", tab_j]

    # 4. paired differences on test (45 runs, same folds and seeds)
    report["paired"] = {
        f"ensemble_minus_{a}": paired(recs_by[0.0], recs_by[w_best]),
        f"ensemble_minus_{b}": paired(recs_by[1.0], recs_by[w_best]),
        f"{b}_minus_{a}": paired(recs_by[0.0], recs_by[1.0]),
        "joint_minus_best_single": paired(recs_by[best_single], recs_j),
        "ensemble_minus_best_single": paired(recs_by[best_single], recs_by[w_best]),
    }
    report["complementarity_test"] = complementarity(test_runs, bundled, real)
    report["wall_s"] = time.perf_counter() - t0
    text.append("\n## Paired differences on test (per run, WA points)\n")
    for k, d in report["paired"].items():
        text.append(f"* {k}: {100 * d['mean']:+.2f} ± {100 * d['sem']:.2f} (s.e.m.), "
                    f"{d['wins']} wins / {d['losses']} losses of {d['n']}")  # fmt: skip
    c = report["complementarity_test"]
    text.append("\nClosed-set top-1 on known test clips: "
                + ", ".join(f"{k} {100 * v:.1f} %" for k, v in c.items()))  # fmt: skip

    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "tables.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"wall {report['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
