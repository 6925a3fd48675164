"""Torch threads on a busy machine, and bf16 vs fp32: the reasons for
:func:`kwsos.training.auto_threads` and ``precision="auto"``.

    python benchmarks/bench_threads.py --steps 6

A child process spins on one core for the whole measurement; the TACos training step (Table 30
network, batch 32, 31 classes x 25 positions as for 15 keywords with reversed classes, bf16 on
AMX CPUs as in training) is timed with ``torch.set_num_threads(1)`` and with all cores,
alternating, and the median step time of each is printed. Then, with no busy process and all
cores, the same training step and one conv inference pass over 2048 frames are timed in fp32
and in bf16 (alternating), and the cosine between the fp32 and bf16 embeddings is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time


def spin(stop) -> None:
    while not stop.is_set():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    import torch

    from kwsos.losses import TACos
    from kwsos.models import TemporalResNet
    from kwsos.training import autocast_dtype

    torch.manual_seed(0)
    net = TemporalResNet().train().to(memory_format=torch.channels_last)
    loss_m = TACos(31, 25)
    opt = torch.optim.Adam(list(net.parameters()) + list(loss_m.parameters()))
    x = torch.randn(32, 16, 64)
    lab_kw = torch.eye(31)[torch.randint(0, 31, (32,))]
    lab_pos = torch.full((32, 25), 1 / 25)
    cast = autocast_dtype("auto", torch.device("cpu"))

    def step() -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=cast or torch.float32, enabled=cast is not None):
            emb = net(x)
        loss = loss_m(emb.float(), lab_kw, lab_pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    n_cores = len(os.sched_getaffinity(0))
    stop = mp.Event()
    busy = mp.Process(target=spin, args=(stop,), daemon=True)
    busy.start()
    try:
        times: dict[int, list[float]] = {1: [], n_cores: []}
        for threads in times:  # warm-up
            torch.set_num_threads(threads)
            step()
        for _ in range(args.steps):
            for threads in times:
                torch.set_num_threads(threads)
                times[threads].append(step())
    finally:
        stop.set()
        busy.join()
    print(f"cores {n_cores}, one of them kept busy by another process; precision {cast or 'fp32'}")
    for threads, ts in times.items():
        print(
            f"{threads} thread(s): median step {statistics.median(ts):.3f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in ts)})"
        )

    torch.set_num_threads(n_cores)
    seq = torch.randn(1, 2048, 64) * 3 - 8

    def infer(dtype: torch.dtype | None) -> tuple[float, torch.Tensor]:
        net.eval()
        t = time.perf_counter()
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            out = net(seq)[0].float()
        net.train()
        return time.perf_counter() - t, out

    res: dict[str, dict[str, list[float]]] = {
        p: {"train": [], "infer": []} for p in ("fp32", "bf16")
    }
    outs = {}
    for _ in range(args.steps):
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            cast = dtype  # read by step()
            res[name]["train"].append(step())
            dt, outs[name] = infer(dtype)
            res[name]["infer"].append(dt)
    cos = torch.nn.functional.cosine_similarity(outs["fp32"], outs["bf16"], dim=1)
    print(f"all {n_cores} cores, no busy process:")
    for name, r in res.items():
        print(
            f"{name}: median training step {statistics.median(r['train']):.3f} s, "
            f"conv pass over 2048 frames {statistics.median(r['infer']):.3f} s"
        )
    print(f"cosine fp32 vs bf16 embeddings: min {cos.min():.6f}, median {cos.median():.6f}")


if __name__ == "__main__":
    main()
