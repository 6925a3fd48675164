"""Development sweep: train and evaluate several AnomalyDetector configs on one DCASE folder.

    PYTHONPATH=. python recipes/dcase2023_task2/local/sweep.py data/asd_synth/dcase2023_dev \
        recipes/dcase2023_task2/local/dev_sweep.json [--only name,name]

``dev_sweep.json`` maps a name to an :class:`~kwsos.tasks.anomaly.AnomalyConfig` dict. The clips
are loaded once; one line per system: the official score, the harmonic means of AUC source,
AUC target and pAUC, the fit time and the official score per machine type. Used on the ``dev``
half of the synthetic set to choose the recipe's settings (RESULTS.md, "Development").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kwsos.audio import audio_info
from kwsos.dcase import detect_layout, evaluate, read_dataset
from kwsos.tasks.anomaly import AnomalyConfig, AnomalyDetector, load_waves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("systems", type=Path)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    systems = json.loads(args.systems.read_text())
    if args.only:
        systems = {k: systems[k] for k in args.only.split(",")}
    layout = detect_layout(args.dataset)
    train = read_dataset(args.dataset, split="train")
    test = read_dataset(args.dataset, split="test")
    fe = AnomalyConfig().frontend
    n = int(round(max(audio_info(c.path).duration_s for c in train) * fe.sample_rate))
    w_train, w_test = load_waves(train, fe, n), load_waves(test, fe, n)
    for name, cfg in systems.items():
        t0 = time.time()
        det = AnomalyDetector(cfg).fit(train, waves=w_train)
        fit_s = time.time() - t0
        scores = det.score_samples(test, waves=w_test)
        r = evaluate(test, scores, (scores > det.threshold_of(test)).astype(int), layout=layout)
        s = r.summary
        per = {m: round(v["score"], 3) for m, v in r.per_machine.items()}
        print(
            f"{name}: score {s['official_score']:.4f} AUC-s {s['hmean_auc_source']:.3f} "
            f"AUC-t {s['hmean_auc_target']:.3f} pAUC {s['hmean_pauc']:.3f} fit {fit_s:.0f} s "
            f"{per}",
            flush=True,
        )


if __name__ == "__main__":
    main()
