"""Benchmark (f): start-up of the command line and detection over many short files.

    python benchmarks/bench_many_files.py --kws-tts /path/to/kws_tts --repeats 3

Every measurement is the real command in a fresh process (wall time of the child, median of
``--repeats``), side by side in one run: ``python -c pass``, ``python -c "import numpy"``,
``kwsos --help``, ``kwsos keywords``, ``kwsos detect`` of one 10 s file, of ``--n`` files of
2-5 s with ``--jobs 1`` and with the default jobs, and of the same audio concatenated into one
file. Untimed set-up: the segments (``python -m data_prep.make_many_files`` from the KWS-TTS
test split, unless ``--out`` already holds them), a 15-keyword HFCC bank enrolled with
``kwsos enroll`` from the KWS-TTS shots (``train_manifest.csv``) and tuned with ``kwsos tune``
on the validation split, and one detection that warms numba's on-disk kernel cache. The
detections are scored against the segments' reference (event-based F1, untimed) to show that
the many-file and the one-file runs find the same keywords.

Targets (issue 15): ``--help`` and ``keywords`` <= 0.5 s; the 10 s file <= 1.5 s including
start-up; the many files >= 150x real time; the concatenated file within 1.5x of that.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("kwsos")
KWSOS = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "kwsos.cli"]


def wall(cmd: list[str]) -> float:
    """Wall seconds of one child process (stdout discarded; fails loudly)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.read()}")
    return seconds


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def build_bank(kws_tts: Path, bank: Path) -> None:
    if (bank / "bank.json").is_file():
        return
    shots: dict[str, list[str]] = collections.defaultdict(list)
    with open(kws_tts / "train_manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            shots[row["event_label"]].append(str(kws_tts / row["file"]))
    tmp = bank.with_name(bank.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    for keyword, files in shots.items():
        cmd = [*KWSOS, "enroll", keyword, *files, "--bank", str(tmp)]
        subprocess.run(cmd, check=True, capture_output=True)
    with open(kws_tts / "validation_manifest.csv", newline="") as fh:
        validation = [str(kws_tts / row["file"]) for row in csv.DictReader(fh)]
    ref = str(kws_tts / "validation_reference.csv")
    subprocess.run([*KWSOS, "tune", *validation, "-r", ref, "--bank", str(tmp)], check=True,
                   capture_output=True)  # fmt: skip
    tmp.rename(bank)


def f1(reference: Path, detections: Path) -> float:
    import warnings

    from kwsos.events import read_events
    from kwsos.metrics import event_based_scores

    ref, est = read_events(reference), read_events(detections)
    files = sorted({Path(e.filename).name for e in ref} | {Path(e.filename).name for e in est})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sed_eval: a label with no events
        return event_based_scores(ref, est, files=files).f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kws-tts", type=Path, required=True, help="The KWS-TTS data folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "many")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    out = args.out
    segments = sorted((out / "segments").glob("seg_*.wav"))
    if len(segments) != args.n:
        make = [sys.executable, "-m", "data_prep.make_many_files", "--source",
                str(args.kws_tts / "test_manifest.csv"), "--out", str(out), "--n", str(args.n),
                "--min-s", "2", "--max-s", "5", "--seed", "0"]  # fmt: skip
        print(" ".join(make[1:]))
        subprocess.run(make, check=True, cwd=ROOT)
        segments = sorted((out / "segments").glob("seg_*.wav"))
    concatenated = out / "concatenated.wav"
    ten = out / "one_10s.wav"
    if not ten.is_file():
        x, sr = sf.read(str(concatenated), dtype="int16")
        sf.write(str(ten), x[: 10 * sr], sr, subtype="PCM_16")
    bank = out / "bank15"
    build_bank(args.kws_tts, bank)
    det = out / "detections"
    det.mkdir(exist_ok=True)
    b = ["--bank", str(bank)]
    subprocess.run([*KWSOS, "detect", str(ten), *b], check=True, capture_output=True)  # warm-up

    audio_s = {
        "ten": sf.info(str(ten)).duration,
        "many": sum(sf.info(str(p)).duration for p in segments),
        "cat": sf.info(str(concatenated)).duration,
    }
    seg = [str(p) for p in segments]
    csv_out = ["-f", "csv", "-o"]
    runs = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ('python -c "import numpy"', [sys.executable, "-c", "import numpy"], None),
        ("kwsos --help", [*KWSOS, "--help"], None),
        ("kwsos keywords --bank B", [*KWSOS, "keywords", *b], None),
        ("kwsos detect (one 10 s file)", [*KWSOS, "detect", str(ten), *b], "ten"),
        (
            f"kwsos detect ({len(seg)} files) --jobs 1",
            [*KWSOS, "detect", *seg, *b, *csv_out, str(det / "many_j1.csv"), "--jobs", "1"],
            "many",
        ),
        (
            f"kwsos detect ({len(seg)} files), default jobs",
            [*KWSOS, "detect", *seg, *b, *csv_out, str(det / "many.csv")],
            "many",
        ),
        (
            "kwsos detect (the same audio as one file)",
            [*KWSOS, "detect", str(concatenated), *b, *csv_out, str(det / "concatenated.csv")],
            "cat",
        ),
    ]
    from kwsos.parallel import default_jobs

    print(
        f"machine: {cpu_model()}, nproc {os.cpu_count()}, python {platform.python_version()}, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(
        f"bank: 15 keywords x 5 shots (HFCC); {len(seg)} files, {audio_s['many']:.1f} s of "
        f"audio; default jobs = {default_jobs()}; median of {args.repeats} runs\n"
    )
    print("| command | wall (s) | audio (s) | x real time |")
    print("|---|---|---|---|")
    results = {}
    for name, cmd, audio in runs:
        times = sorted(wall(cmd) for _ in range(args.repeats))
        t = times[len(times) // 2]
        results[name] = t
        if audio is None:
            print(f"| `{name}` | {t:.2f} | | |")
        else:
            print(f"| `{name}` | {t:.2f} | {audio_s[audio]:.1f} | {audio_s[audio] / t:.0f} |")
    many_default = results[f"kwsos detect ({len(seg)} files), default jobs"]
    cat_t = results["kwsos detect (the same audio as one file)"]
    print(
        f"\nmany files (default jobs) / one file, wall: {many_default / cat_t:.2f} "
        f"(target: the one file within 1.5x of the many files)"
    )
    print(
        f"F1 (untimed check): {len(seg)} files {100 * f1(out / 'reference.csv', det / 'many.csv'):.1f} %"
        f" (--jobs 1: {100 * f1(out / 'reference.csv', det / 'many_j1.csv'):.1f} %), "
        f"concatenated {100 * f1(out / 'concatenated.csv', det / 'concatenated.csv'):.1f} % "
        "(threshold tuned on the KWS-TTS validation split)"
    )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
