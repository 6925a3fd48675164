"""Benchmark (m2): why a Dask worker searched slower than this process: glibc malloc settings.

    python benchmarks/bench_worker_malloc.py --files 40 --repeats 3

Searches the same files (``benchmarks/data/scale/long``, written by ``bench_scale.py``) with
the 15-keyword HFCC bank in a fresh process per measurement, one thread (numba, BLAS), the
bank loaded and the kernels compiled before the clock starts, under the malloc environments
that matter:

* none set (glibc's defaults: the mmap threshold adapts to the sizes a program frees);
* ``MALLOC_TRIM_THRESHOLD_=65536``: what a Dask nanny sets in its workers;
* ``MALLOC_TRIM_THRESHOLD_=1073741824``: a large trim threshold alone;
* kwsos's worker settings (``kwsos.parallel.MALLOC_SETTINGS``).

Setting any threshold turns glibc's adaptive mmap threshold off, so with Dask's setting every
array above 128 KiB is a fresh ``mmap`` that page-faults on first touch. The configurations are
interleaved; the best of ``--repeats`` is reported.

Then the command line, which sets kwsos's thresholds itself (``kwsos.parallel.tune_malloc``):
``kwsos detect`` on the hour of ``benchmarks/data/long_60min.flac`` (``bench_detect_long.py``)
with and without (``KWSOS_MALLOC_TUNING=0``: glibc's defaults), wall time and peak memory
(the best of ``--repeats``), and the two CSVs compared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CLI = """
import resource, sys, time
from kwsos.cli import app
t = time.perf_counter()
sys.argv = ["kwsos", *sys.argv[1:]]
try:
    app()
except SystemExit as e:
    assert not e.code, e.code
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CHILD = """
import sys, time
import numba
from kwsos.parallel import single_threaded_blas
from kwsos.tasks.jobs import DetectJob
files = sys.argv[2:]
job = DetectJob(sys.argv[1])
model = job.load()
numba.set_num_threads(1)
with single_threaded_blas():
    job.run(model, files[:2])  # compile / load the kernels, warm the caches
    t = time.perf_counter()
    job.run(model, files)
    print(time.perf_counter() - t)
"""


def main() -> None:
    from kwsos.parallel import MALLOC_SETTINGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "scale")
    parser.add_argument("--bank", type=Path, default=ROOT / "benchmarks/data/many/bank15")
    args = parser.parse_args()
    files = sorted(str(p) for p in (args.data / "long").glob("*.wav"))[: args.files]
    if not files or not (args.bank / "bank.json").is_file():
        sys.exit("run benchmarks/bench_many_files.py and benchmarks/bench_scale.py first")
    configs = {
        "glibc defaults (no threshold set)": {},
        "MALLOC_TRIM_THRESHOLD_=65536 (Dask's nanny)": {"MALLOC_TRIM_THRESHOLD_": "65536"},
        "MALLOC_TRIM_THRESHOLD_=1073741824": {"MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
        "kwsos workers (mmap 32 MiB, trim 256 MiB)": {
            k: str(v) for k, v in MALLOC_SETTINGS.items()
        },
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    base.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, env in configs.items():
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.bank), *files],
                env={**base, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            times[name].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    ref = min(times["glibc defaults (no threshold set)"])
    print(f"\n{len(files)} files, one thread, best of {args.repeats}")
    print("| malloc environment | search (s) | vs glibc defaults |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {min(t):.2f} | {min(t) / ref:.2f}x |")

    long = ROOT / "benchmarks" / "data" / "long_60min.flac"
    if not long.is_file():
        print(f"\n{long} not found (benchmarks/bench_detect_long.py): command-line part skipped")
        return
    cli = {"glibc defaults (KWSOS_MALLOC_TUNING=0)": {"KWSOS_MALLOC_TUNING": "0"}, "kwsos": {}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = base["PYTHONPATH"]
    wall: dict[str, list[float]] = {name: [] for name in cli}
    rss: dict[str, list[float]] = {name: [] for name in cli}
    csvs: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, extra in cli.items():
                out = Path(tmp) / f"{len(csvs)}.csv"
                cmd = ["detect", str(long), "--bank", str(args.bank), "-f", "csv", "-o", str(out)]
                res = subprocess.run(
                    [sys.executable, "-c", CLI, *cmd],
                    env={**env, **extra},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                seconds, maxrss_kb = res.stdout.split()[-2:]
                wall[name].append(float(seconds))
                rss[name].append(float(maxrss_kb) / 1024)
                csvs[name] = out.read_text()
                print(f"  {name}: {wall[name][-1]:.2f} s, {rss[name][-1]:.0f} MiB", flush=True)
    same = len(set(csvs.values())) == 1
    print(f"\nkwsos detect on 1 h of audio (15-keyword HFCC bank), best of {args.repeats}")
    print("| malloc | wall (s) | peak memory (MiB) |")
    print("|---|---|---|")
    for name in cli:
        print(f"| {name} | {min(wall[name]):.2f} | {min(rss[name]):.0f} |")
    print(f"same detections: {same}")


if __name__ == "__main__":
    main()
