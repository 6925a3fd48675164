"""Generated tone "alarms" and a tiny open-set configuration shared by the open-set tests."""

from __future__ import annotations

import numpy as np

SR = 16000
CLIP_S = 1.0
# Tiny network and frontend: 1 s clips, 32 Mel bins, 61 frames, ~2 k parameters.
TINY = {
    "clip_s": CLIP_S,
    "n_mels": 32,
    "win_samples": 512,
    "hop_samples": 256,
    "dim": 16,
    "channels": (4, 8),
    "blocks_per_stage": 1,
    "epochs": 60,
    "batch_size": 8,
    "lr": 3e-3,
    "device": "cpu",
    "threads": 1,
}


def alarm(kind: str, rng: np.random.Generator) -> np.ndarray:
    """1 s of a beep pattern (random phase of the cycle, +-2 % pitch) in light noise."""
    t = np.arange(int(CLIP_S * SR)) / SR
    p = rng.uniform(0.98, 1.02)
    offset = rng.uniform(0, 1)
    if kind == "fast_beeps":  # 1 kHz, 0.1 s on / 0.1 s off
        x = np.sin(2 * np.pi * 1000 * p * t) * (((t + offset) % 0.2) < 0.1)
    elif kind == "slow_beeps":  # 2.5 kHz, 0.3 s on / 0.2 s off
        x = np.sin(2 * np.pi * 2500 * p * t) * (((t + offset) % 0.5) < 0.3)
    elif kind == "warble":  # switching between 600 and 900 Hz every 50 ms
        f = np.where(((t + offset) % 0.1) < 0.05, 600.0, 900.0) * p
        x = np.sin(2 * np.pi * np.cumsum(f) / SR)
    elif kind == "noise":  # unknown: a burst of low-passed noise
        x = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
        x *= ((t > offset * 0.5) & (t < offset * 0.5 + 0.4)).astype(float)
    else:  # pragma: no cover
        raise ValueError(kind)
    x = x + 0.01 * rng.standard_normal(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


KNOWN = ("fast_beeps", "slow_beeps", "warble")


def clips(kind: str, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [alarm(kind, rng) for _ in range(n)]
