#!/usr/bin/env python
"""The ``aisfx`` sound-effects CNN (`local/aisfx_model.py`) as a training-free clip embedder
for few-shot open-set alarm classification (issue #18 [OSC-real], item 1, a real-audio prior).
Results: ``RESULTS_aisfx.md``. The evaluation protocol and its code are those of
``whisper_prior.py`` (imported, not copied): the same test folds, seeds and metric as
``run_settings.py``, the validation folds half-way between them, one threshold per system chosen
on the validation folds (grid 0.30-0.99), ensemble weights chosen there too, test scored once.

Subcommands (run from the repository root, one thread):

``embed``   encode every clip of a benchmark ONCE: the 512-d aisfx vectors of the 100-frame blocks
            starting every 25 frames (4 blocks for a 4 s clip; blocks 0 and 2 are the paper's
            hop of 50 frames with the incomplete last block dropped), for the samples as they are
            (``orig``, the paper's Essentia path) and peak-normalised (``peak``, aisfx's librosa
            path), cached in an ``.npz``.
``score``   every pooling alone, then as an ensemble member with the recipe's fine-tuned networks
            (``exp/alarm_real_pretrained`` / ``exp/alarm_real_whisper/pretrained_val``) and, when
            its cache exists, with Whisper ``pad10/mean`` (``exp/alarm_real_whisper``).
``diagnose`` nearest-shot background sharing and closed-set accuracy by SNR and peak level.

    PY="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python"
    $PY recipes/alarm_osc/local/aisfx_prior.py embed --bench data/alarm_real \\
        --out exp/alarm_real_aisfx/embeddings.npz
    $PY recipes/alarm_osc/local/aisfx_prior.py score --out exp/alarm_real_aisfx
    $PY recipes/alarm_osc/local/aisfx_prior.py diagnose --out exp/alarm_real_aisfx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import whisper_prior as wp  # noqa: E402
from run_settings import UNKNOWN  # noqa: E402

LEVELS_IN = ("orig", "peak")  # input level: as recorded / peak-normalised
BLOCK_HOP = 25  # frames between the cached blocks
BLOCK_SETS = {"hop50": [0, 2], "hop25": [0, 1, 2, 3]}  # which cached blocks a pooling uses
POOLS = ("mean", "meanstd", "max")
VARIANTS = tuple(
    f"{lev}/{bs}/{p}{c}"
    for lev in LEVELS_IN
    for bs in BLOCK_SETS
    for p in POOLS
    for c in ("", "_c")
)
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6)  # weight of aisfx in the ensemble with the pretrained system


# ------------------------------------------------------------------------------------ embed
def embed(bench: Path, out: Path, checkpoint: str | None) -> None:
    import soundfile as sf
    import torch
    from aisfx_model import load_aisfx

    torch.set_num_threads(1)
    paths = sorted(str(p.resolve()) for p in (bench / "data").rglob("*.wav"))
    t0 = time.perf_counter()
    embs = {lev: load_aisfx(checkpoint, peak_normalize=lev == "peak") for lev in LEVELS_IN}
    load_s = time.perf_counter() - t0
    n_blocks = len(BLOCK_SETS["hop25"])
    feats = {lev: np.zeros((len(paths), n_blocks, 512), np.float32) for lev in LEVELS_IN}
    times = dict.fromkeys(LEVELS_IN, 0.0)
    t_start = time.perf_counter()
    for i, p in enumerate(paths):
        wave, sr = sf.read(p, dtype="float32", always_2d=True)
        wave = wave.mean(1)
        for lev, emb in embs.items():
            t1 = time.perf_counter()
            b = emb(wave, sr, hop=BLOCK_HOP, drop_partial=False)
            times[lev] += time.perf_counter() - t1
            if len(b) != n_blocks:
                raise SystemExit(f"{p}: {len(b)} blocks, expected {n_blocks} (4 s clips)")
            feats[lev][i] = b
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(paths)} clips, {time.perf_counter() - t_start:.0f} s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, paths=np.asarray(paths), **{f"{lev}_blocks": f for lev, f in feats.items()})
    meta = {"bench": str(bench), "n_clips": len(paths), "block_hop_frames": BLOCK_HOP,
            "blocks_per_clip": n_blocks, "model_load_s": load_s,
            "encode_s_per_clip": {k: v / len(paths) for k, v in times.items()},
            "wall_s": time.perf_counter() - t_start}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta))


# ------------------------------------------------------------------------------------ score
class AisfxEmb:
    """The cached block embeddings of one benchmark and the clip vectors of every variant
    ``<level>/<blocks>/<pool>[_c]``: ``level`` orig | peak, ``blocks`` hop50 (the paper's 2
    blocks of a 4 s clip) | hop25 (all 4), ``pool`` mean | meanstd (L2-normalised mean and std
    concatenated) | max over the blocks, ``_c`` minus the mean over the fold's training shots
    (before the L2 normalisation, as ``whisper_prior``'s ``_c``)."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as z:
            self.index = {q: i for i, q in enumerate(z["paths"].tolist())}
            self.blocks = {lev: z[f"{lev}_blocks"] for lev in LEVELS_IN}
        self._stats: dict[tuple[str, str, str], np.ndarray] = {}

    def stat(self, lev: str, bs: str, st: str) -> np.ndarray:
        key = (lev, bs, st)
        if key not in self._stats:
            b = self.blocks[lev][:, BLOCK_SETS[bs]].astype(np.float64)
            fn = {"mean": np.mean, "std": np.std, "max": np.max}[st]
            self._stats[key] = fn(b, axis=1).astype(np.float32)
        return self._stats[key]

    def vectors(self, variant: str, paths: list[str], shots: list[str]) -> np.ndarray:
        lev, bs, pool = variant.split("/")
        stat, _, how = pool.partition("_")
        idx = [self.index[p] for p in paths]
        sidx = [self.index[p] for p in shots]
        parts = []
        for st in ("mean", "std") if stat == "meanstd" else (stat,):
            f = self.stat(lev, bs, st)
            x = f[idx] - f[sidx].mean(0) if how == "c" else f[idx]
            parts.append(wp.l2n(x))
        return wp.l2n(np.concatenate(parts, 1)) if len(parts) > 1 else parts[0]


def sims_fn(emb, variant: str, whisper: bool = False):
    """Shot similarities ``(n_test, n_shots)`` of a run: cosine of the clip vectors."""

    def fn(r: wp.Run) -> np.ndarray:
        if whisper:
            t = emb.vectors("pad10", "mean", r.test_paths, r.shot_paths)
            s = emb.vectors("pad10", "mean", r.shot_paths, r.shot_paths)
        else:
            t = emb.vectors(variant, r.test_paths, r.shot_paths)
            s = emb.vectors(variant, r.shot_paths, r.shot_paths)
        return t @ s.T

    return fn


def evaluate(runs, fn, thr: float) -> list[dict]:
    """``whisper_prior.evaluate`` at one threshold, plus the known-vs-unknown AUROC of the
    decision score (the issue's "known/unknown AUROC")."""
    from sklearn.metrics import roc_auc_score

    recs = []
    for r in runs:
        n_cls = len(r.classes) + len(r.unknown_classes)
        best, score = wp.decide(wp.class_sims(fn(r), r.shot_class, n_cls), len(r.classes))
        m = r.metrics(best, score, thr)
        m["auroc_ku"] = float(roc_auc_score(r.y != UNKNOWN, score))
        recs.append({"setting": r.setting, "level": r.level, "seed": r.seed, "fold": r.fold, **m})
    return recs


def summary(recs: list[dict]) -> dict[str, float]:
    """Means over the settings of the per-setting means (the tables' bottom row)."""
    keys = ("wa", "acc_known", "acc_unknown", "acc_closed", "top1_auc", "auroc_ku")
    return {k: float(np.mean([np.mean([r[k] for r in recs if r["setting"] == s])
                              for s in wp.SETTINGS])) for k in keys}  # fmt: skip


def combined_table(systems: dict[str, list[dict]]) -> str:
    """RESULTS_whisper.md's layout: WA ± std (known acc. / unknown rejected) per setting."""
    names = list(systems)
    lines = ["| setting | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for s in wp.SETTINGS:
        cells = []
        for n in names:
            rs = [r for r in systems[n] if r["setting"] == s]
            wa = 100 * np.asarray([r["wa"] for r in rs])
            kn = 100 * np.mean([r["acc_known"] for r in rs])
            un = 100 * np.mean([r["acc_unknown"] for r in rs])
            cells.append(f"{wa.mean():.1f} ± {wa.std():.1f} ({kn:.1f} / {un:.1f})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    sums = {n: summary(systems[n]) for n in names}
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * m['wa']:.1f}** ({100 * m['acc_known']:.1f} / {100 * m['acc_unknown']:.1f})"
        for m in sums.values()) + " |")  # fmt: skip
    lines.append("| closed-set acc. / top-1 AUC / known-vs-unknown AUROC (mean) | " + " | ".join(
        f"{100 * m['acc_closed']:.1f} / {100 * m['top1_auc']:.1f} / {100 * m['auroc_ku']:.1f}"
        for m in sums.values()) + " |")  # fmt: skip
    return "\n".join(lines)


def score(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    out = args.out
    emb = AisfxEmb(out / "embeddings.npz")
    test_runs = wp.load_runs(args.prepared, "test")
    val_runs = wp.load_runs(args.prepared, "val")
    print(f"{len(test_runs)} test runs, {len(val_runs)} validation runs", flush=True)
    report: dict = {"variants": {}}
    systems: dict[str, list[dict]] = {}

    # 1. every aisfx variant alone: threshold on the validation folds, then the test folds
    for v in VARIANTS:
        fn = sims_fn(emb, v)
        rec = {"val": wp.chosen(wp.curves(val_runs, fn))}
        rec["test"] = summary(evaluate(test_runs, fn, rec["val"]["threshold"]))
        report["variants"][v] = rec
        print(v, json.dumps(rec), flush=True)
    best = max(report["variants"], key=lambda n: report["variants"][n]["val"]["wa"])
    thr_a = report["variants"][best]["val"]["threshold"]
    systems[f"aisfx `{best}`, thr {thr_a:.2f}"] = evaluate(test_runs, sims_fn(emb, best), thr_a)
    report["aisfx_best"] = {"variant": best, "threshold": thr_a}

    # 2. the recipe's pretrained system from its saved embeddings (test: the 78.3 % runs;
    # validation: exp/alarm_real_whisper/pretrained_val), at the recipe's thresholds and at one
    # threshold chosen on the validation folds
    vmap = {}
    for s, folds in wp.read_index(args.prepared).items():
        for k, f in enumerate(wp.val_folds(len(folds)), 1):
            vmap[(s, f)] = k
    pre = {id(r): wp.pretrained_sims(args.pretrained, r) for r in test_runs}
    pre |= {id(r): wp.pretrained_sims(args.pretrained_val, r, vmap) for r in val_runs}
    if any(v is None for v in pre.values()):
        raise SystemExit(
            f"missing pretrained embeddings in {args.pretrained} / {args.pretrained_val}"
        )
    recipe = [r for r in evaluate(test_runs, lambda r: pre[id(r)], 0.55) if r["level"] != "high"]
    recipe += [r for r in evaluate(test_runs, lambda r: pre[id(r)], 0.6) if r["level"] == "high"]
    systems["**default** (`pretrained.json`), thr 0.55 / 0.55 / 0.6"] = recipe
    report["pretrained_recipe"] = summary(recipe)
    pv = wp.chosen(wp.curves(val_runs, lambda r: pre[id(r)]))
    pre_val = evaluate(test_runs, lambda r: pre[id(r)], pv["threshold"])
    report["pretrained_val"] = {**pv, "test": summary(pre_val)}

    # 3. ensemble: w * cos_aisfx + (1 - w) * cos_pretrained per shot (whisper_prior's rule);
    # the aisfx variant (the best alone, the paper's pooling, the best centred one), w and the
    # threshold chosen on the validation folds
    best_c = max((v for v in VARIANTS if v.endswith("_c")),
                 key=lambda n: report["variants"][n]["val"]["wa"])  # fmt: skip
    ens = {}
    cache: dict[str, dict[int, np.ndarray]] = {}
    for v in dict.fromkeys([best, "orig/hop50/mean", best_c]):
        fn = sims_fn(emb, v)
        cache[v] = {id(r): fn(r) for r in val_runs + test_runs}
        for w in WEIGHTS:

            def mix(r, w=w, a=cache[v]):
                return w * a[id(r)] + (1 - w) * pre[id(r)]

            c = wp.chosen(wp.curves(val_runs, mix))
            ens[f"{v}@{w}"] = {**c, "test": summary(evaluate(test_runs, mix, c["threshold"]))}
            print("ensemble", v, w, json.dumps(ens[f"{v}@{w}"]), flush=True)
    report["ensemble"] = ens
    bk = max(ens, key=lambda k: ens[k]["wa"])
    v_e, w_e = bk.split("@")
    w_e, t_e = float(w_e), ens[bk]["threshold"]
    systems[f"ensemble {w_e} aisfx `{v_e}` + {1 - w_e:.1f} pretrained, thr {t_e:.2f}"] = evaluate(
        test_runs, lambda r: w_e * cache[v_e][id(r)] + (1 - w_e) * pre[id(r)], t_e
    )
    report["ensemble_best"] = {"variant": v_e, "weight": w_e, "threshold": t_e}
    systems[f"pretrained alone, thr {pv['threshold']:.2f} (chosen like the ensemble)"] = pre_val

    # 4. with Whisper pad10/mean as a third member (whisper_prior's cache), if present
    wpath = args.whisper / "embeddings.npz"
    if wpath.is_file():
        wemb = wp.Emb(wpath)
        wf = sims_fn(wemb, "", whisper=True)
        wh = {id(r): wf(r) for r in val_runs + test_runs}
        three = {}
        for wa_ in (0.0, 0.1, 0.2, 0.3, 0.4):
            for ww in (0.1, 0.2, 0.3, 0.4):

                def mix3(r, wa_=wa_, ww=ww, a=cache[v_e]):
                    return wa_ * a[id(r)] + ww * wh[id(r)] + (1 - wa_ - ww) * pre[id(r)]

                c = wp.chosen(wp.curves(val_runs, mix3))
                three[f"{wa_}/{ww}"] = {**c, "test": summary(evaluate(test_runs, mix3, c["threshold"]))}  # fmt: skip
                print("three-way", wa_, ww, json.dumps(three[f"{wa_}/{ww}"]), flush=True)
        report["three_way"] = three
        k3 = max(three, key=lambda k: three[k]["wa"])
        report["three_way_best"] = {"aisfx_weight": k3.split("/")[0],
                                    "whisper_weight": k3.split("/")[1], **three[k3]}  # fmt: skip

    text = ["## Test folds (each system's choices made on the validation folds)\n",
            combined_table(systems), "\n## Best aisfx variant alone, per setting\n",
            wp.table(systems[next(iter(systems))])[0]]  # fmt: skip
    report["score_wall_s"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "tables.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"score: {report['score_wall_s']:.0f} s")


def diagnose(args: argparse.Namespace) -> None:
    """As ``whisper_prior.py diagnose``: how often a known test clip's nearest known shot shares
    its background, and closed-set accuracy by SNR tertile, here also by peak level (the clips
    are -20 to -1 dBFS), for aisfx (the chosen variant and the paper's pooling) and the recipe's
    system."""
    bench = args.prepared.parent
    info = wp.clip_info(bench)
    emb = AisfxEmb(args.out / "embeddings.npz")
    best = json.loads((args.out / "report.json").read_text())["aisfx_best"]["variant"]
    runs = wp.load_runs(args.prepared, "test")
    systems = {f"aisfx {v}": sims_fn(emb, v) for v in dict.fromkeys([best, "orig/hop50/mean"])}
    systems["pretrained (recipe)"] = lambda r: wp.pretrained_sims(args.pretrained, r)
    result = {}
    for name, fn in systems.items():
        same_bg, right, recs = wp.nearest_known_shots(runs, fn, info)
        snr = np.array([d["snr_db"] for d in recs])
        peak = np.array([d["peak_dbfs"] for d in recs])
        rec = {"same_background": same_bg.mean(), "same_background_errors": same_bg[~right].mean(),
               "same_background_right": same_bg[right].mean(), "closed": right.mean()}  # fmt: skip
        for key, v in (("snr", snr), ("peak", peak)):
            lo, hi = np.quantile(v, [1 / 3, 2 / 3])
            bins = {f"{key}<{lo:.0f}": v < lo, f"{key} {lo:.0f}..{hi:.0f}": (v >= lo) & (v < hi),
                    f"{key}>={hi:.0f}": v >= hi}  # fmt: skip
            rec |= {k: right[m].mean() for k, m in bins.items()}
        result[name] = {k: round(100 * float(x), 1) for k, x in rec.items()}
        print(name, json.dumps(result[name]), flush=True)
    (args.out / "diagnose.json").write_text(json.dumps(result, indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--bench", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument(
        "--checkpoint", default=None, help="aisfx checkpoint.pth (default: installed aisfx)"
    )
    s = sub.add_parser("score")
    s.add_argument("--out", type=Path, default=Path("exp/alarm_real_aisfx"))
    s.add_argument("--prepared", type=Path, default=Path("data/alarm_real/prepared"))
    s.add_argument("--pretrained", type=Path, default=Path("exp/alarm_real_pretrained"))
    s.add_argument("--pretrained-val", type=Path,
                   default=Path("exp/alarm_real_whisper/pretrained_val"))  # fmt: skip
    s.add_argument("--whisper", type=Path, default=Path("exp/alarm_real_whisper"),
                   help="whisper_prior.py's cache (embeddings.npz); skipped if absent")  # fmt: skip
    d = sub.add_parser("diagnose")
    d.add_argument("--out", type=Path, default=Path("exp/alarm_real_aisfx"))
    d.add_argument("--prepared", type=Path, default=Path("data/alarm_real/prepared"))
    d.add_argument("--pretrained", type=Path, default=Path("exp/alarm_real_pretrained"))
    args = p.parse_args(argv)
    if args.cmd == "embed":
        embed(args.bench, args.out, args.checkpoint)
    elif args.cmd == "score":
        score(args)
    else:
        diagnose(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
