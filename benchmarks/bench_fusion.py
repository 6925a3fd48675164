"""(e) HFCC fused into learned embeddings: F1 against the fusion weight, chosen on validation.

A trained bank (TACos or L_kw) is searched with ``EmbeddingFeatures.hfcc_weight = w`` for each
``w`` (0 = the embeddings alone, 1 = HFCC alone at the embedding frame rate): the DTW cost of a
frame pair becomes ``(1 - w) * cosine distance of the embeddings + w * cosine distance of the
HFCC``. No retraining; each weight gets its own global threshold tuned on the validation split,
and the weight with the best validation F1 is the one to report. Test is scored for every
weight (so that the curve can be seen), but only the validation-chosen row is a result.

    python benchmarks/bench_fusion.py --bank exp/kws_tts/tacos/bank --data data/kws_tts \\
        --weights 0 0.25 0.5 0.75 1 --out benchmarks/out/fusion_kws_tts.json
    python benchmarks/bench_fusion.py --bank benchmarks/out/tacos_demo_bank_100 --demo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_tacos import load_demo, load_split, machine  # noqa: E402 - sibling script

from kwsos.io import write_json_atomic  # noqa: E402 - after the path set-up above


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bank", type=Path, required=True, help="a trained tacos/lkw keyword bank")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "kws_tts")
    p.add_argument("--demo", action="store_true", help="use the bundled demo instead of --data")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--per-keyword", action="store_true", help="also tune per-keyword thresholds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import torch

    from kwsos.tasks.kws import KeywordSpotter

    torch.set_num_threads(args.threads)
    if args.demo:
        _, val, val_ref, test, test_ref = load_demo()
    else:
        val, val_ref = load_split(args.data, "validation")
        test, test_ref = load_split(args.data, "test")
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}", flush=True)
    rows = []
    for w in args.weights:
        sp = KeywordSpotter.load(args.bank)
        sp.set_inference(hfcc_weight=w)
        t = time.perf_counter()
        tuned = sp.tune(val, val_ref, per_keyword=args.per_keyword)
        tune_s = time.perf_counter() - t
        glob = tuned.global_scores or tuned.scores
        row = {
            "hfcc_weight": w,
            "threshold": round(tuned.threshold, 4),
            "val_f1": round(100 * glob.f1, 2),
            "tune_s": round(tune_s, 1),
        }
        sp.set_threshold(tuned.threshold)
        scores, _ = sp.evaluate(test, test_ref)
        row |= {
            "test_f1": round(100 * scores.f1, 2),
            "test_p": round(100 * scores.precision, 2),
            "test_r": round(100 * scores.recall, 2),
        }
        if args.per_keyword:
            sp.set_threshold(tuned.threshold, tuned.keyword_thresholds)
            kw_scores, _ = sp.evaluate(test, test_ref)
            row |= {
                "val_f1_per_keyword": round(100 * tuned.scores.f1, 2),
                "test_f1_per_keyword": round(100 * kw_scores.f1, 2),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = max(rows, key=lambda r: (r["val_f1"], -abs(r["hfcc_weight"] - 0.5)))
    print(f"chosen on validation: hfcc_weight {best['hfcc_weight']} -> test F1 {best['test_f1']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            args.out, {"bank": str(args.bank), "machine": machine(), "rows": rows, "chosen": best}
        )


if __name__ == "__main__":
    main()
