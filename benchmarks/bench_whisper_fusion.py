"""Benchmark (j): HFCC fused into the whisper-tacos frames, weight chosen on validation (issue 19).

    python benchmarks/bench_whisper_fusion.py --data data/kws_tts --weights 0 0.1 0.25 0.5

Enrolls the benchmark's shots with the default whisper-tacos features (the bundled pretrained
head fine-tuned, seed 0, fp32), then for every HFCC weight ``w`` searches with the frames
``[sqrt(1 - w) e_j / |e_j|, sqrt(w) h_i / |h_i|]`` (``h_i``: the HFCC frame whose centre is
nearest to frame ``j``'s), so that the DTW's cosine distance is ``(1 - w) d_whisper + w d_hfcc``
(as ``EmbeddingFeatures.hfcc_weight`` does for the log-Mel TACos network, benchmark (e)). The
threshold is tuned on validation for each weight; test is scored for every weight, and the
weight with the best validation F1 is the one that counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes" / "kws_tts" / "local"))

from kwsos.features import FeatureExtractor, get_extractor  # noqa: E402


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Fused(FeatureExtractor):
    """whisper-tacos frames with HFCC fused in (whole signals; KWS-TTS files are short)."""

    name: ClassVar[str] = "bench_fused"
    win_samples: int = 400
    hop_samples: int = 320
    weight: float = 0.0
    base: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        pass

    def _fuse(self, e: np.ndarray, wave: np.ndarray) -> np.ndarray:
        if self.weight == 0:
            return e
        hf = get_extractor("hfcc")
        h = hf(wave)
        centre = np.arange(len(e)) * 320  # whisper frame j is centred on sample 320 j
        idx = np.clip(
            np.rint((centre - hf.win_samples / 2) / hf.hop_samples).astype(int), 0, len(h) - 1
        )
        return np.concatenate(
            [np.sqrt(1 - self.weight) * _unit(e), np.sqrt(self.weight) * _unit(h[idx])], axis=1
        ).astype(np.float32)

    def n_frames(self, n_samples: int) -> int:
        return self.base.n_frames(n_samples)

    def frame_bounds_s(self, start, end):
        return self.base.frame_bounds_s(start, end)

    def shot_features(self, wave: np.ndarray) -> np.ndarray:
        return self._fuse(self.base.shot_features(wave), wave)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        return self._fuse(self.base(wave), wave)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        wave = np.concatenate([np.asarray(b, np.float32) for b in blocks])
        yield self(wave)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "kws_tts")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from experiment import load_dataset

    from kwsos.metrics import event_based_scores
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    data = load_dataset(args.data)
    sp = KeywordSpotter(SpotterConfig.for_features("whisper-tacos"))
    sp.set_training(train={"seed": 0, "max_minutes": None})
    for kw, paths in data.shots.items():
        sp.enroll(kw, paths)
    sp.fit()
    base = sp.extractor
    rows = []
    print(
        f"data: {args.data}\n| HFCC weight | val F1 | test F1 | test P | test R |\n|---|---:|---:|---:|---:|"
    )
    for w in args.weights:
        sp.set_extractor(Fused(weight=w, base=base))
        tuned = sp.tune(data.files["validation"], data.reference["validation"])
        est = [e for rec in data.files["test"] for e in sp.detect(rec)]
        t = event_based_scores(
            data.reference["test"], est, files=[str(f) for f in data.files["test"]]
        )
        rows.append({"weight": w, "val_f1": 100 * tuned.scores.f1, "test_f1": 100 * t.f1,
                     "test_p": 100 * t.precision, "test_r": 100 * t.recall})  # fmt: skip
        r = rows[-1]
        print(
            f"| {w} | {r['val_f1']:.1f} | {r['test_f1']:.1f} | {r['test_p']:.1f} | {r['test_r']:.1f} |",
            flush=True,
        )
    best = max(rows, key=lambda r: (r["val_f1"], -r["weight"]))
    print(f"\nchosen on validation: weight {best['weight']} -> test F1 {best['test_f1']:.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "chosen": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
