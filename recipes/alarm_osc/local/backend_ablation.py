#!/usr/bin/env python
"""Backend ablations of the open-set classifier without retraining.

Reads the embeddings kept by ``local/run_settings.py --save-embeddings``
(``<exp>/embeddings/<setting>_seed<S>_fold<F>.npz``: test clips, and the shots played at the
speed factors ``EMB_SPEEDS``) and scores every run again with other reference sets
(``--speeds``: which speed-changed copies of the shots are references, 1 = the shots alone, the
paper's backend) and thresholds (``--thresholds``), with the decision rule of
:meth:`kwsos.openset.OpenSetClassifier.decide`. Prints the mean weighted accuracy per setting
and over the 9 settings for every combination, and the best threshold per openness level.

    python local/backend_ablation.py ../../exp/alarm_osc_dev \\
        --speeds 1 --speeds 0.96,1,1.04 --thresholds 0.6,0.65,0.7,0.75,0.8

Only for development data: choosing a backend on the test benchmark would be tuning on test.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from kwsos.metrics import weighted_accuracy

UNKNOWN = "unknown"
LEVELS = ("low", "middle", "high")


def similarities(run: dict[str, np.ndarray], speeds: list[float]) -> tuple[np.ndarray, ...]:
    """Best known class, its similarity and the best known-unknown similarity of every test
    clip, with the shots at ``speeds`` as references."""
    idx = [int(np.argmin(np.abs(run["speeds"] - r))) for r in speeds]
    if not np.allclose(run["speeds"][idx], speeds):
        raise SystemExit(f"error: speeds {speeds} not all among {run['speeds'].tolist()}")
    refs = np.concatenate([run["shots"][i] for i in idx])
    ref_class = np.tile(run["shot_class"], len(idx))
    sims = run["test"].astype(np.float64) @ refs.astype(np.float64).T
    n_known = len(run["classes"])
    n_cls = n_known + len(run["unknown_classes"])
    per_class = np.stack([sims[:, ref_class == k].max(axis=1) for k in range(n_cls)], axis=1)
    known = per_class[:, :n_known]
    best = known.argmax(axis=1)
    score = known[np.arange(len(known)), best]
    unknown_sim = (
        per_class[:, n_known:].max(axis=1) if n_cls > n_known else np.full(len(score), -np.inf)
    )
    return best, score, unknown_sim


def decide(
    run: dict[str, np.ndarray], sims: tuple[np.ndarray, ...], threshold: float
) -> np.ndarray:
    """Labels of the test clips (the rule of ``OpenSetClassifier.decide``)."""
    best, score, unknown_sim = sims
    reject = (score < threshold) | (unknown_sim > score)
    return np.where(reject, UNKNOWN, run["classes"][best]).astype(object)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exp", type=Path, help="results folder with embeddings/")
    p.add_argument("--speeds", action="append", default=[],
                   help="comma-separated speed factors of the references (repeatable)")  # fmt: skip
    p.add_argument("--thresholds", default="0.6,0.65,0.7,0.75,0.8")
    args = p.parse_args(argv)
    files = sorted((args.exp / "embeddings").glob("*.npz"))
    if not files:
        raise SystemExit(f"error: no embeddings in {args.exp}/embeddings (--save-embeddings)")
    runs = []
    for f in files:
        m = re.match(r"(\dshot)_(low|middle|high)_seed(\d+)_fold(\d+)\.npz", f.name)
        if not m:
            continue
        with np.load(f) as z:
            runs.append((m.group(1), m.group(2), {k: z[k] for k in z.files}))
    variants = [[float(v) for v in s.split(",")] for s in (args.speeds or ["1"])]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print(f"{len(runs)} runs from {args.exp}")
    for speeds in variants:
        # wa[level][threshold][shots] -> list of run WAs
        wa: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for shots, level, run in runs:
            y = run["y"].astype(object)
            sims = similarities(run, speeds)
            for t in thresholds:
                labels = decide(run, sims, t)
                wa[level][t][shots].append(
                    weighted_accuracy(y, labels, unknown_label=UNKNOWN, rejection_term="unknown")
                )
        print(f"\nreferences at speeds {speeds}")
        print("level   thr   " + "  ".join(f"{s:>6}" for s in ("1shot", "2shot", "4shot", "mean")))
        best_total = []
        for level in LEVELS:
            if level not in wa:
                continue
            best = None
            for t in thresholds:
                row = [100 * np.mean(wa[level][t][s]) for s in ("1shot", "2shot", "4shot")]
                mean = float(np.mean(row))
                best = max(best or (mean, t), (mean, t))
                cells = "  ".join(f"{v:6.1f}" for v in row + [mean])
                print(f"{level:<7} {t:.3f} {cells}")
            print(f"  best {level}: {best[0]:.1f} at {best[1]}")
            best_total.append(best[0])
        print(f"  mean of the best per level: {np.mean(best_total):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
