"""Keyword-spotting experiments in the KWS-DailyTalk layout: the Diss. Table 31 comparison.

Recipe code of ``recipes/kws_tts`` (and ``recipes/kws_dailytalk``, which runs its stages): the
``local/*.py`` scripts import it as ``experiment``; it only wires the library together.

One *system* = a feature choice (HFCC, L_kw, TACos, sliding window; learned ones with or
without reversed segments) and its training schedule. :func:`run_system` runs the protocol of
Diss. 6.3.6 for one system on one dataset:

1. enroll every keyword from its shots (learned features: train the network; timed),
2. tune the threshold on the validation split, globally and per keyword,
3. detect in the test split with both threshold sets (the global pass is timed: real-time
   factor = audio duration / wall time),
4. score (sed_eval event-based micro F1, 0.2 s collars), write the detections (sed_eval CSV),
   ``result.json`` and two PNGs (cost timeline of one test file, per-keyword F1 bars).

:func:`results_markdown` turns the ``result.json`` of several systems into the Table 31 form.
The thresholds are chosen on validation only; the test split is used once per system.

Dataset layout (``data_prep.make_kws_tts`` and ``data_prep.prepare_kws_dailytalk`` write it)::

    train_manifest.csv        event_label,file,...   (one row per shot)
    {validation,test}_manifest.csv      file,...
    {validation,test}_reference.csv     filename,onset,offset,event_label
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kwsos import __version__
from kwsos.errors import KwsosError
from kwsos.events import Event, format_events, read_events
from kwsos.io import read_csv_rows, write_json_atomic, write_text_atomic
from kwsos.metrics import EventScores, event_based_scores, event_match_counts, file_key, micro_f1

__all__ = [
    "SYSTEMS",
    "KwsDataset",
    "KwsSystem",
    "analyse_system",
    "cost_separation",
    "load_dataset",
    "read_manifest",
    "results_markdown",
    "scene_markdown",
    "run_system",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KwsSystem:
    """One row group of Table 31.

    Attributes
    ----------
    name
        Identifier (folder name under the experiment directory).
    features
        ``hfcc``, ``mfcc``, ``tacos``, ``lkw``, ``sliding``, ``whisper`` or ``whisper-tacos``
        (``kwsos.tasks.kws.SpotterConfig.for_features``).
    reversed_segments
        Learned features: train with a time-reversed class per keyword (Diss. 6.3.5).
    feature_options
        Extractor field overrides (e.g. ``{"mode": "exact"}``).
    training
        ``EmbeddingTrainingConfig`` field changes; ``train`` inside it: ``TrainConfig`` changes.
    """

    name: str
    features: str
    reversed_segments: bool = True
    feature_options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KwsSystem:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise KwsosError(f"unknown system fields {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


#: The systems of Diss. Table 31 (learned ones with the library's default schedule).
SYSTEMS: dict[str, KwsSystem] = {
    s.name: s
    for s in [
        KwsSystem("hfcc", "hfcc", reversed_segments=False),
        KwsSystem("lkw", "lkw", True),
        KwsSystem("lkw_norev", "lkw", False),
        KwsSystem("tacos", "tacos", True),
        KwsSystem("tacos_norev", "tacos", False),
        KwsSystem("sliding", "sliding", True),
        KwsSystem("sliding_norev", "sliding", False),
        KwsSystem("whisper", "whisper", reversed_segments=False),
        KwsSystem("whisper_tacos", "whisper-tacos", True),
    ]
}

LABELS = {
    "hfcc": "HFCC-DTW",
    "mfcc": "MFCC-DTW",
    "lkw": "L_kw (2D AdaCos) + DTW",
    "tacos": "TACos + DTW",
    "sliding": "sliding window (AdaCos)",
    "whisper": "Whisper encoder frames + DTW",
    "whisper-tacos": "Whisper encoder + TACos head + DTW",
}


@dataclass
class KwsDataset:
    root: Path
    shots: dict[str, list[Path]]
    files: dict[str, list[Path]]  # split -> recordings
    reference: dict[str, list[Event]]  # split -> events
    #: split -> recording base name -> scene label (the voice in KWS-TTS; from the manifests'
    #: optional ``scene_label`` column): per-voice scores in :func:`analyse_system`
    scenes: dict[str, dict[str, str]] = field(default_factory=dict)


def read_manifest(path: Path, need: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a manifest CSV that must name the columns ``need`` (else a one-line KwsosError)."""
    if not path.is_file():  # the likely mistake: a folder that is not a dataset at all
        raise KwsosError(f"missing {path} (is this a KWS-DailyTalk-layout dataset?)")
    return read_csv_rows(path, need, what="manifest")


def load_dataset(root: str | Path, splits: Sequence[str] = ("validation", "test")) -> KwsDataset:
    """Read a dataset in the KWS-DailyTalk layout (see module docstring)."""
    root = Path(root)
    shots: dict[str, list[Path]] = {}
    for row in read_manifest(root / "train_manifest.csv", ["event_label", "file"]):
        shots.setdefault(row["event_label"], []).append(root / row["file"])
    if not shots:
        raise KwsosError(f"{root / 'train_manifest.csv'} lists no shots")
    files, reference, scenes = {}, {}, {}
    for split in splits:
        rows = read_manifest(root / f"{split}_manifest.csv", ["file"])
        files[split] = [root / r["file"] for r in rows]
        scenes[split] = {
            file_key(r["file"]): r["scene_label"] for r in rows if r.get("scene_label")
        }
        if not files[split]:
            raise KwsosError(f"{root / f'{split}_manifest.csv'} lists no recordings")
        reference[split] = read_events(root / f"{split}_reference.csv")
    return KwsDataset(root, shots, files, reference, scenes)


def _duration_s(paths: Sequence[Path]) -> float:
    from kwsos.audio import audio_info

    return sum(audio_info(p).duration_s for p in paths)


def _machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _scores(s: EventScores) -> dict[str, Any]:
    return {
        "f1": round(100 * s.f1, 2),
        "precision": round(100 * s.precision, 2),
        "recall": round(100 * s.recall, 2),
        "n_ref": s.n_ref,
        "n_est": s.n_est,
        "per_label_f1": {k: round(100 * v.f1, 2) for k, v in s.per_label.items()},
    }


def build_spotter(system: KwsSystem):
    """An empty :class:`~kwsos.tasks.kws.KeywordSpotter` configured for ``system``."""
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    # for_features: `sliding` also selects the sliding-window detector
    sp = KeywordSpotter(SpotterConfig.for_features(system.features, **system.feature_options))
    if sp.learned:
        sp.set_training(reversed_segments=system.reversed_segments, **system.training)
    return sp


def run_system(
    data: KwsDataset,
    system: KwsSystem,
    out: str | Path,
    *,
    plot_file: str | None = None,
) -> dict[str, Any]:
    """Enroll, tune (global and per keyword) on validation, detect and score on test.

    Writes ``out/bank`` (global threshold + per-keyword thresholds), ``out/result.json``,
    ``out/test_detections_{global,per_keyword}.csv``, ``out/timeline.png`` (``plot_file`` or the
    first test file with the most keyword events) and ``out/keyword_f1.png``. Returns the result.
    Progress goes to this module's logger (INFO; training at most once a minute).
    """
    from kwsos.plots import plot_cost_timeline, plot_keyword_f1

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "system": system.name,
        "label": LABELS.get(system.features, system.features),
        "config": asdict(system),
        "data": str(data.root),
        "kwsos": __version__,
        "machine": _machine(),
        "load_start": _load(),
    }
    try:
        import torch

        result["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass

    # 1. enrollment (+ training for learned features)
    t0 = time.perf_counter()
    sp = build_spotter(system)
    for kw, paths in data.shots.items():
        sp.enroll(kw, paths)
    if sp.learned:
        last = [0.0]

        def hook(stage: str, completed: int, total: int | None = None, **kw: Any) -> None:
            if time.perf_counter() - last[0] > 60:
                last[0] = time.perf_counter()
                loss = kw.get("loss")
                log.info("  [%s] epoch %d/%s loss %.4f", system.name, completed, total, loss)

        tlog = sp.train_features(hook=hook)
        result["training"] = {
            k: v for k, v in tlog.to_dict().items() if k not in ("losses", "scales")
        } | {"final_loss": round(tlog.losses[-1], 5) if tlog.losses else None}
    sp.fit()
    result["enroll_s"] = round(time.perf_counter() - t0, 1)
    result["n_keywords"] = len(sp.keywords)
    result["n_shots"] = sum(sp.n_shots(k) for k in sp.keywords)
    log.info(
        "  [%s] enrolled %d keywords in %s s", system.name, result["n_keywords"], result["enroll_s"]
    )

    # 2. thresholds on validation
    t0 = time.perf_counter()
    val = data.files["validation"]
    tuned = sp.tune(val, data.reference["validation"], per_keyword=True)
    assert tuned.global_scores is not None
    result["tune_s"] = round(time.perf_counter() - t0, 1)
    result["threshold"] = round(tuned.threshold, 5)
    result["keyword_thresholds"] = {k: round(v, 5) for k, v in tuned.keyword_thresholds.items()}
    result["validation"] = {
        "global": _scores(tuned.global_scores),
        "per_keyword": _scores(tuned.scores),
    }
    sp.save(out / "bank")
    log.info(
        "  [%s] validation F1 %.1f (global), %.1f (per keyword)",
        system.name,
        100 * tuned.global_scores.f1,
        100 * tuned.scores.f1,
    )

    # 3. test: global thresholds timed (real-time factor), then per-keyword thresholds
    test, test_ref = data.files["test"], data.reference["test"]
    duration = _duration_s(test)
    keyword_thr = sp.config.decision.keyword_thresholds
    sp.set_threshold(tuned.threshold)
    t0 = time.perf_counter()
    est_global: list[Event] = []
    for rec in test:
        est_global += sp.detect(rec)
    detect_s = time.perf_counter() - t0
    sp.set_threshold(tuned.threshold, keyword_thr)
    est_kw: list[Event] = []
    for rec in test:
        est_kw += sp.detect(rec)
    files = [str(f) for f in test]
    test_global = event_based_scores(test_ref, est_global, files=files)
    test_kw = event_based_scores(test_ref, est_kw, files=files)
    result["test"] = {"global": _scores(test_global), "per_keyword": _scores(test_kw)}
    result["test_audio_s"] = round(duration, 1)
    result["detect_s"] = round(detect_s, 2)
    result["realtime_factor"] = round(duration / detect_s, 1)
    result["load_end"] = _load()
    write_text_atomic(out / "test_detections_global.csv", format_events(est_global, "csv"))
    write_text_atomic(out / "test_detections_per_keyword.csv", format_events(est_kw, "csv"))
    log.info(
        "  [%s] test F1 %.1f (global), %.1f (per keyword); %sx real time",
        system.name,
        100 * test_global.f1,
        100 * test_kw.f1,
        result["realtime_factor"],
    )

    # 4. plots
    by_file: dict[str, list[Event]] = {}
    for e in test_ref:
        by_file.setdefault(file_key(e.filename), []).append(e)
    if plot_file is None:
        plot_file = max(
            test, key=lambda p: len(by_file.get(p.name, [])) * 10_000 - test.index(p)
        ).name
    rec = next((p for p in test if p.name == plot_file), None)
    if rec is None:
        raise KwsosError(f"plot file {plot_file} is not in the test split")
    times, costs = sp.cost_curves(rec)
    plot_cost_timeline(
        times,
        costs,
        [str(k) for k in sp.detector.keywords_],
        sp.thresholds,
        out / "timeline.png",
        reference=by_file.get(rec.name, []),
        detections=[e for e in est_kw if e.filename == rec.name],
        title=f"{system.name}: {rec.name} (per-keyword thresholds)",
    )
    plot_keyword_f1(
        {
            "global threshold": {k: v.f1 for k, v in test_global.per_label.items()},
            "per-keyword thresholds": {k: v.f1 for k, v in test_kw.per_label.items()},
        },
        out / "keyword_f1.png",
        title=f"{system.name}: test F1 per keyword",
    )
    result["plot_file"] = rec.name
    write_json_atomic(out / "result.json", result)
    return result


def results_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """The Table 31 form: one row per system and threshold type, F1 / P / R (%) on validation
    and test, plus enrollment time, training steps, detection real-time factor and (when
    :func:`analyse_system` ran: ``r["analysis"]``) the test cost-separation AUC."""
    head = (
        "| system | reversed | thresholds | val F1 | val P | val R | test F1 | test P | test R "
        "| enroll (s) | steps | detect (x RT) | cost AUC |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        cfg = r["config"]
        learned = cfg["features"] not in ("hfcc", "mfcc")
        rev = ("yes" if cfg["reversed_segments"] else "no") if learned else "-"
        steps = r.get("training", {}).get("steps", "-") if learned else "-"
        auc = f"{100 * r['analysis']['auc']:.1f}" if "analysis" in r else "-"
        for kind, name in (("global", "global"), ("per_keyword", "per keyword")):
            v, t = r["validation"][kind], r["test"][kind]
            lines.append(
                f"| {r['label']} (`{r['system']}`) | {rev} | {name} | {v['f1']:.1f} | "
                f"{v['precision']:.1f} | {v['recall']:.1f} | **{t['f1']:.1f}** | "
                f"{t['precision']:.1f} | {t['recall']:.1f} | {r['enroll_s']:.0f} | {steps} | "
                f"{r['realtime_factor']:.0f} | {auc} |"
            )
    return head + "\n".join(lines) + "\n"


def scene_markdown(results: Sequence[Mapping[str, Any]], kind: str = "global") -> str:
    """Test F1 per scene label (voice) and system (``r["analysis"]["per_scene"]``, thresholds
    ``kind``): one row per scene, one column per system; empty when no system has them."""
    have = [r for r in results if r.get("analysis", {}).get("per_scene")]
    if not have:
        return ""
    scenes = sorted({sc for r in have for sc in r["analysis"]["per_scene"]})
    head = "| voice | events | " + " | ".join(f"`{r['system']}`" for r in have) + " |\n"
    head += "|---|---:|" + "---:|" * len(have) + "\n"
    lines = []
    for sc in scenes:
        rows = [r["analysis"]["per_scene"].get(sc, {}) for r in have]
        n = next((x["events"] for x in rows if x), 0)
        cells = [f"{x[kind]['f1']:.1f}" if kind in x else "-" for x in rows]
        lines.append(f"| {sc} | {n} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def cost_separation(
    spotter: Any,
    recordings: Sequence[str | Path],
    reference: Sequence[Event],
    *,
    before_s: float = 0.1,
    after_s: float = 0.2,
    min_distance_s: float = 0.1,
) -> dict[str, Any]:
    """How well a system's match cost separates keyword occurrences from everything else.

    From each keyword's cost curve (:meth:`KeywordSpotter.cost_curves`) in each recording:

    * **target** cost of a reference event: the lowest cost of its keyword within
      ``[onset - before_s, offset + after_s]`` (the DTW cost sits at the match's end frame);
    * **impostor** costs: the local minima (over +-``min_distance_s``) of every keyword's curve
      outside that keyword's reference events (the same window) - other words, near-words,
      noise, and the other keywords' occurrences.

    A threshold detects a target when its cost is below it and fires on every impostor below
    it, so the overlap of the two distributions bounds what any threshold can reach. Returns
    ``target`` / ``impostor`` cost arrays, the keyword of each, and ``auc`` = P(target cost <
    impostor cost), threshold-free.
    """
    import numpy as np
    from scipy.ndimage import minimum_filter1d

    from kwsos.metrics import roc_auc

    by_file: dict[str, list[Event]] = {}
    for e in reference:
        by_file.setdefault(file_key(e.filename), []).append(e)
    target, target_kw, impostor, impostor_kw = [], [], [], []
    for rec in recordings:
        times, costs = spotter.cost_curves(rec)
        dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.01
        size = 2 * max(1, int(round(min_distance_s / dt))) + 1
        events = by_file.get(file_key(str(rec)), [])
        for k, kw in enumerate(spotter.detector.keywords_):
            curve = costs[k]
            inside = np.zeros(len(times), bool)
            for e in events:
                if e.label != kw:
                    continue
                win = (times >= e.onset - before_s) & (times <= e.offset + after_s)
                inside |= win
                target.append(float(curve[win].min()) if win.any() else np.inf)
                target_kw.append(str(kw))
            finite = np.where(np.isfinite(curve), curve, np.inf)
            is_min = (finite == minimum_filter1d(finite, size, mode="nearest")) & np.isfinite(curve)
            sel = is_min & ~inside
            impostor.extend(curve[sel].tolist())
            impostor_kw.extend([str(kw)] * int(sel.sum()))
    t = np.array(target, np.float64)
    imp = np.array(impostor, np.float64)
    ok = np.isfinite(t)
    auc = (
        roc_auc(np.r_[np.ones(ok.sum()), np.zeros(len(imp))], -np.r_[t[ok], imp])
        if ok.any() and len(imp)
        else float("nan")
    )
    return {
        "target": t,
        "target_keyword": target_kw,
        "impostor": imp,
        "impostor_keyword": impostor_kw,
        "auc": float(auc),
    }


def _per_scene_scores(data: KwsDataset, split: str, out: Path) -> dict[str, dict[str, Any]]:
    """Micro F1 / precision / recall per scene label (voice) of the saved detections of
    :func:`run_system` with the global and the per-keyword thresholds (test split only)."""
    scenes = data.scenes.get(split, {})
    if not scenes or split != "test":
        return {}
    est = {
        kind: read_events(out / f"test_detections_{kind}.csv")
        for kind in ("global", "per_keyword")
        if (out / f"test_detections_{kind}.csv").is_file()
    }
    res: dict[str, dict[str, Any]] = {}
    for scene in sorted(set(scenes.values())):
        files = [f for f, sc in scenes.items() if sc == scene]
        keys = set(files)
        row: dict[str, Any] = {
            "files": len(files),
            "events": sum(file_key(e.filename) in keys for e in data.reference[split]),
        }
        for kind, events in est.items():
            f1, p, r = micro_f1(event_match_counts(data.reference[split], events, files=files))
            row[kind] = {
                "f1": round(100 * f1, 2),
                "precision": round(100 * p, 2),
                "recall": round(100 * r, 2),
            }
        res[scene] = row
    return res


def analyse_system(data: KwsDataset, out: str | Path, *, split: str = "test") -> dict[str, Any]:
    """Cost separation of a finished :func:`run_system` (its saved bank) on ``split``: writes
    ``out/separation.png`` and ``out/analysis.json`` (AUC, per-keyword AUC, quantiles)."""
    import numpy as np

    from kwsos.metrics import roc_auc
    from kwsos.plots import plot_cost_histogram
    from kwsos.tasks.kws import KeywordSpotter

    out = Path(out)
    sp = KeywordSpotter.load(out / "bank")
    sep = cost_separation(sp, data.files[split], data.reference[split])
    per_kw = {}
    imp_kw = np.array(sep["impostor_keyword"], dtype=object)
    tgt_kw = np.array(sep["target_keyword"], dtype=object)
    for kw in sp.keywords:
        t = sep["target"][(tgt_kw == kw) & np.isfinite(sep["target"])]
        i = sep["impostor"][imp_kw == kw]
        if len(t) and len(i):
            per_kw[kw] = round(
                float(roc_auc(np.r_[np.ones(len(t)), np.zeros(len(i))], -np.r_[t, i])), 4
            )
    thr = sp.config.decision.threshold
    res = {
        "split": split,
        "auc": round(sep["auc"], 4),
        "per_keyword_auc": per_kw,
        "per_scene": _per_scene_scores(data, split, out),
        "n_target": int(len(sep["target"])),
        "n_impostor": int(len(sep["impostor"])),
        "target_below_threshold": round(float(np.mean(sep["target"] <= thr)), 4),
        "impostors_below_threshold": int(np.sum(sep["impostor"] <= thr)),
        "threshold": thr,
    }
    plot_cost_histogram(
        sep["target"],
        sep["impostor"],
        out / "separation.png",
        threshold=thr,
        title=f"{out.name}: {split} match costs, AUC {100 * sep['auc']:.1f} %",
    )
    write_json_atomic(out / "analysis.json", res)
    return res
