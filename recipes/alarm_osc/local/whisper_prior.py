#!/usr/bin/env python
"""Whisper's encoder (tiny.en) as a training-free clip embedder for few-shot open-set alarm
classification (issue #18 [OSC-real], a real-audio prior). Results: ``RESULTS_whisper.md``.

Subcommands (run from the repository root, one thread):

``embed``      encode every clip of a benchmark ONCE with :class:`kwsos.features.whisper.WhisperFeatures`
               (4 s clip as it is = ``raw``, and zero-padded to 10 s = ``pad10``) and keep per-clip
               frame statistics (mean, std, max over the 200 frames) in an ``.npz`` cache.
``val-index``  an ``index.csv`` of validation folds of a prepared benchmark: for every setting the
               5 folds half-way between the folds that ``run_settings.py --folds spread`` scores
               with seeds 0-4 (40 folds: 5, 13, 21, 29, 37; 20: 3, 7, ..., 19; 10: 2, 4, ..., 10),
               renumbered 1-5 so that ``run_settings.py --prepared <this> --folds spread`` runs
               exactly them (for the pretrained network's validation embeddings).
``score``      classify every run with the open-set rule of :class:`kwsos.tasks.openset.OpenSetClassifier`
               (max cosine similarity to each class's shots, known-unknown shots as their own classes,
               nearer to a known-unknown shot -> unknown, below the threshold -> unknown) on the same
               folds, seeds and metric as ``run_settings.py``; the pooling, the threshold and the
               ensemble weight are chosen on validation folds only (see ``--help``) and then scored
               on the test folds.
``diagnose``   how often a test clip's nearest shot shares its background (from the benchmark's
               manifest), and closed-set accuracy by SNR, for Whisper and the recipe's system.

    PY="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python"
    $PY recipes/alarm_osc/local/whisper_prior.py embed --bench data/alarm_real \\
        --out exp/alarm_real_whisper/embeddings.npz
    $PY recipes/alarm_osc/local/whisper_prior.py embed --bench data/alarm_bench \\
        --out exp/alarm_real_whisper/embeddings_synth.npz
    $PY recipes/alarm_osc/local/whisper_prior.py val-index --prepared data/alarm_real/prepared \\
        --out exp/alarm_real_whisper/val_prepared
    $PY recipes/alarm_osc/local/run_settings.py --prepared exp/alarm_real_whisper/val_prepared \\
        --out exp/alarm_real_whisper/pretrained_val --config recipes/alarm_osc/conf/pretrained.json \\
        --jobs 1 --threads 1 --save-embeddings
    $PY recipes/alarm_osc/local/whisper_prior.py score --out exp/alarm_real_whisper
    $PY recipes/alarm_osc/local/whisper_prior.py diagnose --out exp/alarm_real_whisper
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_settings import LEVELS, UNKNOWN, pick_folds, read_csv  # noqa: E402

from kwsos.metrics import top1_auc, weighted_accuracy  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
ENCODINGS = ("raw", "pad10")
STATS = ("mean", "std", "max")
POOLINGS = tuple(
    f"{st}{how}"
    for st in ("mean", "meanstd", "max", "fg50", "fg75", "fgbg")
    for how in ("", "_c", "_cs", "_ws")
)
THRESHOLDS = np.round(np.arange(0.30, 0.991, 0.01), 3)
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)  # weight of Whisper in the ensemble
SETTINGS = [f"{k}shot_{o}" for o in LEVELS for k in (1, 2, 4)]


# ------------------------------------------------------------------------------------ embed
def embed(bench: Path, out: Path) -> None:
    import torch

    from kwsos.audio import load_audio
    from kwsos.features.whisper import WhisperFeatures

    torch.set_num_threads(1)
    paths = sorted(str(p.resolve()) for p in (bench / "data").rglob("*.wav"))
    ex = WhisperFeatures(threads=1, shot_pad_s=10.0)
    feats = {f"{e}_{s}": np.zeros((len(paths), 384), np.float32) for e in ENCODINGS for s in STATS}
    times = {e: 0.0 for e in ENCODINGS}
    t_start = time.perf_counter()
    for i, p in enumerate(paths):
        wave = load_audio(p)
        for enc, fn in (("raw", ex), ("pad10", ex.shot_features)):
            t0 = time.perf_counter()
            frames = fn(wave)
            times[enc] += time.perf_counter() - t0
            feats[f"{enc}_mean"][i] = frames.mean(0)
            feats[f"{enc}_std"][i] = frames.std(0)
            feats[f"{enc}_max"][i] = frames.max(0)
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(paths)} clips, {time.perf_counter() - t_start:.0f} s", flush=True)
    _save(bench, out, paths, feats, times, t_start, ex)


FG_STATS = ("fg50", "fg75", "fgbg")


def embed_fg(bench: Path, out: Path) -> None:
    """Foreground pooling of the ``pad10`` frames, weighted by the clip's own loudness: the mean of
    the frames whose log-Mel energy is above the clip's median (``fg50``) or upper quartile
    (``fg75``), and ``fgbg`` = ``fg50`` minus the mean of the quietest quarter of the frames (the
    background: it is shared across classes in these benchmarks, the sound event is not)."""
    import torch

    from kwsos.audio import load_audio
    from kwsos.features.whisper import WhisperFeatures, log_mel_spectrogram

    torch.set_num_threads(1)
    paths = sorted(str(p.resolve()) for p in (bench / "data").rglob("*.wav"))
    ex = WhisperFeatures(threads=1, shot_pad_s=10.0)
    feats = {f"pad10_{s}": np.zeros((len(paths), 384), np.float32) for s in FG_STATS}
    times = {"pad10": 0.0}
    t_start = time.perf_counter()
    for i, p in enumerate(paths):
        wave = load_audio(p)
        t0 = time.perf_counter()
        frames = ex.shot_features(wave)
        times["pad10"] += time.perf_counter() - t0
        mel = log_mel_spectrogram(wave).mean(0)  # (T,) per 10 ms
        n = len(frames)
        energy = np.pad(mel, (0, max(0, 2 * n - len(mel))), mode="edge")[: 2 * n]
        energy = energy.reshape(n, 2).mean(1)
        q25, q50, q75 = np.quantile(energy, [0.25, 0.5, 0.75])
        fg50 = frames[energy >= q50].mean(0)
        feats["pad10_fg50"][i] = fg50
        feats["pad10_fg75"][i] = frames[energy >= q75].mean(0)
        feats["pad10_fgbg"][i] = fg50 - frames[energy <= q25].mean(0)
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(paths)} clips, {time.perf_counter() - t_start:.0f} s", flush=True)
    _save(bench, out, paths, feats, times, t_start, ex)


def _save(bench, out, paths, feats, times, t_start, ex) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    per_clip = {e: t / len(paths) for e, t in times.items()}
    np.savez(out, paths=np.asarray(paths), **feats)
    meta = {"bench": str(bench), "n_clips": len(paths), "encode_s_per_clip": per_clip,
            "wall_s": time.perf_counter() - t_start, "extractor": ex.to_dict()}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta))


# -------------------------------------------------------------------------------- val-index
def val_folds(n_folds: int) -> list[int]:
    """Folds half-way between the scored ones (``pick_folds(..., 'spread')`` with 5 seeds)."""
    test = [pick_folds(n_folds, i, len(SEEDS), "spread")[0] for i in range(len(SEEDS))]
    val = [f + n_folds // 10 for f in test]
    assert not set(val) & set(test) and max(val) <= n_folds, (n_folds, test, val)
    return val


def test_folds(n_folds: int) -> list[int]:
    return [pick_folds(n_folds, i, len(SEEDS), "spread")[0] for i in range(len(SEEDS))]


def read_index(prepared: Path) -> dict[str, dict[int, dict[str, str]]]:
    by: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for r in read_csv(prepared / "index.csv", ("setting", "shots", "fold", "train", "test")):
        by[r["setting"]][int(r["fold"])] = r
    return by


def val_index(prepared: Path, out: Path) -> None:
    by = read_index(prepared)
    rows = []
    for folds in by.values():
        for k, f in enumerate(val_folds(len(folds)), 1):
            rows.append({**folds[f], "fold": str(k), "orig_fold": str(f)})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "index.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} validation folds -> {out / 'index.csv'}")


# ------------------------------------------------------------------------------------ score
def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Emb:
    """Per-clip frame statistics of one benchmark (``embed`` and, if present, ``embed --fg``)."""

    def __init__(self, path: Path) -> None:
        self.f: dict[str, np.ndarray] = {}
        for p in (path, path.with_name(path.stem + "_fg.npz")):
            if not p.is_file():
                continue
            with np.load(p) as z:
                index = {q: i for i, q in enumerate(z["paths"].tolist())}
                if hasattr(self, "index"):
                    assert index == self.index, f"{p}: other clips than {path}"
                self.index = index
                self.f.update({k: z[k] for k in z.files if k != "paths"})
        self.ref: Emb | None = None  # another benchmark: the statistics of _cs / _ws

    def has(self, enc: str, pooling: str) -> bool:
        stats = ("mean", "std") if pooling.startswith("meanstd") else (pooling.split("_")[0],)
        ok = all(f"{enc}_{st}" in self.f for st in stats)
        if pooling.endswith(("_cs", "_ws")):
            ok = ok and self.ref is not None and self.ref.has(enc, pooling.rsplit("_", 1)[0])
        return ok

    def _whitener(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and PCA-whitening matrix of ``key`` over all clips of this benchmark
        (eigenvalues shrunk by 0.1 x their mean, a fixed choice)."""
        cache = self.__dict__.setdefault("_w", {})
        if key not in cache:
            x = self.f[key].astype(np.float64)
            mu = x.mean(0)
            lam, vec = np.linalg.eigh(np.cov(x - mu, rowvar=False))
            lam = np.maximum(lam, 0) + 0.1 * lam.mean()
            cache[key] = (mu.astype(np.float32), (vec / np.sqrt(lam)) @ vec.T)
        return cache[key]

    def _one(self, key: str, idx: list[int], sidx: list[int], how: str) -> np.ndarray:
        x = self.f[key][idx]
        if how == "c":  # minus the mean over the fold's training shots
            return l2n(x - self.f[key][sidx].mean(0))
        if how == "cs":  # minus the mean over the reference benchmark's clips
            return l2n(x - self.ref.f[key].mean(0))
        if how == "ws":  # whitened with the reference benchmark's statistics
            mu, w = self.ref._whitener(key)
            return l2n(((x - mu) @ w).astype(np.float32))
        return l2n(x)

    def vectors(self, enc: str, pooling: str, paths: list[str], shots: list[str]) -> np.ndarray:
        """L2-normalised clip vectors of ``paths`` for ``pooling`` = ``<stat>[_c|_cs|_ws]``
        (stat: mean, max, meanstd, fg50, fg75, fgbg); ``shots`` (the fold's training clips)
        give the centring of ``_c``."""
        idx = [self.index[p] for p in paths]
        sidx = [self.index[p] for p in shots]
        stat, _, how = pooling.partition("_")
        if stat == "meanstd":
            parts = [self._one(f"{enc}_{st}", idx, sidx, how) for st in ("mean", "std")]
            return l2n(np.concatenate(parts, 1))
        return self._one(f"{enc}_{stat}", idx, sidx, how)


def class_sims(sims: np.ndarray, shot_class: np.ndarray, n_cls: int) -> np.ndarray:
    """Max similarity to each class's shots ``(n, n_cls)`` from shot similarities ``(n, n_shots)``."""
    out = np.full((len(sims), n_cls), -np.inf, np.float32)
    for c in range(n_cls):
        out[:, c] = sims[:, shot_class == c].max(1)
    return out


def decide(csims: np.ndarray, n_known: int) -> tuple[np.ndarray, np.ndarray]:
    """``(top known class index, decision score)`` as :meth:`OpenSetClassifier.decide`."""
    known = csims[:, :n_known]
    unk = csims[:, n_known:].max(1) if csims.shape[1] > n_known else np.full(len(csims), -np.inf)
    best = known.argmax(1)
    score = known[np.arange(len(known)), best]
    return best, np.where(unk > score, score - 2.0, score)


class Run:
    """One (setting, fold): its shots and test clips."""

    def __init__(self, setting: str, fold: int, row: dict[str, str], seed: int) -> None:
        self.setting, self.fold, self.seed = setting, fold, seed
        self.level = setting.split("_")[1]
        train, test = read_csv(row["train"]), read_csv(row["test"])
        self.classes = sorted({r["label"] for r in train if r["role"] == "known"})
        self.unknown_classes = sorted({r["class"] for r in train if r["role"] != "known"})
        names = self.classes + self.unknown_classes
        self.shot_paths = [r["path"] for r in train]
        self.shot_class = np.asarray(
            [names.index(r["label"] if r["role"] == "known" else r["class"]) for r in train]
        )
        self.test_paths = [r["path"] for r in test]
        self.y = np.asarray([r["label"] for r in test], dtype=object)

    def metrics(self, best: np.ndarray, score: np.ndarray, thr: float) -> dict[str, float]:
        top = np.asarray(self.classes, dtype=object)[best]
        labels = np.where(score < thr, UNKNOWN, top).astype(object)
        unk = self.y == UNKNOWN
        return {
            "wa": weighted_accuracy(
                self.y, labels, unknown_label=UNKNOWN, rejection_term="unknown"
            ),
            "acc_known": float(np.mean(labels[~unk] == self.y[~unk])),
            "acc_closed": float(np.mean(top[~unk] == self.y[~unk])),
            "acc_unknown": float(np.mean(labels[unk] == UNKNOWN)),
            "top1_auc": top1_auc(self.y, top, score, unknown_label=UNKNOWN),
        }

    def wa_curve(self, best: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Weighted accuracy at every threshold of ``THRESHOLDS`` (fast, vectorised)."""
        top = np.asarray(self.classes, dtype=object)[best]
        unk = self.y == UNKNOWN
        right = (top == self.y) & ~unk
        known_cls = sorted(set(self.y[~unk]))
        out = np.zeros(len(THRESHOLDS))
        for j, t in enumerate(THRESHOLDS):
            acc = right & (score >= t)
            ak = np.mean([acc[self.y == c].mean() for c in known_cls])
            au = np.mean(score[unk] < t)
            out[j] = 0.5 * ak + 0.5 * au
        return out


def load_runs(prepared: Path, which: str) -> list[Run]:
    by = read_index(prepared)
    runs = []
    for setting in SETTINGS:
        folds = by[setting]
        chosen = test_folds(len(folds)) if which == "test" else val_folds(len(folds))
        runs += [Run(setting, f, folds[f], SEEDS[i]) for i, f in enumerate(chosen)]
    return runs


def pretrained_sims(exp: Path, run: Run, val_map: dict | None = None) -> np.ndarray | None:
    """Shot-level similarities ``(n_test, n_shots)`` of the recipe's pretrained system (its saved
    embeddings; the max over its reference speeds 0.92-1.08 per shot), or None if missing."""
    fold = val_map[(run.setting, run.fold)] if val_map else run.fold
    f = exp / "embeddings" / f"{run.setting}_seed{run.seed}_fold{fold:02d}.npz"
    if not f.is_file():
        return None
    with np.load(f) as z:
        speeds = z["speeds"]
        keep = [int(np.argmin(np.abs(speeds - s))) for s in (0.92, 0.96, 1.0, 1.04, 1.08)]
        names = z["classes"].tolist() + z["unknown_classes"].tolist()
        assert list(z["y"]) == list(run.y), "test clips out of order"
        sims = np.stack([z["test"] @ z["shots"][k].T for k in keep]).max(0)
        # reorder its shots to this run's shot order (both follow train.csv)
        mine = np.asarray(run.classes + run.unknown_classes)[run.shot_class]
        theirs = np.asarray(names)[z["shot_class"]]
        assert (mine == theirs).all(), "shot order differs"
    return sims


def evaluate(runs, sims_fn, thr_by_level) -> list[dict]:
    recs = []
    for r in runs:
        csims = class_sims(sims_fn(r), r.shot_class, len(r.classes) + len(r.unknown_classes))
        best, score = decide(csims, len(r.classes))
        recs.append({"setting": r.setting, "level": r.level, "seed": r.seed, "fold": r.fold,
                     **r.metrics(best, score, thr_by_level[r.level])})  # fmt: skip
    return recs


def curves(runs, sims_fn) -> dict[str, np.ndarray]:
    """Mean WA over the runs of each setting at every threshold: ``{setting: (n_thr,)}``."""
    acc: dict[str, list] = defaultdict(list)
    for r in runs:
        csims = class_sims(sims_fn(r), r.shot_class, len(r.classes) + len(r.unknown_classes))
        acc[r.setting].append(r.wa_curve(*decide(csims, len(r.classes))))
    return {s: np.mean(v, 0) for s, v in acc.items()}


def chosen(curve: dict[str, np.ndarray]) -> dict[str, Any]:
    """:func:`choose` as the report records it."""
    thr, wa, per_level, lev_wa = choose(curve)
    return {"threshold": thr, "wa": wa, "per_level": per_level, "per_level_wa": lev_wa}


def choose(curve: dict[str, np.ndarray]) -> tuple[float, float, dict[str, float], float]:
    """Best single threshold (mean over the 9 settings) and the best per openness level."""
    mean = np.mean([curve[s] for s in SETTINGS], 0)
    j = int(np.argmax(mean))
    per_level = {}
    for lev in LEVELS:
        m = np.mean([curve[s] for s in SETTINGS if s.endswith(lev)], 0)
        per_level[lev] = float(THRESHOLDS[int(np.argmax(m))])
    lev_mean = float(np.mean([
        np.mean([curve[s] for s in SETTINGS if s.endswith(lev)], 0)[list(THRESHOLDS).index(t)]
        for lev, t in per_level.items()
    ]))  # fmt: skip
    return float(THRESHOLDS[j]), float(mean[j]), per_level, lev_mean


def table(recs: list[dict]) -> tuple[str, float]:
    by = defaultdict(list)
    for r in recs:
        by[r["setting"]].append(r)
    lines = ["| setting | WA (%) | known acc. (%) | closed-set (%) | unknown rejected (%) | top-1 AUC (%) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    means = defaultdict(list)
    for s in SETTINGS:
        cells = []
        for k in ("wa", "acc_known", "acc_closed", "acc_unknown", "top1_auc"):
            v = 100 * np.asarray([r[k] for r in by[s]])
            means[k].append(v.mean())
            cells.append(f"{v.mean():.1f} ± {v.std():.1f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{np.mean(means[k]):.1f}**" for k in
                 ("wa", "acc_known", "acc_closed", "acc_unknown", "top1_auc")) + " |")  # fmt: skip
    return "\n".join(lines), float(np.mean(means["wa"]))


def score(args: argparse.Namespace) -> None:
    out = args.out
    real = Emb(out / "embeddings.npz")
    synth = Emb(out / "embeddings_synth.npz") if (out / "embeddings_synth.npz").is_file() else None
    test_runs = load_runs(args.prepared, "test")
    val_runs = load_runs(args.prepared, "val")
    synth_runs = load_runs(args.synth_prepared, "test") if synth else []
    real.ref = synth
    if synth:
        synth.ref = synth  # validation on the synthetic clips: their own statistics
    report: dict = {"variants": {}}

    def whisper_fn(emb: Emb, enc: str, pool: str):
        def fn(r: Run) -> np.ndarray:
            t = emb.vectors(enc, pool, r.test_paths, r.shot_paths)
            s = emb.vectors(enc, pool, r.shot_paths, r.shot_paths)
            return t @ s.T

        return fn

    # 1. every Whisper variant: threshold curves on validation (real held-out folds; synthetic)
    print(
        f"{len(test_runs)} test runs, {len(val_runs)} validation runs, {len(synth_runs)} synthetic runs"
    )
    for enc in ENCODINGS:
        for pool in POOLINGS:
            if not real.has(enc, pool) or (synth is not None and not synth.has(enc, pool)):
                continue
            name = f"{enc}/{pool}"
            v = {}
            v["val_real"] = chosen(curves(val_runs, whisper_fn(real, enc, pool)))
            thr = v["val_real"]["threshold"]
            if synth:
                v["val_synth"] = chosen(curves(synth_runs, whisper_fn(synth, enc, pool)))
                thr_s = v["val_synth"]["threshold"]
            # test at the threshold chosen on the real validation folds, and at the synthetic one
            recs = evaluate(test_runs, whisper_fn(real, enc, pool), dict.fromkeys(LEVELS, thr))
            v["test_at_val_real"] = float(np.mean([r["wa"] for r in recs]))
            if synth:
                recs_s = evaluate(
                    test_runs, whisper_fn(real, enc, pool), dict.fromkeys(LEVELS, thr_s)
                )
                v["test_at_val_synth"] = float(np.mean([r["wa"] for r in recs_s]))
            v["test_closed"] = float(np.mean([r["acc_closed"] for r in recs]))
            v["test_auc"] = float(np.mean([r["top1_auc"] for r in recs]))
            report["variants"][name] = v
            print(name, json.dumps(v), flush=True)

    # 2. the variant chosen on the real validation folds (single threshold)
    best = max(report["variants"], key=lambda n: report["variants"][n]["val_real"]["wa"])
    enc, pool = best.split("/")
    thr = report["variants"][best]["val_real"]["threshold"]
    recs = evaluate(test_runs, whisper_fn(real, enc, pool), dict.fromkeys(LEVELS, thr))
    tab, wa = table(recs)
    report["whisper_best"] = {"variant": best, "threshold": thr, "test_wa": wa}
    text = [f"## Whisper {best}, threshold {thr} (chosen on the real validation folds)\n", tab]
    if synth:
        best_s = max(report["variants"], key=lambda n: report["variants"][n]["val_synth"]["wa"])
        e2, p2 = best_s.split("/")
        thr_s = report["variants"][best_s]["val_synth"]["threshold"]
        tab_s, wa_s = table(
            evaluate(test_runs, whisper_fn(real, e2, p2), dict.fromkeys(LEVELS, thr_s))
        )
        report["whisper_best_synth"] = {"variant": best_s, "threshold": thr_s, "test_wa": wa_s}
        text += [
            f"\n## Whisper {best_s}, threshold {thr_s} (chosen on the synthetic benchmark)\n",
            tab_s,
        ]

    # 3. the recipe's pretrained system, re-scored from its saved embeddings (sanity check)
    pre_test, pre_val = args.pretrained, args.pretrained_val
    vmap = {}
    for s, folds in read_index(args.prepared).items():
        for k, f in enumerate(val_folds(len(folds)), 1):
            vmap[(s, f)] = k
    if all(pretrained_sims(pre_test, r) is not None for r in test_runs):
        recipe_thr = {"low": 0.55, "middle": 0.55, "high": 0.6}
        tab_p, wa_p = table(evaluate(test_runs, lambda r: pretrained_sims(pre_test, r), recipe_thr))
        report["pretrained_rescored"] = wa_p
        text += ["\n## Recipe default (pretrained.json) re-scored from its saved embeddings, "
                 "thresholds 0.55 / 0.55 / 0.6\n", tab_p]  # fmt: skip
        # 4. ensemble: shot-level average of the similarities (= cosine of the concatenated
        # L2-normalised vectors), weight and threshold on the real validation folds
        if all(pretrained_sims(pre_val, r, vmap) is not None for r in val_runs):
            ens = {}
            cache_val = {id(r): pretrained_sims(pre_val, r, vmap) for r in val_runs}
            cache_test = {id(r): pretrained_sims(pre_test, r) for r in test_runs}
            thr_p, wa_pv, pl_p, lw_p = choose(curves(val_runs, lambda r: cache_val[id(r)]))
            report["pretrained_val"] = {"threshold": thr_p, "wa": wa_pv, "per_level": pl_p,
                                        "per_level_wa": lw_p}  # fmt: skip
            tab_pt, wa_pt = table(evaluate(test_runs, lambda r: cache_test[id(r)],
                                           dict.fromkeys(LEVELS, thr_p)))  # fmt: skip
            report["pretrained_val"]["test_wa"] = wa_pt
            for ens_variant in dict.fromkeys([best, "pad10/mean"]):
                e3, p3 = ens_variant.split("/")
                wf = whisper_fn(real, e3, p3)
                wv = {id(r): wf(r) for r in val_runs}
                wt = {id(r): wf(r) for r in test_runs}
                for w in WEIGHTS:

                    def mix(r, w=w, ws=(wv | wt)):
                        p = cache_val[id(r)] if id(r) in cache_val else cache_test[id(r)]
                        return w * ws[id(r)] + (1 - w) * p

                    t, wa_v, pl, lw = choose(curves(val_runs, mix))
                    recs_e = evaluate(test_runs, mix, dict.fromkeys(LEVELS, t))
                    ens[f"{ens_variant}@{w}"] = {"threshold": t, "val_wa": wa_v, "per_level": pl,
                        "per_level_wa": lw, "test_wa": float(np.mean([r["wa"] for r in recs_e]))}  # fmt: skip
                    print(
                        "ensemble",
                        ens_variant,
                        w,
                        json.dumps(ens[f"{ens_variant}@{w}"]),
                        flush=True,
                    )
            report["ensemble"] = ens
            bk = max(ens, key=lambda k: ens[k]["val_wa"])
            v4, w4 = bk.split("@")
            e4, p4 = v4.split("/")
            w4f, t4 = float(w4), ens[bk]["threshold"]
            wf = whisper_fn(real, e4, p4)
            tab_e, wa_e = table(evaluate(
                test_runs, lambda r: w4f * wf(r) + (1 - w4f) * cache_test[id(r)],
                dict.fromkeys(LEVELS, t4)))  # fmt: skip
            report["ensemble_best"] = {"variant": bk, "threshold": t4, "test_wa": wa_e}
            text += [f"\n## Ensemble: {w4f} x Whisper {v4} + {1 - w4f:.1f} x pretrained (recipe's "
                     f"fine-tuned networks), threshold {t4} (weight, variant, threshold chosen on "
                     "the real validation folds)\n", tab_e,
                     f"\n## Pretrained alone at the threshold chosen the same way ({thr_p})\n", tab_pt]  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "tables.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def clip_info(bench: Path) -> dict[str, dict[str, Any]]:
    """The generator's record of every clip (background, SNR, ...) by resolved path, from the
    benchmark's ``manifest.json``."""
    man = json.loads((bench / "manifest.json").read_text())
    info = {}
    for c in man["classes"]:
        for f, d in zip(c["files"], c["clips"], strict=True):
            info[str((bench / f).resolve())] = d
    return info


def nearest_known_shots(runs, sims_of, info) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """For every known test clip of ``runs``, its nearest known-class shot under
    ``sims_of(run)`` (``(n_test, n_shots)`` similarities): whether the two share a background,
    whether the shot's class is right, and the clip's generator record (:func:`clip_info`)."""
    same_bg, right, recs = [], [], []
    for r in runs:
        sims = np.where((r.shot_class < len(r.classes))[None], sims_of(r), -np.inf)
        near = sims.argmax(1)
        for i, path in enumerate(r.test_paths):
            if r.y[i] == UNKNOWN:
                continue
            shot = r.shot_paths[near[i]]
            same_bg.append(info[path]["background"] == info[shot]["background"])
            right.append(r.classes[r.shot_class[near[i]]] == r.y[i])
            recs.append(info[path])
    return np.asarray(same_bg), np.asarray(right), recs


def diagnose(args: argparse.Namespace) -> None:
    """Does the nearest shot share the test clip's background (manifest: per-clip background
    and SNR)? Closed-set accuracy by SNR, for Whisper pad10/mean and the recipe's system."""
    bench = args.prepared.parent
    info = clip_info(bench)
    real = Emb(args.out / "embeddings.npz")
    runs = load_runs(args.prepared, "test")
    systems = {
        "whisper pad10/mean": lambda r: (
            real.vectors("pad10", "mean", r.test_paths, r.shot_paths)
            @ real.vectors("pad10", "mean", r.shot_paths, r.shot_paths).T
        ),
        "pretrained (recipe)": lambda r: pretrained_sims(args.pretrained, r),
    }
    for name, fn in systems.items():
        same_bg, right, recs = nearest_known_shots(runs, fn, info)
        snr = np.array([d["snr_db"] for d in recs])
        lo, hi = np.quantile(snr, [1 / 3, 2 / 3])
        bins = {
            f"snr<{lo:.0f}": snr < lo,
            "mid": (snr >= lo) & (snr < hi),
            f"snr>={hi:.0f}": snr >= hi,
        }
        print(f"{name}: nearest known shot has the test clip's background in "
              f"{100 * same_bg.mean():.1f} % (errors: {100 * same_bg[~right].mean():.1f} %, "
              f"right: {100 * same_bg[right].mean():.1f} %); closed-set accuracy "
              + ", ".join(f"{k} {100 * right[m].mean():.1f} %" for k, m in bins.items()))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--bench", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--fg", action="store_true", help="foreground poolings of pad10 (embed_fg)")
    v = sub.add_parser("val-index")
    v.add_argument("--prepared", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score")
    s.add_argument("--out", type=Path, default=Path("exp/alarm_real_whisper"))
    s.add_argument("--prepared", type=Path, default=Path("data/alarm_real/prepared"))
    s.add_argument("--synth-prepared", type=Path,
                   default=Path("data/alarm_bench/prepared"))  # fmt: skip
    s.add_argument("--pretrained", type=Path, default=Path("exp/alarm_real_pretrained"))
    s.add_argument("--pretrained-val", type=Path,
                   default=Path("exp/alarm_real_whisper/pretrained_val"))  # fmt: skip
    d = sub.add_parser("diagnose")
    d.add_argument("--out", type=Path, default=Path("exp/alarm_real_whisper"))
    d.add_argument("--prepared", type=Path, default=Path("data/alarm_real/prepared"))
    d.add_argument("--pretrained", type=Path, default=Path("exp/alarm_real_pretrained"))
    args = p.parse_args(argv)
    if args.cmd == "diagnose":
        diagnose(args)
        return 0
    if args.cmd == "embed":
        (embed_fg if args.fg else embed)(args.bench, args.out)
    elif args.cmd == "val-index":
        val_index(args.prepared, args.out)
    else:
        score(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
