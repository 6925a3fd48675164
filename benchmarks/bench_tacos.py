"""TACos benchmarks: (c) enrollment schedule vs F1 and time, (d) inference paths exact/hop/conv.

Data: the KWS-TTS benchmark (15 keywords x 5 shots, ~10 min validation and test), built by

    python -m data_prep.make_kws_tts --out data/kws_tts --seed 0

(c) Enrollment schedule (also on the bundled demo with --demo): train the embedding network from the 75 shots with several epoch
budgets, tune the global threshold on the validation split, report validation F1 (the basis of
any choice) and test F1, and the wall time of training. The default schedule of `kwsos enroll`
must train 15 keywords x 5 shots in <= 10 minutes on 2 CPU cores.

    python benchmarks/bench_tacos.py enroll --epochs 10 20 40 --out benchmarks/out/tacos_enroll.json

(d) Inference: one trained bank, the test split concatenated into one recording of >= 10 min,
`exact` (16 segments per frame, the paper's pipeline, the reference), `hop` (segments every
4 frames) and `conv` (one convolutional pass) each run in a fresh process (peak RSS from the
kernel), then scored against the reference and against the exact path's detections.

    python benchmarks/bench_tacos.py detect --bank benchmarks/out/tacos_bank --out benchmarks/out/tacos_detect.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_detect_long import cpu_model, measure  # noqa: E402 - sibling script (benchmarks/)

from kwsos.io import write_json_atomic  # noqa: E402 - after the path set-up above


def load_split(data: Path, split: str):
    from kwsos.events import read_events
    from kwsos.io import read_csv_rows

    rows = read_csv_rows(data / f"{split}_manifest.csv", ["file"], what="manifest")
    files = [data / row["file"] for row in rows]
    ref = read_events(data / f"{split}_reference.csv")
    return files, ref


def load_shots(data: Path) -> dict[str, list[Path]]:
    from kwsos.io import read_csv_rows

    shots: dict[str, list[Path]] = {}
    rows = read_csv_rows(data / "train_manifest.csv", ["event_label", "file"], what="manifest")
    for row in rows:
        shots.setdefault(row["event_label"], []).append(data / row["file"])
    return shots


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu_model()}, nproc {os.cpu_count()}, load {load}"


def build_spotter(
    shots,
    features: str,
    epochs: int | None,
    *,
    reversed_segments=True,
    seed=0,
    max_minutes=None,
    mode=None,
    noise_p=0.0,
    gain_db=0.0,
    freq_warp=0.0,
    input_norm="none",
    input_norm_frames=100,
    precision=None,
):
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    opts = {"mode": mode} if mode else {}
    learned_opts = {}
    if features not in ("hfcc", "mfcc"):
        learned_opts = {"input_norm": input_norm, "input_norm_frames": input_norm_frames}
        if precision:
            learned_opts["precision"] = precision
    sp = KeywordSpotter(SpotterConfig.for_features(features, **opts, **learned_opts))
    if sp.learned:
        train = {"seed": seed}
        if precision:
            train["precision"] = precision
        if max_minutes is not None:
            train["max_minutes"] = max_minutes
        if epochs:  # 0 / None: the default schedule (step budget)
            train["epochs"] = epochs
            train["max_steps"] = None
        # the extractor's input_norm must reach the training set too (set both)
        sp.set_training(
            reversed_segments=reversed_segments,
            noise_p=noise_p,
            gain_db=gain_db,
            freq_warp=freq_warp,
            input_norm=input_norm,
            input_norm_frames=input_norm_frames,
            train=train,
        )
    for kw, paths in shots.items():
        sp.enroll(kw, paths)
    t = time.perf_counter()
    tlog = sp.train_features() if sp.learned else None
    return sp, time.perf_counter() - t, tlog


def load_demo() -> tuple[dict[str, list[Path]], list[Path], list, list[Path], list]:
    """The bundled demo: 4 keywords x 5 shots, validation.flac (tuning) and long.flac (test)."""
    from kwsos.events import read_events

    demo = ROOT / "kwsos" / "data" / "demo"
    shots = {
        d.name.replace("_", " "): sorted(d.glob("*.wav"))
        for d in sorted((demo / "shots").iterdir())
        if d.is_dir()
    }
    return (
        shots,
        [demo / "validation.flac"],
        read_events(demo / "validation.csv"),
        [demo / "long.flac"],
        read_events(demo / "long.csv"),
    )


def cmd_enroll(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.demo:
        shots, val, val_ref, test, test_ref = load_demo()
    else:
        shots = load_shots(args.data)
        val, val_ref = load_split(args.data, "validation")
        test, test_ref = load_split(args.data, "test")
    rows = []
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}", flush=True)
    for epochs in args.epochs:
        sp, train_s, tlog = build_spotter(
            shots,
            args.features,
            epochs,
            reversed_segments=not args.no_reversed,
            seed=args.seed,
            max_minutes=args.max_minutes,
            mode=args.mode,
            noise_p=args.noise_p,
            gain_db=args.gain_db,
            freq_warp=args.freq_warp,
            input_norm=args.input_norm,
            input_norm_frames=args.input_norm_frames,
            precision=args.precision,
        )
        assert sp.training_config().input_norm == getattr(sp.extractor, "input_norm", "none")
        combos = (
            [(m, ip) for m in args.modes for ip in (args.infer_precisions or [None])]
            if sp.learned
            else [(None, None)]
        )
        for mode, infer_precision in combos:
            if mode is not None:
                sp.set_inference(mode, precision=infer_precision)
            t = time.perf_counter()
            tuned = sp.tune(val, val_ref)
            tune_s = time.perf_counter() - t
            t = time.perf_counter()
            scores, _ = sp.evaluate(test, test_ref)
            test_s = time.perf_counter() - t
            row = {
                "features": args.features,
                "mode": mode,
                "reversed": not args.no_reversed,
                "epochs": epochs,
                "freq_warp": args.freq_warp,
                "input_norm": args.input_norm,
                "input_norm_frames": args.input_norm_frames,
                "precision": args.precision or "auto",
                "infer_precision": getattr(sp.extractor, "precision", None),
                "seed": args.seed,
                "threads": args.threads,
                "epochs_run": tlog.epochs_run if tlog else 0,
                "steps": tlog.steps if tlog else 0,
                "stopped": tlog.stopped if tlog else "",
                "train_s": round(train_s, 1),
                "final_loss": round(tlog.losses[-1], 4) if tlog else None,
                "final_scale": round(tlog.scales[-1], 3) if tlog else None,
                "threshold": round(tuned.threshold, 4),
                "val_f1": round(100 * tuned.scores.f1, 2),
                "val_p": round(100 * tuned.scores.precision, 2),
                "val_r": round(100 * tuned.scores.recall, 2),
                "test_f1": round(100 * scores.f1, 2),
                "test_p": round(100 * scores.precision, 2),
                "test_r": round(100 * scores.recall, 2),
                "test_rtf": round(sum(_dur(f) for f in test) / test_s, 1),
                "tune_s": round(tune_s, 1),
                "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.save_bank:
            sp.save(Path(f"{args.save_bank}_{epochs}"))
    print(f"machine at end: {machine()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, {"machine": machine(), "rows": rows})


def _dur(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


def concat_split(data: Path, split: str, minutes: float, out_dir: Path) -> tuple[Path, Path, float]:
    """Concatenate a split's files (repeating them if needed) into one >= ``minutes`` recording
    with its reference CSV; returns (wav, reference csv, duration)."""
    import soundfile as sf

    from kwsos.events import read_events

    files, _ = load_split(data, split)
    ref = read_events(data / f"{split}_reference.csv")
    by_file: dict[str, list] = {}
    for e in ref:
        by_file.setdefault(Path(e.filename).name, []).append(e)
    parts, rows, t, sr = [], [], 0.0, 16000
    while t < 60 * minutes:
        for f in files:
            x, sr = sf.read(str(f), dtype="float32")
            for e in by_file.get(f.name, []):
                rows.append((t + e.onset, t + e.offset, e.label))
            parts.append(x)
            t += len(x) / sr
    wav = out_dir / f"{split}_concat.wav"
    sf.write(str(wav), np.concatenate(parts), sr)
    refp = out_dir / f"{split}_concat.csv"
    refp.write_text(
        "filename,onset,offset,event_label\n"
        + "".join(f"{wav.name},{a:.3f},{b:.3f},{lab}\n" for a, b, lab in rows)
    )
    return wav, refp, t


def run_detect(bank: Path, wav: Path, mode: str, hop: int, out_csv: Path) -> tuple[float, float]:
    cmd = [
        sys.executable,
        "-m",
        "kwsos.cli",
        "detect",
        str(wav),
        "--bank",
        str(bank),
        "--inference",
        mode,
        "--format",
        "csv",
        "--output",
        str(out_csv),
    ]
    if mode == "hop":
        cmd = [
            sys.executable,
            str(Path(__file__)),
            "_detect_hop",
            str(bank),
            str(wav),
            str(hop),
            str(out_csv),
        ]
    return measure(cmd)


def cmd_detect_hop(args) -> None:
    """Child process for the hop mode (the CLI exposes --inference hop with the bank's hop)."""
    from kwsos.events import format_events
    from kwsos.tasks.kws import KeywordSpotter

    sp = KeywordSpotter.load(args.bank)
    sp.set_inference("hop", args.hop)
    Path(args.out_csv).write_text(format_events(sp.detect(args.wav), "csv"))


def cmd_detect(args) -> None:
    from kwsos.events import read_events
    from kwsos.metrics import event_based_scores
    from kwsos.tasks.kws import KeywordSpotter

    args.work.mkdir(parents=True, exist_ok=True)
    wav, refp, dur = concat_split(args.data, "test", args.minutes, args.work)
    ref = read_events(refp)
    sp = KeywordSpotter.load(args.bank)
    print(
        f"bank {args.bank}: {len(sp.keywords)} keywords, "
        f"{sum(sp.n_shots(k) for k in sp.keywords)} shots, {sp.feature_name}; "
        f"recording {dur / 60:.1f} min; machine: {machine()}",
        flush=True,
    )
    # untimed warm-up: numba cache, torch init
    run_detect(args.bank, wav, "conv", args.hop, args.work / "warmup.csv")
    results = {}
    for mode in args.modes:
        walls, rss = [], 0.0
        for _ in range(args.repeats):
            w, r = run_detect(args.bank, wav, mode, args.hop, args.work / f"{mode}.csv")
            walls.append(w)
            rss = max(rss, r)
        est = read_events(args.work / f"{mode}.csv")
        s = event_based_scores(ref, est, files=[wav.name])
        results[mode] = {
            "wall_s": round(min(walls), 2),
            "walls": [round(w, 2) for w in walls],
            "x_real_time": round(dur / min(walls), 1),
            "peak_rss_mib": round(rss),
            "f1": round(100 * s.f1, 2),
            "precision": round(100 * s.precision, 2),
            "recall": round(100 * s.recall, 2),
            "n_est": len(est),
        }
        print(mode, json.dumps(results[mode]), flush=True)
    if "exact" in results:
        exact = read_events(args.work / "exact.csv")
        for mode in results:
            agree = event_based_scores(
                exact, read_events(args.work / f"{mode}.csv"), files=[wav.name]
            )
            results[mode]["agreement_f1_vs_exact"] = round(100 * agree.f1, 2)
            results[mode]["f1_minus_exact"] = round(results[mode]["f1"] - results["exact"]["f1"], 2)
    print(json.dumps(results, indent=2))
    print(f"machine at end: {machine()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, {"machine": machine(), "minutes": dur / 60, "results": results})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enroll")
    e.add_argument("--data", type=Path, default=ROOT / "data" / "kws_tts")
    e.add_argument("--demo", action="store_true", help="use the bundled demo instead of --data")
    e.add_argument("--features", default="tacos")
    e.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[0],
        help="0 = the default step budget of kwsos enroll",
    )
    e.add_argument("--max-minutes", type=float, default=None)
    e.add_argument("--no-reversed", action="store_true")
    e.add_argument("--mode", default=None)
    e.add_argument("--noise-p", type=float, default=0.0, help="background-noise augmentation")
    e.add_argument("--gain-db", type=float, default=0.0, help="random-gain augmentation")
    e.add_argument(
        "--freq-warp",
        type=float,
        default=0.0,
        help="VTLP: max relative frequency warp (0.1 = +-10 %%)",
    )
    e.add_argument(
        "--modes",
        nargs="+",
        default=["conv"],
        help="inference modes to tune and score (learned features)",
    )
    e.add_argument(
        "--infer-precisions",
        nargs="+",
        default=None,
        choices=["auto", "fp32", "bf16"],
        help="score each inference precision of the trained network (default: as trained)",
    )
    e.add_argument(
        "--input-norm",
        default="none",
        choices=["none", "cmvn", "cmn"],
        help="per-recording sliding normalisation of the learned features' log-Mel input",
    )
    e.add_argument(
        "--input-norm-frames", type=int, default=100, help="half window of --input-norm (frames)"
    )
    e.add_argument(
        "--precision",
        default=None,
        choices=["fp32", "bf16", "auto"],
        help="training and inference precision of learned features (default: auto)",
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--save-bank", type=Path, default=None)
    e.add_argument("--out", type=Path, default=None)
    d = sub.add_parser("detect")
    d.add_argument("--data", type=Path, default=ROOT / "data" / "kws_tts")
    d.add_argument("--bank", type=Path, required=True)
    d.add_argument("--minutes", type=float, default=10.0)
    d.add_argument("--modes", nargs="+", default=["exact", "hop", "conv"])
    d.add_argument("--hop", type=int, default=4)
    d.add_argument("--repeats", type=int, default=1)
    d.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "tacos_detect")
    d.add_argument("--out", type=Path, default=None)
    h = sub.add_parser("_detect_hop")
    h.add_argument("bank", type=Path)
    h.add_argument("wav", type=Path)
    h.add_argument("hop", type=int)
    h.add_argument("out_csv", type=Path)
    args = p.parse_args()
    {"enroll": cmd_enroll, "detect": cmd_detect, "_detect_hop": cmd_detect_hop}[args.cmd](args)


if __name__ == "__main__":
    main()
