#!/usr/bin/env python
"""Backend ablations of the open-set classifier without retraining.

Reads the embeddings kept by ``local/run_settings.py --save-embeddings``
(``<exp>/embeddings/<setting>_seed<S>_fold<F>.npz``: test clips, and the shots played at the
speed factors ``EMB_SPEEDS``) and scores every run again with other reference sets
(``--speeds``: which speed-changed copies of the shots are references, 1 = the shots alone, the
paper's backend) and thresholds (``--thresholds``) with
:meth:`kwsos.tasks.openset.OpenSetClassifier.decide`. Prints the mean weighted accuracy per setting
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
from kwsos.tasks.openset import OpenSetClassifier, OpenSetPrediction

UNKNOWN = "unknown"
LEVELS = ("low", "middle", "high")


def predict(run: dict[str, np.ndarray], speeds: list[float]) -> OpenSetPrediction:
    """Decisions for the test clips of one run with the shots at ``speeds`` as references, by
    :meth:`OpenSetClassifier.decide` itself (its networks are not needed: the embeddings are
    given). A clip is rejected at threshold ``t`` exactly when its ``decision_scores`` < t."""
    idx = [int(np.argmin(np.abs(run["speeds"] - r))) for r in speeds]
    if not np.allclose(run["speeds"][idx], speeds):
        raise SystemExit(f"error: speeds {speeds} not all among {run['speeds'].tolist()}")
    clf = OpenSetClassifier.from_references(
        np.concatenate([run["shots"][i] for i in idx]),
        np.tile(run["shot_class"], len(idx)),
        run["classes"].tolist(),
        run["unknown_classes"].tolist(),
        threshold=0.0,
        unknown_label=UNKNOWN,
    )
    return clf.decide(run["test"])


def labels_at(pred: OpenSetPrediction, threshold: float) -> np.ndarray:
    """The labels ``decide`` gives at ``threshold`` (the rule of :class:`OpenSetPrediction`)."""
    return np.where(pred.decision_scores < threshold, UNKNOWN, pred.top_class).astype(object)


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
            pred = predict(run, speeds)
            for t in thresholds:
                labels = labels_at(pred, t)
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
