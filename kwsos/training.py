"""Task-agnostic training loop for embedding models with angular-margin losses.

Used by keyword enrollment (TACos / L_kw / sliding-window AdaCos) and by the open-set and
anomaly recipes. The caller supplies the inputs, one or more soft-target matrices, a class id per
sample for random oversampling, the model and the loss module; the loop handles seeding, class
balancing, mixup, augmentation, Adam, progress reporting, a time budget, early stopping on the
training loss, checkpoints and the device.

Every training step computes ``loss_module(model(x), *targets)`` on a batch of ``batch_size``
rows (mixed up when ``mixup`` is on: Diss. 3.4 / 6.3.4 use ``lambda ~ U(0, 1)``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwsos.config import Config
from kwsos.hooks import Hook
from kwsos.io import atomic_output

__all__ = [
    "TrainConfig",
    "TrainLog",
    "auto_threads",
    "autocast_dtype",
    "balanced_indices",
    "cpu_has_amx_bf16",
    "pick_device",
    "seed_everything",
    "train",
]

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: ``augment(x, generator) -> x`` on a batch tensor (torch is imported only when training).
Augment = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class TrainConfig(Config):
    """Optimisation settings.

    Attributes
    ----------
    epochs
        Maximum number of epochs; an epoch is one pass over the class-balanced index list
        (:func:`balanced_indices`: every class oversampled to the size of the largest).
    max_steps
        Stop after this many optimisation steps (``None``: no limit). Keyword enrollment uses a
        step budget so that the training time does not grow with the number of keywords.
    batch_size, lr
        Adam with this batch size and learning rate (paper: batch 32, Keras default lr 1e-3).
    mixup
        Mix pairs of samples and their targets with ``lambda ~ U(0, 1)``.
    augment
        Apply the caller's augmentation (SpecAugment for log-Mel segments).
    seed
        Seeds python, numpy and torch; the batch order, mixup and augmentation draw from
        generators seeded from it, so a run is reproducible on the same device.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``... or ``"auto"`` (CUDA when available).
    patience, min_delta
        Early stop when the epoch-mean training loss has not improved by more than ``min_delta``
        (relative) for ``patience`` epochs (0: never).
    max_minutes
        Stop at the first step that ends after this wall-clock budget (``None``: no budget).
    threads
        Torch intra-op threads on CPU (``None``: :func:`auto_threads`, the idle cores).
    precision
        ``"fp32"``, ``"bf16"`` (autocast of the model's forward pass to bfloat16; the loss and
        the optimiser stay in float32) or ``"auto"``: bf16 on CPUs with AMX bf16 units (where it
        is faster: 0.28 vs 0.37 s per TACos step in ``benchmarks/bench_threads.py``), fp32
        elsewhere.
    """

    epochs: int = 40
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    mixup: bool = True
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    patience: int = 0
    min_delta: float = 0.01
    max_minutes: float | None = None
    threads: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": 0 < self.lr < 10,
            "patience": self.patience >= 0,
            "min_delta": self.min_delta >= 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "threads": self.threads is None or self.threads >= 1,
            "precision": self.precision in ("auto", "fp32", "bf16"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training setting {bad[0]}: {getattr(self, bad[0])!r}")


@dataclass
class TrainLog:
    """What happened: per-epoch mean loss, epochs run, why it stopped, wall time, device."""

    losses: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    epochs_run: int = 0
    stopped: str = "epochs"
    seconds: float = 0.0
    device: str = "cpu"
    steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "losses": [round(v, 5) for v in self.losses],
            "scales": [round(v, 4) for v in self.scales],
        }


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code using the global RNG
    torch.manual_seed(seed)


def auto_threads() -> int:
    """Torch threads for this process: the cores not already busy (1-minute load average), at
    least one. Oversubscribing busy cores is costly for torch's OpenMP kernels: on the 2-core
    development machine with one core kept busy by another process, a TACos training step took
    0.83 s with 2 threads and 0.35 s with 1 (``benchmarks/bench_threads.py``).
    ``KWSOS_THREADS`` overrides."""
    import os

    env = os.environ.get("KWSOS_THREADS")
    if env:
        return max(1, int(env))
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(n, int(n - busy + 0.5)))


def cpu_has_amx_bf16() -> bool:
    """Whether this (Linux) CPU advertises AMX bf16 tiles (fast bfloat16 matrix units)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain float32)."""
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and cpu_has_amx_bf16():
        return torch.bfloat16
    return None


def pick_device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def balanced_indices(class_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random oversampling: every class's samples repeated (and topped up at random) to the size of
    the largest class, then shuffled (Diss. 6.3.4, imbalanced-learn's RandomOverSampler)."""
    class_ids = np.asarray(class_ids)
    classes, counts = np.unique(class_ids, return_counts=True)
    target = counts.max()
    parts = []
    for c, n in zip(classes, counts, strict=True):
        idx = np.flatnonzero(class_ids == c)
        reps = np.tile(idx, target // n)
        extra = rng.choice(idx, target - len(reps), replace=False)
        parts.append(np.concatenate([reps, extra]))
    out = np.concatenate(parts)
    rng.shuffle(out)
    return out


def train(
    model: nn.Module,
    loss_module: nn.Module,
    inputs: np.ndarray,
    targets: tuple[np.ndarray, ...],
    class_ids: np.ndarray,
    config: TrainConfig = TrainConfig(),
    *,
    augment: Augment | None = None,
    hook: Hook | None = None,
    checkpoint: str | Path | None = None,
) -> TrainLog:
    """Train ``model`` and ``loss_module`` (its centres are parameters too) in place.

    Parameters
    ----------
    inputs
        ``(N, ...)`` float32 model inputs (e.g. log-Mel segments ``(N, T, F)``).
    targets
        Soft-target matrices ``(N, C_i)`` passed to the loss after the model output, in order.
    class_ids
        ``(N,)`` class of every sample, for random oversampling.
    augment
        ``augment(x_batch, generator) -> x_batch``, applied before mixup when
        ``config.augment``.
    hook
        Progress callback ``hook("train", completed=epoch, total=epochs, loss=...)``.
    checkpoint
        If given, the model and loss state are written there (atomically) after every epoch.
    """
    import torch

    from kwsos.augment import mixup as mixup_batch

    n = len(inputs)
    if n == 0:
        raise ValueError("no training samples")
    if any(len(t) != n for t in targets) or len(class_ids) != n:
        raise ValueError("inputs, targets and class_ids must have the same length")
    seed_everything(config.seed)
    torch.set_num_threads(config.threads or auto_threads())
    device = pick_device(config.device)
    cast = autocast_dtype(config.precision, device)
    model.to(device).train()
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)  # oneDNN's fast layout for convolutions
    loss_module.to(device).train()
    x_all = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    t_all = tuple(torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)) for t in targets)
    # A loss that needs the model's internals (self-supervision, kwsos.losses.ssl) computes the
    # whole step itself, mixup included.
    custom_loss = getattr(loss_module, "compute_loss", None)
    params = list(model.parameters()) + [p for p in loss_module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    tlog = TrainLog(device=str(device) + (f" ({cast})".replace("torch.", "") if cast else ""))
    start = time.perf_counter()
    best, stale = math.inf, 0
    budget = None if config.max_minutes is None else 60.0 * config.max_minutes
    for epoch in range(config.epochs):
        order = balanced_indices(class_ids, rng)
        total, count = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            idx = torch.from_numpy(order[i : i + config.batch_size])
            if len(idx) < 2:
                continue
            x = x_all[idx]
            ts = tuple(t[idx] for t in t_all)
            if config.augment and augment is not None:
                x = augment(x, gen)
            if config.mixup and custom_loss is None:
                x, ts, _ = mixup_batch(x, ts, gen)
            x = x.to(device, non_blocking=True)
            ts = tuple(t.to(device, non_blocking=True) for t in ts)
            with torch.autocast(device.type, dtype=cast or torch.float32, enabled=cast is not None):
                if custom_loss is not None:
                    loss = custom_loss(model, x, ts, gen).float()
                else:
                    loss = loss_module(model(x).float(), *ts)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            tlog.steps += 1
            if config.max_steps is not None and tlog.steps >= config.max_steps:
                break
            if budget is not None and time.perf_counter() - start > budget:
                break
        mean = total / max(count, 1)
        tlog.losses.append(mean)
        scale = float(getattr(loss_module, "scale", float("nan")))
        tlog.scales.append(scale)
        tlog.epochs_run = epoch + 1
        elapsed = time.perf_counter() - start
        log.info(
            "epoch %d/%d loss %.4f scale %.3g (%.0f s)",
            epoch + 1,
            config.epochs,
            mean,
            scale,
            elapsed,
        )
        if hook is not None:
            hook("train", completed=epoch + 1, total=config.epochs, loss=mean, scale=scale)
        if checkpoint is not None:
            with atomic_output(checkpoint) as tmp:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "loss": loss_module.state_dict(),
                        "epoch": epoch + 1,
                        "log": tlog.to_dict(),
                    },
                    tmp,
                )
        if mean < best * (1 - config.min_delta):
            best, stale = mean, 0
        else:
            stale += 1
        if config.max_steps is not None and tlog.steps >= config.max_steps:
            tlog.stopped = "step budget"
            break
        if config.patience and stale >= config.patience:
            tlog.stopped = "early stop (training loss)"
            break
        if budget is not None and elapsed > budget:
            tlog.stopped = "time budget"
            break
    tlog.seconds = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    loss_module.eval()
    return tlog
