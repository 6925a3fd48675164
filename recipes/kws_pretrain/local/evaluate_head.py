"""Stage 2 of recipes/kws_pretrain: is the pretrained whisper-tacos head worth using?

    python recipes/kws_pretrain/local/evaluate_head.py --head exp/kws_pretrain/whisper_head.pt \
        --kws-tts data/kws_tts --out exp/kws_pretrain/evaluation.json

Three ways to get the head, each enrolled on the benchmark's shots, thresholds tuned on its
validation split, test scored once (event-based micro F1, global threshold):

* ``scratch``: a head trained on the shots only (500 steps; the default before the
  pretrained head was bundled);
* ``frozen``: the pretrained head as it is, no training at enrollment (enrollment = encoding);
* ``warm``: the pretrained head fine-tuned on the shots (the same 500 steps, warm start;
  what ``init="pretrained"``, the default, does with the bundled head).

Benchmarks: KWS-TTS (shots and sentences from disjoint voices) and the bundled demo
(``validation.flac`` / ``long.flac``). The choice is made on the validation F1s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "recipes" / "kws_tts" / "local"))


def load_head(path: Path):
    import torch

    from kwsos.models.whisper_head import WhisperHead

    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise SystemExit(f"error: no pretrained head {path} (with its .json); run stage 1")
    meta = json.loads(path.with_suffix(".json").read_text())
    arch = {k: v for k, v in meta["arch"].items() if k != "name"}
    head = WhisperHead(**arch)
    head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return head.eval(), meta


def run(way: str, head, shots, val, val_ref, test, test_ref, seed: int = 0) -> dict:
    from dataclasses import replace

    from kwsos.metrics import event_based_scores
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    t0 = time.perf_counter()
    # "scratch": a head trained on the shots only (the library's init="pretrained" would start
    # from the bundled head); "frozen" / "warm" attach the head under evaluation
    sp = KeywordSpotter(SpotterConfig.for_features("whisper-tacos", init="scratch"))
    sp.set_training(train={"seed": seed, "precision": "fp32", "max_minutes": None})
    for kw, paths in shots.items():
        sp.enroll(kw, paths)
    if way in ("frozen", "warm"):
        import copy

        ex = replace(sp.extractor, training={}).with_net(copy.deepcopy(head))
        sp.set_extractor(ex)
    if way in ("scratch", "warm"):
        sp.train_features(warm_start=way == "warm")
    sp.fit()
    enroll_s = time.perf_counter() - t0
    tuned = sp.tune(val, val_ref)
    est = [e for rec in test for e in sp.detect(rec)]
    test_scores = event_based_scores(test_ref, est, files=[str(f) for f in test])
    return {
        "way": way,
        "enroll_s": round(enroll_s, 1),
        "val_f1": round(100 * tuned.scores.f1, 1),
        "test_f1": round(100 * test_scores.f1, 1),
        "threshold": round(tuned.threshold, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--head", type=Path, required=True)
    ap.add_argument("--kws-tts", type=Path, default=ROOT / "data" / "kws_tts")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ways", default="scratch,frozen,warm")
    args = ap.parse_args()

    from experiment import load_dataset

    from kwsos.events import read_events
    from kwsos.io import write_json_atomic

    head, meta = load_head(args.head)
    demo = ROOT / "kwsos" / "data" / "demo"
    demo_shots = {
        d.name.replace("_", " "): sorted(d.glob("*.wav"))
        for d in sorted((demo / "shots").iterdir())
        if d.is_dir()
    }
    kt = load_dataset(args.kws_tts)
    benches = {
        "kws_tts": (
            kt.shots,
            kt.files["validation"],
            kt.reference["validation"],
            kt.files["test"],
            kt.reference["test"],
        ),
        "demo": (
            demo_shots,
            [demo / "validation.flac"],
            read_events(demo / "validation.csv"),
            [demo / "long.flac"],
            read_events(demo / "long.csv"),
        ),
    }
    results = {
        "head": str(args.head),
        "pretraining": {k: meta[k] for k in ("best_step", "best_val_auc", "n_words")},
    }
    for name, bench in benches.items():
        results[name] = []
        for way in args.ways.split(","):
            r = run(way, head, *bench)
            print(name, r, flush=True)
            results[name].append(r)
    write_json_atomic(args.out, results)
    print("| benchmark | head | val F1 | test F1 | enroll (s) |\n|---|---|---:|---:|---:|")
    for name in benches:
        for r in results[name]:
            print(f"| {name} | {r['way']} | {r['val_f1']} | {r['test_f1']} | {r['enroll_s']} |")


if __name__ == "__main__":
    main()
