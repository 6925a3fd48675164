"""Benchmark: the DTW's cosine similarity products in float32 (what kwsos uses) vs bfloat16 and
float16 (issue 15, item 3: "measure float32 vs bfloat/float16 costs if they help").

The products of benchmark (a) (``--keywords`` x ``--shots`` templates of 0.3-0.8 s against a
``--minutes`` recording, random unit frames) are computed tile by tile exactly as the fused
kernel does (one ``template x 256-frame tile`` product at a time):

* numpy float32 (OpenBLAS sgemm), the kernel's precision;
* torch float32, bfloat16 and float16 matmuls (oneDNN; AMX/AVX-512 where the CPU has them),
  if torch is installed.

Printed per variant: the time for all products, and the largest absolute difference of the
cost ``1 - cos`` from float64. The DTW itself is not timed here (see bench_dtw_vs_tslearn.py).

Example::

    python benchmarks/bench_cost_precision.py --minutes 10 --keywords 15 --shots 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from bench_dtw_vs_tslearn import benchmark_data  # sibling script (benchmarks/)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--keywords", type=int, default=15)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--dim", type=int, default=36)
    ap.add_argument("--fps", type=float, default=100.0)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch threads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    rec, tpls, _ = benchmark_data(
        args.minutes, args.keywords, args.shots, args.dim, args.fps, args.seed
    )
    n = rec.shape[0]
    n_tiles = -(-n // args.tile)
    pad = np.zeros((n_tiles * args.tile, args.dim))
    pad[:n] = rec
    tiles64 = pad.reshape(n_tiles, args.tile, args.dim).transpose(0, 2, 1)
    cells = sum(t.shape[0] for t in tpls) * n
    print(f"{len(tpls)} templates, {n} frames x {args.dim} dims: {cells / 1e6:.0f} M products")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    # reference costs of a few (template, tile) pairs, to measure the error of each precision
    probe = [(k, q) for k in range(0, len(tpls), 7) for q in range(0, n_tiles, 37)]

    def err(product) -> float:
        worst = 0.0
        for k, q in probe:
            ref = 1.0 - tpls[k] @ tiles64[q]
            got = 1.0 - np.asarray(product(k, q), dtype=np.float64)
            worst = max(worst, float(np.abs(got - ref).max()))
        return worst

    offsets = np.cumsum([0] + [t.shape[0] for t in tpls])

    def timed(name: str, product, stacked=None) -> None:
        """``product(k, q)``: template k x tile q; ``stacked(q)``: all templates x tile q in one
        product (a bigger matrix, where AMX / oneDNN have more to work on)."""
        product(0, 0)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for q in range(n_tiles):
                if stacked is not None:
                    stacked(q)
                    continue
                for k in range(len(tpls)):
                    product(k, q)
            times.append(time.perf_counter() - t0)
        print(f"| {name} | {statistics.median(times):.3f} | {err(product):.1e} |", flush=True)

    print("| products | time for all (s), median | max abs cost error vs float64 |")
    print("|---|---|---|")
    with threadpool_limits(args.threads):
        t32 = [t.astype(np.float32) for t in tpls]
        tiles32 = np.ascontiguousarray(tiles64, dtype=np.float32)
        timed("numpy float32 (sgemm)", lambda k, q: t32[k] @ tiles32[q])
        all32 = np.concatenate(t32)
        timed(
            "numpy float32, all templates stacked per tile",
            lambda k, q: (all32 @ tiles32[q])[offsets[k] : offsets[k + 1]],
            lambda q: all32 @ tiles32[q],
        )
        try:
            import torch
        except ImportError:
            print("torch not installed: torch variants skipped")
            return 0
        torch.set_num_threads(args.threads)
        for dt in (torch.float32, torch.bfloat16, torch.float16):
            tt = [torch.from_numpy(t).to(dt) for t in t32]
            tl = torch.from_numpy(tiles32).to(dt)
            name = f"torch {str(dt).removeprefix('torch.')}"
            with torch.inference_mode():
                timed(name, lambda k, q, tt=tt, tl=tl: (tt[k] @ tl[q]).float())
                ta = torch.cat(tt)
                timed(
                    f"{name}, all templates stacked per tile",
                    lambda k, q, ta=ta, tl=tl: (ta[offsets[k] : offsets[k + 1]] @ tl[q]).float(),
                    lambda q, ta=ta, tl=tl: (ta @ tl[q]).float(),
                )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
