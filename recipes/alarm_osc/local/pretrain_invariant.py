#!/usr/bin/env python
"""Pretrain the open-set clip network on real recordings with background, level and device
augmentation done on the fly in the log-Mel domain (issue 18: a background- and
device-invariant real-recording prior).

The first real prior (``local/pretrain.py`` on ``data/real_pretrain/features.npz``) saw every
file in 16 fixed views; each view already had a device colouring and coloured noise, and half of
them a stretch of another pool file 5-30 dB down, but the same 16 views were repeated every
epoch. Here every training example is remixed at every step, so that the positives of a class
(one source file) are that sound under ever different backgrounds, levels and colourings:

* **Features**: ``features.npz`` holds ``log(M |STFT| + 1e-8)`` -- the natural log of the
  Mel-filtered STFT *magnitude* of the peak-normalised clip (``kwsos.features.LogMel``), not
  dB and not normalised. ``exp(2 x)`` is therefore (approximately) Mel power, and two sounds are
  mixed as ``0.5 * logaddexp(2 x, 2 (b + c))`` (powers add for uncorrelated sounds).
* **Speed and time offset**: the recipe's own augmentation (``random_speed`` +-10 %,
  ``random_time_shift``), as in ``local/pretrain.py``.
* **Device colouring** (loudspeaker; probability ``--p-device``): a smooth gain curve over the
  Mel bins' centre frequencies: high-pass roll-off below 80-800 Hz and low-pass roll-off above
  3-7.5 kHz (6-18 dB per octave each) plus one peaking bump of +-4-6 dB (centre 200-6000 Hz,
  width 0.3-1 octave).
* **Background** (probability ``--p-bg``): a random 4 s segment of the real background pool
  (``data_prep.make_background_pool``: rain, river, birds, restaurant babble, airport PA, crowd,
  engines, machines), rolled in time by a random offset and given its own mild colouring, at an
  SNR drawn from ``--snr-db`` (active power of the sound -- frames within 20 dB of the loudest
  -- over the mean power of the background, as the real benchmark defines it).
* **Other sound** (probability ``--p-other``): a clip of another class of the batch added at
  5-25 dB below, as a second, event-like background.
* **Microphone colouring** (probability 0.5): high-pass roll-off below 40-200 Hz and a +-4 dB
  bump, on the mixture.
* **Level**: the mixture is shifted so that its maximum equals the clean clip's (the frontend
  peak-normalises every clip), +-3 dB.

Then the same loss, mixup, optimiser and network as ``local/pretrain.py``
(:func:`kwsos.embeddings.clip.pretrain`). Written with
:func:`kwsos.embeddings.clip.save_pretrained`, usable as ``init``.

    PY="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python"
    $PY recipes/alarm_osc/local/pretrain_invariant.py data/real_pretrain/features.npz \\
        --backgrounds data/background_pool/features.npz --config recipes/alarm_osc/conf/direct.json \\
        --epochs 60 --max-minutes 30 --threads 1 --out exp/real_pretrain_inv/osc_pretrained_real_inv.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from kwsos.embeddings.clip import ClipFrontend, _augmenter, _new_model, save_pretrained
from kwsos.tasks.openset import OpenSetConfig

LN10_20 = math.log(10) / 20  # dB -> natural-log magnitude


def _log2f(bin_hz, fc):
    return (bin_hz[None, :] / fc[:, None]).log2()


def device_gain(b: int, bin_hz, gen, *, peak_db=(4.0, 6.0)):
    """``(b, F)`` natural-log magnitude gains of random loudspeakers (see the module doc)."""
    import torch

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    def logu(lo, hi):
        return torch.exp(u(math.log(lo), math.log(hi)))

    g = torch.zeros(b, len(bin_hz))
    hp = logu(80.0, 800.0)
    g -= u(6.0, 18.0)[:, None] * torch.clamp(-_log2f(bin_hz, hp), min=0)
    lp = u(3000.0, 7500.0)
    g -= u(6.0, 18.0)[:, None] * torch.clamp(_log2f(bin_hz, lp), min=0)
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    pk = sign * u(*peak_db)
    width = u(0.3, 1.0)
    g += pk[:, None] * torch.exp(-0.5 * (_log2f(bin_hz, logu(200.0, 6000.0)) / width[:, None]) ** 2)
    return g * LN10_20


def mic_gain(b: int, bin_hz, gen):
    import torch

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    hp = torch.exp(u(math.log(40.0), math.log(200.0)))
    g = -12.0 * torch.clamp(-_log2f(bin_hz, hp), min=0)
    pk = u(-4.0, 4.0)
    fc = torch.exp(u(math.log(200.0), math.log(6000.0)))
    g += pk[:, None] * torch.exp(-0.5 * (_log2f(bin_hz, fc) / u(0.3, 1.0)[:, None]) ** 2)
    return g * LN10_20


def active_power(x):
    """Mean Mel power of the frames within 20 dB of the loudest (``x``: (B, T, F) log-magnitude)."""
    import torch

    p = torch.exp(2 * x).sum(-1)  # (B, T)
    keep = p >= 0.01 * p.max(1, keepdim=True).values
    return (p * keep).sum(1) / keep.sum(1).clamp(min=1)


def mean_power(x):
    import torch

    return torch.exp(2 * x).sum(-1).mean(1)


def add_at_snr(x, b, snr_db):
    """``x`` and ``b`` (log magnitudes) mixed with ``b`` scaled to ``snr_db`` below ``x``."""
    import torch

    c = 0.5 * (torch.log(active_power(x) + 1e-12) - torch.log(mean_power(b) + 1e-12))
    c = c - snr_db * LN10_20
    return 0.5 * torch.logaddexp(2 * x, 2 * (b + c[:, None, None]))


class InvariantAugment:
    """The augmentation of the module doc, as ``augment(x, generator)`` for kwsos.training."""

    def __init__(self, base, backgrounds: np.ndarray, bin_hz, args: argparse.Namespace) -> None:
        import torch

        self.base = base
        self.bg = torch.from_numpy(np.ascontiguousarray(backgrounds, np.float32))
        self.bin_hz = bin_hz.float()
        self.a = args

    def _mic(self, b, gen):
        """A microphone colouring, or none with ``--no-colouring`` (no random numbers drawn)."""
        import torch

        if getattr(self.a, "no_colouring", False):
            return torch.zeros(b, len(self.bin_hz))
        return mic_gain(b, self.bin_hz, gen)

    def __call__(self, x, gen):
        import torch

        a = self.a
        b, t, _ = x.shape
        x = self.base(x, gen)  # speed +-10 %, circular time shift
        peak = x.amax((1, 2))
        on = (torch.rand(b, generator=gen) < a.p_device).float()[:, None, None]
        y = x + on * device_gain(b, self.bin_hz, gen)[:, None, :]
        # a real background at a random SNR
        idx = torch.randint(len(self.bg), (b,), generator=gen)
        bg = self.bg[idx]
        shift = torch.randint(t, (b,), generator=gen)
        ar = (torch.arange(t)[None, :] + shift[:, None]) % t
        bg = torch.gather(bg, 1, ar[:, :, None].expand_as(bg))
        bg = bg + 0.5 * self._mic(b, gen)[:, None, :]
        snr = a.snr_db[0] + (a.snr_db[1] - a.snr_db[0]) * torch.rand(b, generator=gen)
        mixed = add_at_snr(y, bg, snr)
        on = torch.rand(b, generator=gen) < a.p_bg
        y = torch.where(on[:, None, None], mixed, y)
        # another class's clip of the batch as an event-like background
        if a.p_other > 0:
            other = torch.roll(x, 1, 0)
            snr = 5.0 + 20.0 * torch.rand(b, generator=gen)
            on = torch.rand(b, generator=gen) < a.p_other
            y = torch.where(on[:, None, None], add_at_snr(y, other, snr), y)
        # microphone colouring of the mixture
        on = (torch.rand(b, generator=gen) < 0.5).float()[:, None, None]
        y = y + on * self._mic(b, gen)[:, None, :]
        # level: peak-normalised like the frontend, +-3 dB
        lvl = (torch.rand(b, generator=gen) * 2 - 1) * 3.0 * LN10_20
        y = y - y.amax((1, 2))[:, None, None] + (peak + lvl)[:, None, None]
        return y.clamp(min=math.log(1e-8))


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("features", type=Path, help="npz of data_prep.make_real_pretrain")
    p.add_argument("--backgrounds", type=Path, action="append", required=True,
                   help="npz of data_prep.make_background_pool (repeatable)")  # fmt: skip
    p.add_argument("--config", type=Path, help="JSON file of OpenSetConfig fields")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr-db", type=float, nargs=2, default=(-5.0, 20.0))
    p.add_argument("--p-bg", type=float, default=0.9)
    p.add_argument("--p-other", type=float, default=0.2)
    p.add_argument("--p-device", type=float, default=0.8)
    p.add_argument(
        "--no-colouring",
        action="store_true",
        help="no loudspeaker, microphone or background colouring (the ablation of RESULTS_real.md)",
    )
    p.add_argument("--init", type=Path, help="start from this pretrained network")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dump-examples", type=Path, help="write a few augmented clips and stop")
    args = p.parse_args(argv)
    if args.no_colouring:
        args.p_device = 0.0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    options = json.loads(args.config.read_text()) if args.config else {}
    options.pop("recipe", None)
    for key in ("init", "keep_pretrained", "reference_speeds"):
        options.pop(key, None)
    options.update(device="cpu", threads=args.threads, seed=args.seed)
    config = OpenSetConfig.from_flat(options)
    with np.load(args.features) as z:
        x, labels, data = z["features"], z["labels"], json.loads(str(z["config"]))
    bgs, bg_info = [], []
    for path in args.backgrounds:
        with np.load(path) as z:
            bgs.append(z["features"])
            bg_data = json.loads(str(z["config"]))
            bg_info.append({"path": str(path), "segments": len(z["features"]),
                            "files": len(z["files"])})  # fmt: skip
        if any(bg_data[k] != v for k, v in config.frontend.to_dict().items()):
            raise SystemExit(f"error: {path} has another frontend than the config")
    front = config.frontend.to_dict()
    if any(data[k] != v for k, v in front.items()):
        raise SystemExit(f"error: {args.features} has frontend {data}, the config {front}")
    frontend = ClipFrontend(config.frontend)
    base = _augmenter(config.training, frontend.bin_hz())
    augment = InvariantAugment(base, np.concatenate(bgs), frontend.bin_hz(), args)

    if args.dump_examples:
        gen = torch.Generator().manual_seed(0)
        xb = torch.from_numpy(x[::1601][:16].astype(np.float32))
        np.savez(args.dump_examples, clean=xb.numpy(), aug=augment(xb, gen).numpy())
        return 0

    from kwsos.losses import SubClusterAdaCos
    from kwsos.training import TrainConfig, train

    _, class_ids = np.unique(labels, return_inverse=True)
    n_classes = int(class_ids.max()) + 1
    torch.manual_seed(args.seed)
    if args.init:
        from kwsos.embeddings.clip import load_pretrained

        net = load_pretrained(args.init, frontend=config.frontend)
    else:
        net = _new_model(config.frontend, config.model)
    c = config.training
    loss = SubClusterAdaCos(
        n_classes, net.dim, n_centers=1, trainable_centers=False, seed=args.seed
    )
    targets = np.eye(n_classes, dtype=np.float32)[class_ids]
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=c.lr, mixup=c.mixup,
                       augment=True, max_minutes=args.max_minutes, seed=args.seed, device="cpu",
                       threads=args.threads)  # fmt: skip
    t0 = time.perf_counter()
    tlog = train(net, loss, x.astype(np.float32), (targets,), class_ids, tcfg, augment=augment)
    log = tlog.to_dict()
    info = {
        "data": {**data, "path": str(args.features), "clips": len(x)},
        "backgrounds": bg_info,
        "augment": {
            "snr_db": list(args.snr_db),
            "p_bg": args.p_bg,
            "p_other": args.p_other,
            "p_device": args.p_device,
        },  # fmt: skip
        "init": str(args.init) if args.init else None,
        "epochs": log["epochs_run"],
        "batch_size": args.batch_size,
        "config": config.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": log["losses"][-1],
        "losses": log["losses"],
        "generator": "recipes/alarm_osc/local/pretrain_invariant.py",
    }
    save_pretrained(net.eval(), args.out, frontend=config.frontend, info=info)
    logging.info("pretrained %d epochs in %.0f s -> %s", log["epochs_run"], info["seconds"],
                 args.out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
