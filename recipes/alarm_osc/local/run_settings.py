#!/usr/bin/env python
"""Few-shot open-set alarm classification on prepared folds (Diss. 6.2, Table 29 protocol).

Thin wiring around :class:`kwsos.tasks.openset.OpenSetClassifier`: read the fold CSVs written by
``data_prep.prepare_alarm_osc`` (``<setting>/fold_NN/{train,test}.csv``, ``index.csv``), compute
the log-Mel clips of every file once, then for every (setting, seed, fold) train a classifier
on the fold's shots (known classes; unwanted classes seen in training as known unknowns) and
score the fold's test clips. One JSON line per run goes to ``<out>/runs.jsonl`` (a rerun skips
the runs already there); ``local/make_table.py`` turns them into the results table.

Metrics (kwsos.metrics): weighted accuracy with beta = 0.5 and ``rejection_term="unknown"``
(mean per-class accuracy on the known clips + fraction of unknown clips rejected: the protocol
behind Diss. Table 29), the same with ``"binary"`` (Diss. Eq. 27), top-1 AUC and EER (Diss.
Eq. 28-29) on the classifier's decision scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kwsos.embeddings.clip import SHIPPED_PRETRAINED
from kwsos.errors import KwsosError
from kwsos.io import atomic_output, read_csv_rows, write_json_atomic
from kwsos.metrics import top1_auc, top1_eer, weighted_accuracy
from kwsos.tasks.openset import OpenSetClassifier, OpenSetConfig

UNKNOWN = "unknown"
LEVELS = ("low", "middle", "high")
log = logging.getLogger("run_settings")


#: Columns of data_prep.prepare_alarm_osc's index.csv and per-fold train.csv / test.csv used here.
INDEX_COLUMNS = ("setting", "shots", "fold", "train", "test")
FOLD_COLUMNS = ("path", "label", "class", "role")


def read_csv(path: str | Path, need: tuple[str, ...] = FOLD_COLUMNS) -> list[dict[str, str]]:
    """Rows of a prepared-fold CSV (a one-line KwsosError if it is missing or lacks a column)."""
    return read_csv_rows(path, need, what="prepared-fold file (data_prep.prepare_alarm_osc)")


def parse_thresholds(text: str) -> dict[str, float]:
    """``"0.7"`` (all levels) or ``"low=0.6,middle=0.65,high=0.75"``."""
    if "=" not in text:
        return dict.fromkeys(LEVELS, float(text))
    out = {}
    for part in text.split(","):
        key, value = part.split("=")
        if key.strip() not in LEVELS:
            raise SystemExit(f"error: unknown openness level {key!r} in --thresholds")
        out[key.strip()] = float(value)
    missing = set(LEVELS) - set(out)
    if missing:
        raise SystemExit(f"error: --thresholds lacks {', '.join(sorted(missing))}")
    return out


def parse_epochs(text: str) -> dict[int, int]:
    """``""`` (the config's rule), or ``"1=300,2=150,4=75"``: epochs by number of shots."""
    out = {}
    for part in filter(None, text.split(",")):
        shots, _, epochs = part.partition("=")
        out[int(shots)] = int(epochs)
    return out


def pick_folds(n_folds: int, seed_index: int, n_seeds: int, mode: str) -> list[int]:
    """Folds run with the ``seed_index``-th seed.

    ``spread``: one fold per seed, spread evenly over the setting's folds (seed i of n takes
    fold ``1 + i * n_folds // n``), so that 5 seeds see 5 different shot draws; ``all``: every
    fold (the paper's protocol: 40 / 20 / 10 folds per trial).
    """
    if mode == "all":
        return list(range(1, n_folds + 1))
    return [1 + (seed_index * n_folds) // n_seeds]


class FeatureCache:
    """Log-Mel clips of every file, computed once per frontend configuration."""

    def __init__(self, cache_dir: Path, config: OpenSetConfig) -> None:
        # the same key as before the configs had sections: existing caches stay valid
        names = ("clip_s", "n_mels", "win_samples", "hop_samples")
        front = {k: getattr(config.frontend, k) for k in names}
        key = hashlib.sha1(json.dumps(front, sort_keys=True).encode()).hexdigest()[:10]
        self.path = cache_dir / f"features_{key}.npz"
        self.clf = OpenSetClassifier(config)
        self.index: dict[str, int] = {}
        self.data = np.zeros((0, 0, 0), np.float32)
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                self.data = z["features"]
                self.index = {p: i for i, p in enumerate(z["paths"].tolist())}

    def ensure(self, paths: list[str]) -> None:
        todo = sorted(set(paths) - set(self.index))
        if not todo:
            return
        t0 = time.perf_counter()
        new = self.clf.features(todo)
        self.data = new if not len(self.index) else np.concatenate([self.data, new])
        self.index.update({p: len(self.index) + i for i, p in enumerate(todo)})
        ordered = sorted(self.index, key=self.index.__getitem__)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.path) as tmp:
            np.savez(tmp, features=self.data, paths=np.asarray(ordered))
        log.info(
            "log-Mel of %d clips in %.1f s -> %s", len(todo), time.perf_counter() - t0, self.path
        )

    def get(self, paths: list[str]) -> np.ndarray:
        return self.data[[self.index[p] for p in paths]]


_CACHE: FeatureCache | None = None  # shared with forked workers


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(job["threads"])
    assert _CACHE is not None
    train_rows, test_rows = read_csv(job["train"]), read_csv(job["test"])
    known: dict[str, list[str]] = defaultdict(list)
    unknown: dict[str, list[str]] = defaultdict(list)
    for r in train_rows:
        (known[r["label"]] if r["role"] == "known" else unknown[r["class"]]).append(r["path"])
    config = OpenSetConfig.from_dict(job["config"])
    clf = OpenSetClassifier(config)
    t0 = time.perf_counter()
    clf.fit_features(
        {k: _CACHE.get(v) for k, v in known.items()},
        {k: _CACHE.get(v) for k, v in unknown.items()},
    )
    t_fit = time.perf_counter() - t0
    pred = clf.decide(clf.embed_features(_CACHE.get([r["path"] for r in test_rows])))
    t_all = time.perf_counter() - t0
    y = np.asarray([r["label"] for r in test_rows], dtype=object)
    is_unknown = y == UNKNOWN
    record = {
        "setting": job["setting"],
        "shots": job["shots"],
        "openness": job["openness"],
        "seed": config.training.seed,
        "fold": job["fold"],
        "threshold": clf.threshold_,
        "n_train": len(train_rows),
        "n_test": len(test_rows),
        "wa": weighted_accuracy(y, pred.labels, unknown_label=UNKNOWN, rejection_term="unknown"),
        "wa_binary": weighted_accuracy(y, pred.labels, unknown_label=UNKNOWN),
        "acc_known": float(np.mean(pred.labels[~is_unknown] == y[~is_unknown])),
        "acc_closed": float(np.mean(pred.top_class[~is_unknown] == y[~is_unknown])),
        "acc_unknown": float(np.mean(pred.labels[is_unknown] == UNKNOWN)),
        "top1_auc": top1_auc(y, pred.top_class, pred.decision_scores, unknown_label=UNKNOWN),
        "top1_eer": top1_eer(y, pred.top_class, pred.decision_scores, unknown_label=UNKNOWN),
        "epochs": clf.train_log_["epochs_run"],
        "final_loss": (clf.train_log_["losses"] or [float("nan")])[-1],
        "final_scale": (clf.train_log_.get("scales") or [float("nan")])[-1],
        "fit_s": round(t_fit, 2),
        "run_s": round(t_all, 2),
    }
    if job.get("emb_dir"):
        _save_embeddings(clf, job, config.training.seed, y, test_rows)
    if job["scores_dir"]:
        np.savez_compressed(
            Path(job["scores_dir"])
            / f"{job['setting']}_seed{config.training.seed}_fold{job['fold']:02d}.npz",
            y=y.astype(str),
            top_class=pred.top_class.astype(str),
            scores=pred.scores,
            unknown_similarity=pred.unknown_similarity,
            role=np.asarray([r["role"] for r in test_rows]),
        )
    return record


#: Speed factors of the shot embeddings kept by ``--save-embeddings`` (backend ablations).
EMB_SPEEDS = (0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12)


def _save_embeddings(
    clf: OpenSetClassifier, job: dict[str, Any], seed: int, y: np.ndarray, test_rows: list
) -> None:
    """Test-clip and shot embeddings (the shots at every ``EMB_SPEEDS`` factor) of one run, for
    backend ablations without retraining (``local/backend_ablation.py``)."""
    train_rows = read_csv(job["train"])
    shots = _CACHE.get([r["path"] for r in train_rows])
    names = clf.classes_ + clf.unknown_classes_
    label = [r["label"] if r["role"] == "known" else r["class"] for r in train_rows]
    by_speed = [
        clf.embed_features(shots if r == 1.0 else clf.change_speed(shots, r)) for r in EMB_SPEEDS
    ]
    np.savez_compressed(
        Path(job["emb_dir"]) / f"{job['setting']}_seed{seed}_fold{job['fold']:02d}.npz",
        test=clf.embed_features(_CACHE.get([r["path"] for r in test_rows])),
        y=y.astype(str),
        shots=np.stack(by_speed),
        speeds=np.asarray(EMB_SPEEDS),
        shot_class=np.asarray([names.index(n) for n in label]),
        classes=np.asarray(clf.classes_),
        unknown_classes=np.asarray(clf.unknown_classes_),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prepared", type=Path, required=True, help="folder with index.csv")
    p.add_argument("--out", type=Path, required=True, help="results folder")
    p.add_argument("--settings", default="", help="comma-separated (default: all in index.csv)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--folds", choices=("spread", "all"), default="spread")
    p.add_argument("--config", type=Path, help="JSON file of OpenSetConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override one OpenSetConfig field, e.g. --set epochs_per_shot=25")  # fmt: skip
    p.add_argument("--thresholds", default=None,
                   help="similarity threshold, one value or per openness level (default: the "
                   "config file's recipe.thresholds, else 0.6 / 0.65 / 0.75 as Diss. 6.2.2)")  # fmt: skip
    p.add_argument("--epochs", default=None,
                   help="epochs by shots, e.g. 1=300,2=150,4=75 (default: the config file's "
                   "recipe.epochs, else the OpenSetConfig rule)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--save-scores", action="store_true", help="keep per-clip scores (npz)")
    p.add_argument("--save-embeddings", action="store_true",
                   help="keep test and (speed-changed) shot embeddings for backend ablations")  # fmt: skip
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    options: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    # recipe-level settings of the config file (not OpenSetConfig fields)
    recipe = options.pop("recipe", {})
    if args.thresholds is None:
        args.thresholds = recipe.get("thresholds", "low=0.6,middle=0.65,high=0.75")
    if args.epochs is None:
        args.epochs = recipe.get("epochs", "")
    def resolve(init: str) -> str:
        # a pretrained network named in a config file: relative to that file
        if init not in SHIPPED_PRETRAINED and args.config and not Path(init).is_absolute():
            return str((args.config.parent / init).resolve())
        return init

    init = options.get("init")
    if isinstance(init, list):  # several priors (ClipModelConfig.init)
        options["init"] = [resolve(str(p)) for p in init]
    elif init:
        options["init"] = resolve(str(init))
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    options.setdefault("device", "cpu")
    base = OpenSetConfig.from_flat(options)  # flat options, as in the conf files and --set
    thresholds = parse_thresholds(args.thresholds)
    epochs_by_shots = parse_epochs(args.epochs)
    try:
        index = read_csv(args.prepared / "index.csv", INDEX_COLUMNS)
    except KwsosError as exc:
        raise SystemExit(f"error: {exc}") from None
    wanted = [s for s in args.settings.split(",") if s] or list(
        dict.fromkeys(r["setting"] for r in index)
    )
    seeds = [int(s) for s in args.seeds.split(",") if s]
    by_setting: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in index:
        by_setting[r["setting"]].append(r)
    missing = [s for s in wanted if s not in by_setting]
    if missing:
        raise SystemExit(f"error: settings not in {args.prepared}/index.csv: {', '.join(missing)}")

    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / "runs.jsonl"
    done = set()
    if runs_path.is_file():
        for line in runs_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["setting"], r["seed"], r["fold"]))
    scores_dir = args.out / "scores" if args.save_scores else None
    if scores_dir:
        scores_dir.mkdir(exist_ok=True)
    emb_dir = args.out / "embeddings" if args.save_embeddings else None
    if emb_dir:
        emb_dir.mkdir(exist_ok=True)
    jobs = []
    for setting in wanted:
        rows = {int(r["fold"]): r for r in by_setting[setting]}
        level = setting.split("_")[-1]
        for i, seed in enumerate(seeds):
            for fold in pick_folds(len(rows), i, len(seeds), args.folds):
                if (setting, seed, fold) in done:
                    continue
                r = rows[fold]
                cfg = base.replace_flat(
                    seed=seed, threshold=thresholds[level], threads=args.threads
                )
                if int(r["shots"]) in epochs_by_shots:
                    cfg = cfg.replace_flat(epochs=epochs_by_shots[int(r["shots"])])
                jobs.append({
                    "setting": setting, "shots": int(r["shots"]), "openness": level,
                    "fold": fold, "train": r["train"], "test": r["test"],
                    "config": cfg.to_dict(), "threads": args.threads,
                    "scores_dir": str(scores_dir) if scores_dir else "",
                    "emb_dir": str(emb_dir) if emb_dir else "",
                })  # fmt: skip
    # biggest runs first, so that parallel workers finish together
    jobs.sort(key=lambda j: -j["shots"])
    log.info("%d runs to do (%d already in %s)", len(jobs), len(done), runs_path)
    if not jobs:
        return 0

    global _CACHE
    _CACHE = FeatureCache(args.out, base)
    try:  # every fold file is read (and checked) here, before any run starts
        paths = [r["path"] for j in jobs for f in (j["train"], j["test"]) for r in read_csv(f)]
    except KwsosError as exc:
        raise SystemExit(f"error: {exc}") from None
    _CACHE.ensure(paths)
    write_json_atomic(
        args.out / "config.json",
        {
            "config": base.to_dict(),
            "thresholds": thresholds,
            "epochs_by_shots": epochs_by_shots,
            "argv": sys.argv,
        },
        indent=1,
    )
    t0 = time.perf_counter()
    with open(runs_path, "a", encoding="utf-8") as out:
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                results = pool.map(run_one, jobs)
                for k, rec in enumerate(results, 1):
                    _report(out, rec, k, len(jobs), t0)
        else:
            for k, job in enumerate(jobs, 1):
                _report(out, run_one(job), k, len(jobs), t0)
    return 0


def _report(out: Any, rec: dict[str, Any], k: int, n: int, t0: float) -> None:
    out.write(json.dumps(rec) + "\n")
    out.flush()
    log.info(
        "[%d/%d %.0f s] %s seed %d fold %d: WA %.2f %%  known %.1f  unknown %.1f  AUC %.3f  (%.1f s)",
        k, n, time.perf_counter() - t0, rec["setting"], rec["seed"], rec["fold"],
        100 * rec["wa"], 100 * rec["acc_known"], 100 * rec["acc_unknown"], rec["top1_auc"],
        rec["run_s"],
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
