#!/usr/bin/env python
"""Turn ``runs.jsonl`` of ``run_settings.py`` into a table in the form of Diss. Table 29.

One row per (openness, shots): mean +- standard deviation over the runs (seeds) of the weighted
accuracy (beta = 0.5, unknown-rejection term, in percent), and of the top-1 AUC and EER; the
arithmetic mean over the settings last, next to the paper's directly trained system.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from kwsos.io import write_text_atomic

#: Diss. Table 29, "directly trained" column (mean over 5 trials), for comparison.
PAPER = {
    ("low", 1): 97.4, ("low", 2): 99.1, ("low", 4): 99.7,
    ("middle", 1): 96.8, ("middle", 2): 98.7, ("middle", 4): 99.8,
    ("high", 1): 92.6, ("high", 2): 97.5, ("high", 4): 99.1,
}  # fmt: skip
ORDER = ("low", "middle", "high")


def pm(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = np.asarray(values, dtype=float) * scale
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def make_table(runs: list[dict]) -> str:
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["openness"], int(r["shots"]))].append(r)
    keys = sorted(groups, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 9, k[1]))
    lines = [
        "| openness | shots | runs | weighted acc. (%) | top-1 AUC (%) | top-1 EER (%) "
        "| known acc. (%) | unknown rejected (%) | paper, directly trained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    means = []
    for key in keys:
        g = groups[key]
        wa = [r["wa"] for r in g]
        means.append(np.mean(wa))
        lines.append(
            f"| {key[0]} | {key[1]} | {len(g)} | {pm(wa, 100)} | {pm([r['top1_auc'] for r in g], 100)} "
            f"| {pm([r['top1_eer'] for r in g], 100)} | {pm([r['acc_known'] for r in g], 100)} "
            f"| {pm([r['acc_unknown'] for r in g], 100)} | {PAPER.get(key, float('nan')):.1f} |"
        )
    paper = [PAPER[k] for k in keys if k in PAPER]
    lines.append(
        f"| **arithmetic mean** | | {len(runs)} | **{100 * np.mean(means):.1f}** | "
        f"{100 * np.mean([r['top1_auc'] for r in runs]):.1f} | "
        f"{100 * np.mean([r['top1_eer'] for r in runs]):.1f} | | | "
        f"{np.mean(paper):.1f} |"
    )
    fit_s = sum(r["run_s"] for r in runs)
    lines.append("")
    lines.append(
        f"{len(runs)} runs; training + scoring {fit_s / 60:.1f} min in total "
        f"(sum over runs, excluding feature extraction)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="runs.jsonl of run_settings.py")
    p.add_argument("--output", "-o", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    if not runs:
        print(f"error: no runs in {args.runs}", file=sys.stderr)
        return 2
    table = make_table(runs)
    sys.stdout.write(table)
    if args.output:
        write_text_atomic(args.output, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
