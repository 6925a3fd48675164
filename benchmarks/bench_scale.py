"""Benchmark (m): many files on a local Dask cluster: 1 vs 2 workers, against the in-process run,
and the per-file and start-up overhead of the cluster.

    python benchmarks/bench_scale.py --repeats 4

Every measurement is the real ``kwsos detect`` in a fresh process (wall time; the best of
``--repeats``, the configurations interleaved so that a busy moment of the machine hits them
alike), side by side in one run, with the 15-keyword HFCC bank and the 200 KWS-TTS segments that
``benchmarks/bench_many_files.py`` builds (``benchmarks/data/many``; run it first).

* **Scaling**: 200 files of about 36 s each (10 segments tiled per file, 2 h of audio; written
  once, untimed, to ``benchmarks/data/scale``) searched with ``--manifest``:
  in process (``--jobs 1``, and the default ``--jobs``), and on a local cluster of 1 and 2
  workers with one thread per file (``--worker-threads 1``: a worker is one core) and with the
  default threads (``cores / workers``); 1 and 2 workers again with ``--dashboard`` (this
  script's runs are not in a terminal, so they serve none by default). Every run's CSV must
  equal the in-process one.
* **Overhead**: 200 files of 1 s and the same 200 s as one file, one file at a time in process
  (``--jobs 1``) and on one worker: (wall(200 files) - wall(1 file)) / 200 is the cost of a
  file beyond its audio. The start-up of a cluster is wall(``--workers 1``, one file) -
  wall(in process, one file).

Target (issue 16): 2 local workers >= 1.7x one worker on a folder of 200 files, on 2 cores.
The ratio is reported per repetition (the two runs of a repetition follow each other, so they
see the machine in one state) with its median, and as the ratio of the best runs.
``--scaling-only --repeats 8`` times just that pair (and the in-process reference).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detect_long import cpu_model, measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ONE, TWO = "--workers 1 --worker-threads 1", "--workers 2 --worker-threads 1"
_SCRIPT = Path(sys.executable).with_name("kwsos")
KWSOS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "kwsos.cli"]


def segments(many: Path) -> list[Path]:
    with open(many / "segments.csv", newline="") as fh:
        return [many / row["filename"] for row in csv.DictReader(fh)]


def write_files(out: Path, parts: list[Path], n: int, per_file: int, seconds: float | None) -> None:
    """``n`` files, each the concatenation of ``per_file`` segments (cycling through them), or
    the first ``seconds`` of one segment; written once (a folder that holds them is reused)."""
    if out.is_dir() and len(list(out.glob("*.wav"))) == n:
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for k in range(n):
        if seconds is not None:
            x, sr = sf.read(str(parts[k % len(parts)]), dtype="float32")
            x = np.resize(x, int(seconds * sr))  # repeats a segment shorter than ``seconds``
        else:
            pieces = [
                sf.read(str(parts[(k * per_file + j) % len(parts)]), dtype="float32")
                for j in range(per_file)
            ]
            sr = pieces[0][1]
            x = np.concatenate([p for p, _ in pieces])
        sf.write(str(out / f"f{k:03d}.wav"), x, sr)


def concatenate(folder: Path, out: Path) -> float:
    xs = [sf.read(str(p), dtype="float32") for p in sorted(folder.glob("*.wav"))]
    x = np.concatenate([a for a, _ in xs])
    sf.write(str(out), x, xs[0][1])
    return len(x) / xs[0][1]


def manifest(folder: Path, out: Path) -> Path:
    out.write_text("".join(f"{p}\n" for p in sorted(folder.glob("*.wav"))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--many", type=Path, default=ROOT / "benchmarks" / "data" / "many")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "scale")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--per-file", type=int, default=10, help="segments per long file")
    parser.add_argument(
        "--scaling-only",
        action="store_true",
        help="only the target's pair (1 and 2 workers, one thread per file) and the in-process "
        "reference: more repetitions in the same time",
    )
    args = parser.parse_args()
    bank = args.many / "bank15"
    if not (bank / "bank.json").is_file():
        sys.exit(f"{bank} not found: run benchmarks/bench_many_files.py first")
    parts = segments(args.many)
    long_dir, short_dir = args.out / "long", args.out / "short"
    write_files(long_dir, parts, args.n, args.per_file, None)
    write_files(short_dir, parts, args.n, 1, 1.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        long_m, short_m = (
            manifest(long_dir, tmp / "long.txt"),
            manifest(short_dir, tmp / "short.txt"),
        )
        hours = sum(sf.info(str(p)).duration for p in long_dir.glob("*.wav")) / 3600
        one_short = tmp / "short_concatenated.wav"
        short_s = concatenate(short_dir, one_short)
        detect = [*KWSOS, "detect", "--bank", str(bank), "-f", "csv"]

        def on_long(options: str) -> list[str]:
            return ["--manifest", str(long_m), *options.split()]

        scaling = {
            "in process, --jobs 1": on_long("--jobs 1"),
            "in process, default --jobs": on_long(""),
            ONE: on_long(ONE),
            TWO: on_long(TWO),
            "--workers 1 (default threads)": on_long("--workers 1"),
            # what a run in a terminal gets by default (this script's runs are not in one)
            f"{ONE} --dashboard": on_long(f"{ONE} --dashboard"),
            f"{TWO} --dashboard": on_long(f"{TWO} --dashboard"),
        }
        # one file at a time in both, so that the difference is the cost of the files
        overhead = {
            "200 files of 1 s, in process --jobs 1": ["--manifest", str(short_m), "-j", "1"],
            f"one file of {short_s:.0f} s, in process": [str(one_short)],
            "200 files of 1 s, --workers 1": ["--manifest", str(short_m), "--workers", "1"],
            f"one file of {short_s:.0f} s, --workers 1": [str(one_short), "--workers", "1"],
        }
        if args.scaling_only:
            scaling = {k: v for k, v in scaling.items() if k in ("in process, --jobs 1", ONE, TWO)}
            overhead = {}
        # warm numba's on-disk cache and the page cache (untimed)
        measure([*detect, "--manifest", str(long_m), "-o", str(tmp / "warm.csv")])
        times: dict[str, list[float]] = {k: [] for k in [*scaling, *overhead]}
        outputs: dict[str, str] = {}
        for rep in range(args.repeats):
            for name, extra in [*scaling.items(), *overhead.items()]:
                out = tmp / f"out{len(outputs)}_{rep}.csv"
                seconds, _ = measure([*detect, *extra, "-o", str(out)])
                times[name].append(seconds)
                text = out.read_text()
                out.unlink()
                if name in scaling:
                    outputs.setdefault(name, text)
                print(f"  {name}: {seconds:.2f} s", flush=True)
        ref = outputs["in process, --jobs 1"]
        same = {name: text == ref for name, text in outputs.items()}
        best = {k: min(v) for k, v in times.items()}
        print(f"\nmachine: {cpu_model()}, {os.cpu_count()} cores; best of {args.repeats}")
        print(f"\nscaling: {args.n} files, {hours:.2f} h of audio, 15-keyword HFCC bank")
        print("| run | wall (s) | x real time | same CSV as in process |")
        print("|---|---|---|---|")
        for name in scaling:
            print(f"| {name} | {best[name]:.2f} | {hours * 3600 / best[name]:.0f} | {same[name]} |")
        w1, w2 = best[ONE], best[TWO]
        # the runs of a repetition follow each other: their ratio sees the machine in one state
        paired = [a / b for a, b in zip(times[ONE], times[TWO], strict=True)]
        print(
            "\n2 workers / 1 worker (one thread per file), each repetition: "
            + ", ".join(f"{r:.2f}x" for r in paired)
            + f"\n  median {float(np.median(paired)):.2f}x (target >= 1.7); best of each: "
            f"{w1 / w2:.2f}x"
        )
        if args.scaling_only:
            return
        d1, d2 = best[f"{ONE} --dashboard"], best[f"{TWO} --dashboard"]
        print(f"the same, both serving the dashboard: {d1 / d2:.2f}x")
        print(
            f"2 workers / 1 worker with its default 2 threads: {best['--workers 1 (default threads)'] / w2:.2f}x"
        )
        print(
            f"2 workers / in process (default --jobs): {best['in process, default --jobs'] / w2:.2f}x"
        )
        print("\noverhead")
        print("| run | wall (s) |")
        print("|---|---|")
        for name in overhead:
            print(f"| {name} | {best[name]:.2f} |")
        names = list(overhead)
        per_file_in = (best[names[0]] - best[names[1]]) / args.n
        per_file_dask = (best[names[2]] - best[names[3]]) / args.n
        start = best[names[3]] - best[names[1]]
        print(
            f"\nper-file overhead: {1000 * per_file_in:.1f} ms in process, "
            f"{1000 * per_file_dask:.1f} ms on a local cluster"
        )
        print(f"cluster start-up (1 worker, incl. loading the bank in it): {start:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
