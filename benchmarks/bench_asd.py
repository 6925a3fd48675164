"""Training and scoring throughput of the ASD embedding networks (clips per second).

Measures, for 10-s clips at 16 kHz (the DCASE2023 clip length), one optimisation step (forward,
backward, Adam) of a batch of 64 with the sub-cluster AdaCos loss, and the inference embedding
of a batch of 32, for the two-branch network (paper size and the small CPU variant) and the
log-Mel ResNet. From these the time of a DCASE2023-sized training (7 machine types x 1000
clips, 10 epochs; an epoch being one pass over the class-balanced index list, which the
balancing makes about ``--epoch-factor`` times the number of clips) is extrapolated.

    PYTHONPATH=. python benchmarks/bench_asd.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench(net, n_samples: int, n_classes: int, steps: int) -> tuple[float, float]:
    from kwsos.losses import SubClusterAdaCos

    loss = SubClusterAdaCos(n_classes, net.out_dim, 16, trainable_centers=False)
    opt = torch.optim.Adam(net.parameters())
    x = torch.randn(64, n_samples)
    t = torch.zeros(64, n_classes)
    t[torch.arange(64), torch.arange(64) % n_classes] = 1
    net.train()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        value = loss(net(x), t)
        opt.zero_grad()
        value.backward()
        opt.step()
        if i:  # the first step warms up the allocator and oneDNN
            times.append(time.perf_counter() - t0)
    train_cps = 64 / sorted(times)[len(times) // 2]
    net.eval()
    xs = x[:32]
    with torch.inference_mode():
        net(xs)
        t0 = time.perf_counter()
        for _ in range(steps):
            net(xs)
        embed_cps = 32 * steps / (time.perf_counter() - t0)
    return train_cps, embed_cps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clip-s", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--clips", type=int, default=7000, help="training clips to extrapolate to")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--epoch-factor", type=float, default=1.4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from kwsos.models.asd import LogMelResNet, TwoBranchNet

    n = int(args.clip_s * 16000)
    print(f"machine: {cpu_name()}, nproc = {os.cpu_count()}; torch {torch.__version__}, "
          f"{args.threads} thread(s); load average at start: {os.getloadavg()}")  # fmt: skip
    print(f"clips of {args.clip_s:g} s; extrapolation: {args.clips} clips x {args.epochs} "
          f"epochs x {args.epoch_factor} (class balancing)")  # fmt: skip
    nets = {
        "two-branch (paper size)": TwoBranchNet(n),
        "two-branch small (channels 8-64)": TwoBranchNet(n, channels=(8, 16, 32, 64)),
        "log-Mel ResNet (DCASE2020 system)": LogMelResNet(n),
    }
    print("| network | parameters | training clips/s | embedding clips/s | "
          "DCASE2023-sized training (min) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        tr, em = bench(net, n, args.classes, args.steps)
        minutes = args.clips * args.epochs * args.epoch_factor / tr / 60
        print(f"| {name} | {params / 1e6:.2f} M | {tr:.1f} | {em:.1f} | {minutes:.0f} |",
              flush=True)  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
