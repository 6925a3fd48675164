"""Benchmark (i): enrollment and detection speed of the default whisper-tacos features.

    python -m data_prep.make_kws_tts --out data/kws_tts --seed 0             # the 15 x 5 shots
    python -m data_prep.make_long_recording --minutes 10 --out benchmarks/data/long_10min.flac
    python -m data_prep.make_long_recording --minutes 60 --out benchmarks/data/long_60min.flac
    python benchmarks/bench_whisper_kws.py --shots data/kws_tts/train

1. Enrollment of 15 keywords x 5 shots (KWS-TTS's enrollment shots), timed in a fresh process
   that runs ``kwsos enroll`` once per keyword with ``--no-train`` and ``kwsos train`` once
   (the way the README tells users to enroll many keywords), for whisper-tacos and HFCC side
   by side; the whisper-tacos bank is kept for step 2. Then the same shots with one
   ``kwsos enroll-folder`` (one process, one training).
2. ``kwsos detect`` of the 10-minute and the 1-hour recording with that bank, each in a fresh
   process: wall time, real-time factor and peak RSS (``ru_maxrss`` of the child), as in
   benchmark (b) (``bench_detect_long.py``). A first untimed run warms numba's cache.

Targets (issue 19): enrollment <= 30 s; detection >= 100x real time on 1 hour with peak
memory <= 1 GB, flat (1 hour within 10 % of 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detect_long import KWSOS, cpu_model, measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def enroll_all(shots_dir: Path, bank: Path, features: str) -> float:
    """Wall seconds to enroll every keyword folder of ``shots_dir`` and train once."""
    folders = sorted(p for p in shots_dir.iterdir() if p.is_dir())
    start = time.perf_counter()
    for i, folder in enumerate(folders):
        label = folder.name.replace("_", " ")
        cmd = [
            *KWSOS,
            "enroll",
            label,
            *map(str, sorted(folder.glob("*.wav"))),
            "--bank",
            str(bank),
        ]
        if i == 0:
            cmd += ["--features", features]
        if features.startswith("whisper-tacos") or features == "tacos":
            cmd += ["--no-train"]
        subprocess.run(cmd, check=True, capture_output=True)
    if features in ("whisper-tacos", "tacos"):
        subprocess.run([*KWSOS, "train", "--bank", str(bank)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=Path, default=ROOT / "data" / "kws_tts" / "train")
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    files = [args.data / "long_10min.flac", args.data / "long_60min.flac"]
    for f in [args.shots, *files]:
        if not f.exists():
            sys.exit(f"missing {f}; generate it (see the docstring)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        banks = {}
        print("\n| features | keywords x shots | enrollment wall time (s) |\n|---|---|---|")
        for features in ("whisper-tacos", "hfcc"):
            bank = Path(tmp) / features
            runs = []
            for _ in range(args.repeats):
                if bank.exists():
                    import shutil

                    shutil.rmtree(bank)
                runs.append(enroll_all(args.shots, bank, features))
            n_kw = len([p for p in args.shots.iterdir() if p.is_dir()])
            print(f"| {features} | {n_kw} x 5 | {sorted(runs)[len(runs) // 2]:.1f} |")
            banks[features] = bank
        one = Path(tmp) / "enroll_folder"
        start = time.perf_counter()
        subprocess.run(
            [*KWSOS, "enroll-folder", str(args.shots), "--bank", str(one)],
            check=True,
            capture_output=True,
        )
        print(
            f"| whisper-tacos, one `kwsos enroll-folder` | {n_kw} x 5 | {time.perf_counter() - start:.1f} |"
        )
        bank, out = banks["whisper-tacos"], Path(tmp) / "det.csv"
        subprocess.run(
            [*KWSOS, "detect", str(files[0]), "--bank", str(bank), "-f", "csv", "-o", str(out)],
            check=True,
            capture_output=True,
        )  # warm-up (numba cache, model files in the page cache)
        print("\n| recording | duration | wall time (s) | x real time | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        rss = {}
        for f in files:
            minutes = 10 if "10min" in f.name else 60
            wall, peak = measure(
                [*KWSOS, "detect", str(f), "--bank", str(bank), "-f", "csv", "-o", str(out)]
            )
            rss[minutes] = peak
            print(
                f"| {f.name} | {minutes} min | {wall:.1f} | {minutes * 60 / wall:.0f} | {peak:.0f} |"
            )
        print(
            f"\npeak RSS 60 min / 10 min = {rss[60] / rss[10]:.3f} (target <= 1.10); "
            f"60 min peak {rss[60]:.0f} MiB (target <= 1024)"
        )


if __name__ == "__main__":
    main()
