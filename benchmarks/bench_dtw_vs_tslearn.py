"""Benchmark: kwsos subsequence DTW search vs tslearn's subsequence DTW (Diss. 6.3.6).

Synthetic HFCC-like features (random, L2-normalised, 100 frames/s): ``--keywords`` x ``--shots``
templates of 0.3-0.8 s searched in a ``--minutes`` long recording.

* kwsos: ``SubsequenceDTWDetector.search`` = blocked BLAS cosine cost + numba accumulation in
  parallel over templates (also: per-end start and path length, length normalisation).
* tslearn: ``tslearn.metrics.subsequence_cost_matrix`` per template (numba, one thread, local
  squared Euclidean distance computed in the inner loop; steps (1,0), (0,1), (1,1); returns the
  full (m, n) accumulated matrix, no starts, no normalisation). On L2-normalised frames its local
  cost ``|a - b|^2 = 2 (1 - cos(a, b))`` is twice kwsos' cosine cost.

Numba compile time is excluded from the timings (warm-up call first) and reported separately.
Each timing is the median of ``--repeats`` runs. If a full tslearn run is estimated to take longer
than ``--tslearn-budget-s``, it is timed on a subset of templates and extrapolated linearly in
the number of template frames; the output says so.

Example::

    python benchmarks/bench_dtw_vs_tslearn.py --minutes 10 --keywords 15 --shots 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kwsos.backends import SubsequenceDTWDetector, cosine_cost
from kwsos.io import write_text_atomic


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            platform.processor() or "unknown CPU",
        )
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    return f"{model}, nproc = {os.cpu_count()}"


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def benchmark_data(
    minutes: float, keywords: int, shots: int, dim: int, fps: float, seed: int
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """The data of benchmark (a), float64: a recording of random unit frames, and ``keywords``
    x ``shots`` templates of 0.3-0.8 s with their keyword labels."""
    rng = np.random.default_rng(seed)
    n_frames = int(round(minutes * 60 * fps))
    recording = unit_rows(rng.standard_normal((n_frames, dim)))
    templates, labels = [], []
    for w in range(keywords):
        for _ in range(shots):
            m = int(round(rng.uniform(0.3, 0.8) * fps))
            templates.append(unit_rows(rng.standard_normal((m, dim))))
            labels.append(f"kw{w:02d}")
    return recording, templates, labels


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--keywords", type=int, default=15)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--dim", type=int, default=36)
    ap.add_argument("--fps", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--tslearn-budget-s",
        type=float,
        default=300.0,
        help="time tslearn on a template subset if a full run would take longer than this",
    )
    ap.add_argument("--results", type=Path, default=None, help="write a markdown section here")
    args = ap.parse_args(argv)

    import numba

    raw_rec, raw_tpls, labels = benchmark_data(
        args.minutes, args.keywords, args.shots, args.dim, args.fps, args.seed
    )
    n_frames = raw_rec.shape[0]
    recording = raw_rec.astype(np.float32)
    templates = [t.astype(np.float32) for t in raw_tpls]
    lengths = np.array([t.shape[0] for t in templates])
    n_templates = len(templates)
    total_cells = int(lengths.sum()) * n_frames
    lines: list[str] = []

    def say(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    say(
        f"recording: {n_frames} frames x {args.dim} dims ({args.minutes:g} min at {args.fps:g} fps)"
    )
    say(
        f"templates: {n_templates} ({args.keywords} keywords x {args.shots} shots), "
        f"{lengths.min()}-{lengths.max()} frames, {lengths.sum()} in total; "
        f"{total_cells / 1e6:.0f} M DTW cells"
    )
    say(f"machine: {machine()}; numba threads: {numba.get_num_threads()}")
    say("load average at start (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    # ---------------------------------------------------------------- kwsos
    results: dict[str, float] = {}
    dets = {
        "kwsos steps ((1,1),)": SubsequenceDTWDetector(steps=((1, 1),)).fit(templates, labels),
        "kwsos default steps ((1,1),(1,2),(2,1))": SubsequenceDTWDetector().fit(templates, labels),
    }
    for name, det in dets.items():
        t0 = time.perf_counter()
        det.search(recording[: det.block_frames])
        say(f"{name}: first call (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
    for name, det in dets.items():
        med, all_t = median_time(lambda det=det: det.search(recording), args.repeats)
        results[name] = med
        say(f"{name}: {med:.3f} s (runs: {', '.join(f'{t:.3f}' for t in all_t)})")
    n_threads = numba.get_num_threads()
    if n_threads > 1:
        numba.set_num_threads(1)
        det = dets["kwsos steps ((1,1),)"]
        med, all_t = median_time(lambda: det.search(recording), args.repeats)
        results["kwsos steps ((1,1),), 1 numba thread"] = med
        say(
            f"kwsos steps ((1,1),), 1 numba thread: {med:.3f} s "
            f"(runs: {', '.join(f'{t:.3f}' for t in all_t)})"
        )
        numba.set_num_threads(n_threads)

    # ---------------------------------------------------------------- tslearn
    t0 = time.perf_counter()
    import tslearn
    from tslearn.metrics import subsequence_cost_matrix

    say(f"tslearn {tslearn.__version__} import: {time.perf_counter() - t0:.2f} s")
    rec64 = recording.astype(np.float64)
    tpl64 = [t.astype(np.float64) for t in templates]
    t0 = time.perf_counter()
    subsequence_cost_matrix(tpl64[0][:3], rec64[:10])
    say(f"tslearn first call (numba compile): {time.perf_counter() - t0:.2f} s")
    # Same local cost: tslearn's squared Euclidean on unit rows = 2 x cosine distance.
    acc = subsequence_cost_matrix(tpl64[0][:1], rec64[:100])
    np.testing.assert_allclose(
        acc[0], 2 * cosine_cost(templates[0][:1], recording[:100])[0], atol=1e-5
    )

    t0 = time.perf_counter()
    subsequence_cost_matrix(tpl64[0], rec64)
    t_one = time.perf_counter() - t0
    est_full = t_one * lengths.sum() / lengths[0]
    if est_full * args.repeats <= args.tslearn_budget_s:
        subset = n_templates
    else:
        per_frame = t_one / lengths[0]
        budget_frames = args.tslearn_budget_s / args.repeats / per_frame
        subset = int(np.searchsorted(np.cumsum(lengths), budget_frames, side="right"))
        subset = max(1, min(subset, n_templates))
    sub_frames = int(lengths[:subset].sum())

    def run_tslearn() -> None:
        for t in tpl64[:subset]:
            subsequence_cost_matrix(t, rec64)

    med, all_t = median_time(run_tslearn, args.repeats)
    t_tslearn = med * lengths.sum() / sub_frames
    if subset < n_templates:
        say(
            f"tslearn subsequence_cost_matrix: timed on {subset} of {n_templates} templates "
            f"({sub_frames} of {lengths.sum()} frames): {med:.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in all_t)}); EXTRAPOLATED linearly to all "
            f"templates: {t_tslearn:.1f} s"
        )
    else:
        say(
            f"tslearn subsequence_cost_matrix, all {n_templates} templates: {med:.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in all_t)})"
        )
    results["tslearn"] = t_tslearn

    say()
    say("| method | time for all templates (s) | x real time | speed-up vs tslearn |")
    say("|---|---|---|---|")
    rec_s = n_frames / args.fps
    for name, t in results.items():
        label = name
        if name == "tslearn":
            extra = " (extrapolated)" if subset < n_templates else ""
            label = f"tslearn subsequence_cost_matrix{extra}"
        say(f"| {label} | {t:.3f} | {rec_s / t:.0f} | {t_tslearn / t:.1f}x |")
    ratio = t_tslearn / results["kwsos steps ((1,1),)"]
    say("load average at end (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    say()
    say(f"speed ratio tslearn / kwsos (steps ((1,1),), {n_threads} threads): {ratio:.1f}x")
    ratio_default = t_tslearn / results["kwsos default steps ((1,1),(1,2),(2,1))"]
    say(
        f"speed ratio tslearn / kwsos (default steps ((1,1),(1,2),(2,1)), {n_threads} threads): "
        f"{ratio_default:.1f}x"
    )

    if args.results is not None:
        env = [
            f"{k}={shlex.quote(os.environ[k])}"
            for k in ("PYTHONPATH", "NUMBA_CACHE_DIR", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY")
            if k in os.environ
        ]
        cmd = " ".join([*env, "python", *(shlex.quote(a) for a in sys.argv)])
        text = "## (a) DTW search vs tslearn\n\n"
        text += f"Command (from the repo root):\n\n```\n{cmd}\n```\n\nOutput:\n\n```\n"
        text += "\n".join(ln for ln in lines if not ln.startswith("|") and ln) + "\n```\n\n"
        text += "\n".join(ln for ln in lines if ln.startswith("|")) + "\n"
        write_text_atomic(args.results, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
