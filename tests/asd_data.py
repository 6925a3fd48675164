"""A tiny DCASE2023-layout data set of tones for the ASD CLI and recipe smoke tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _clip(rng: np.random.Generator, f0: float, n: int, fault: bool) -> np.ndarray:
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2 * f0 * t)
    x = x + 0.02 * rng.normal(size=n)
    if fault:  # a bearing-like click train and a whine
        x = x + 0.15 * np.sin(2 * np.pi * 3.3 * f0 * t)
        x[:: SR // 20] += 0.5
    return x.astype(np.float32)


def make_dcase2023(
    root: Path,
    machines: tuple[str, ...] = ("ToyPump", "my_fan"),
    n_train: int = 12,
    n_target: int = 2,
    n_test: int = 3,
    clip_s: float = 1.0,
    seed: int = 0,
) -> Path:
    """``root/dev_data/raw/<machine>/{train,test}/section_00_...wav`` + ``attributes_00.csv``."""
    rng = np.random.default_rng(seed)
    n = int(clip_s * SR)
    base = root / "dev_data" / "raw"
    for m, machine in enumerate(machines):
        f0 = 300.0 * (m + 1)
        rows = []
        mdir = base / machine
        for split in ("train", "test"):
            (mdir / split).mkdir(parents=True, exist_ok=True)
        k = 0
        for i in range(n_train + n_target):
            dom = "source" if i < n_train else "target"
            speed = 1.0 if dom == "source" else 1.15
            name = f"section_00_{dom}_train_normal_{i:04d}_speed_{speed}.wav"
            sf.write(mdir / "train" / name, _clip(rng, f0 * speed, n, False), SR, "PCM_16")
            rows.append([f"{machine}/train/{name}", "speed", speed])
        for dom, speed in (("source", 1.0), ("target", 1.15)):
            for label in ("normal", "anomaly"):
                for _ in range(n_test):
                    name = f"section_00_{dom}_test_{label}_{k:04d}_speed_{speed}.wav"
                    k += 1
                    y = _clip(rng, f0 * speed, n, label == "anomaly")
                    sf.write(mdir / "test" / name, y, SR, "PCM_16")
                    rows.append([f"{machine}/test/{name}", "speed", speed])
        with open(mdir / "attributes_00.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["file_name", "d1p", "d1v"])
            w.writerows(rows)
    return root
