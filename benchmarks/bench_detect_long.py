"""Benchmark (b): `kwsos detect` on a 10-minute and a 1-hour recording — wall time and peak RSS.

    python -m data_prep.make_long_recording --minutes 10 --out benchmarks/data/long_10min.flac
    python -m data_prep.make_long_recording --minutes 60 --out benchmarks/data/long_60min.flac
    python benchmarks/bench_detect_long.py --repeats 2

Each measurement runs the real command line (`kwsos detect ... --format csv --output ...`) in a
fresh process, with the demo's keyword bank (4 keywords x 5 shots, HFCC), and reads that
process's peak resident set size from the kernel (``ru_maxrss`` of the waited-for child). A
first, untimed run warms numba's on-disk kernel cache. Targets (issue KWS-core): peak RSS of
the 1-hour run <= 1 GB and within 10 % of the 10-minute run.
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

ROOT = Path(__file__).resolve().parent.parent
KWSOS = [sys.executable, "-m", "kwsos.cli"]


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process (run in ``cwd``)."""
    # stderr goes to a file, not a pipe: nobody reads a pipe while we wait, so it could fill up.
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.read()}")
    return wall, rusage.ru_maxrss / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--bank",
        type=Path,
        default=None,
        help="keyword bank to search with (default: the demo's, 4 keywords x 5 shots); e.g. the "
        "15-keyword bank benchmarks/bench_many_files.py builds in benchmarks/data/many/bank15",
    )
    args = parser.parse_args()
    files = [args.data / "long_10min.flac", args.data / "long_60min.flac"]
    for f in files:
        if not f.is_file():
            sys.exit(
                f"missing {f}; generate it with data_prep.make_long_recording (see the docstring)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        bank, out = Path(tmp) / "bank", Path(tmp) / "det.csv"
        if args.bank is not None:
            bank = args.bank
        else:
            subprocess.run([*KWSOS, "demo", "--bank", str(bank)], check=True, capture_output=True)
        subprocess.run(
            [*KWSOS, "detect", str(files[0]), "--bank", str(bank), "-f", "csv", "-o", str(out)],
            check=True,
            capture_output=True,
        )  # warm-up (numba cache)
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
        print(f"bank: {args.bank or 'the demo bank (4 keywords x 5 shots)'}")
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print("| recording | duration | wall time (s) | x real time | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        results = {}
        for f in files:
            minutes = 10 if "10min" in f.name else 60
            runs = [
                measure(
                    [*KWSOS, "detect", str(f), "--bank", str(bank), "-f", "csv", "-o", str(out)]
                )
                for _ in range(args.repeats)
            ]
            wall = sorted(r[0] for r in runs)[len(runs) // 2]
            rss = max(r[1] for r in runs)
            results[minutes] = rss
            print(
                f"| {f.name} | {minutes} min | {wall:.1f} | {minutes * 60 / wall:.0f} | {rss:.0f} |"
            )
        ratio = results[60] / results[10]
        print(
            f"\npeak RSS 60 min / 10 min = {ratio:.3f} (target <= 1.10); "
            f"60 min peak {results[60]:.0f} MiB (target <= 1024)"
        )


if __name__ == "__main__":
    main()
