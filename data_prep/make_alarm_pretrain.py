"""Procedurally generated alarm-like sounds for pretraining the open-set clip network.

A few-shot classifier trained on one recording per alarm has seen nothing of how *another*
device of the same alarm sounds (other pitch, tempo, loudspeaker, room). This script makes a
large set of **random** sound classes, each played by several random devices in random rooms,
so that a network can first learn which differences do not change the class; the few-shot
classifier (:class:`kwsos.tasks.openset.OpenSetClassifier`, ``init``) then starts from that network.

It shares no code and no class definitions with the benchmark generator
(:mod:`data_prep.make_alarm_bench`): a class here is a random draw of a generic recipe, never
one of the benchmark's alarm types or sound files.

* **Class** (one random draw per class): a *source* -- beep pattern, two-tone, melody, frequency
  sweep (sine / saw / triangle), warble, chime (decaying inharmonic partials) or noise-burst
  pattern -- with random carrier frequency (250-5000 Hz, log-uniform), timbre (harmonic
  amplitudes) and cadence (1-6 events, their on and off times, a pause).
* **Device** (4 per class): pitch and tempo factors (independent, 0.88-1.12), a loudspeaker
  colouring (random high-pass, low-pass and a peaking resonance), a level.
* **Clip** (4 per device): a random start in the cadence, a small pitch jitter, a room (an
  exponentially decaying noise tail, RT60 0.1-0.7 s) and room noise (coloured noise at 5-30 dB
  SNR).

The output is one ``.npz`` with the log-Mel clips of the open-set classifier's frontend
(``features`` (n, frames, mels) float16, ``labels`` (n,) int, ``config``: the frontend), not
audio: 9600 clips of 4 s would be 1.2 GB of WAV.

Usage::

    python -m data_prep.make_alarm_pretrain --out data/alarm_pretrain/features.npz \\
        --classes 600 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from kwsos.io import atomic_output

__all__ = ["make_alarm_pretrain", "render_class"]

log = logging.getLogger(__name__)

SR = 16_000
CLIP_S = 4.0
N = int(SR * CLIP_S)
DEVICES = 4
CLIPS_PER_DEVICE = 4
SOURCES = ("beeps", "two_tone", "melody", "sweep", "warble", "chime", "noise_bursts")


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _timbre(rng: np.random.Generator) -> np.ndarray:
    """Harmonic amplitudes: pure, piezo-like (few partials) or square-like."""
    kind = rng.integers(3)
    if kind == 0:
        return np.array([1.0])
    if kind == 1:
        return np.concatenate([[1.0], rng.uniform(0.05, 0.5, int(rng.integers(1, 4)))])
    k = np.arange(1, 8)
    return np.where(k % 2 == 1, 1.0 / k, rng.uniform(0, 0.1, 7))


def _cadence(rng: np.random.Generator) -> list[tuple[float, float]]:
    """(on, off) seconds of the events of one cycle; the last off is the pause."""
    n = int(rng.integers(1, 7))
    on = _loguniform(rng, 0.05, 0.8)
    off = _loguniform(rng, 0.05, 0.6)
    pattern = [(on * rng.uniform(0.8, 1.25), off) for _ in range(n)]
    pause = _loguniform(rng, 0.1, 2.5)
    pattern[-1] = (pattern[-1][0], pause)
    return pattern


def _recipe(rng: np.random.Generator) -> dict:
    """The random constants of one class."""
    source = SOURCES[int(rng.integers(len(SOURCES)))]
    f0 = _loguniform(rng, 250, 5000)
    r = {
        "source": source,
        "f0": f0,
        "timbre": _timbre(rng),
        "cadence": _cadence(rng),
        "continuous": bool(rng.random() < 0.25),  # no gating (sirens, whistles)
    }
    if source == "two_tone":
        r["ratio"] = rng.uniform(0.6, 0.92)
    elif source == "melody":
        n = int(rng.integers(3, 9))
        r["notes"] = 2.0 ** (rng.integers(-7, 8, n) / 12)
        r["note_s"] = rng.uniform(0.08, 0.4)
    elif source == "sweep":
        r["shape"] = int(rng.integers(3))
        r["depth"] = rng.uniform(0.1, 0.6)
        r["period"] = _loguniform(rng, 0.1, 5.0)
    elif source == "warble":
        r["ratio"] = rng.uniform(0.8, 0.97)
        r["rate"] = rng.uniform(3, 25)
    elif source == "chime":
        r["partials"] = np.concatenate([[1.0], np.sort(rng.uniform(1.5, 5.0, 3))])
        r["decay"] = rng.uniform(0.05, 0.6)
        r["rate"] = rng.uniform(1, 12)
    elif source == "noise_bursts":
        r["bandwidth"] = rng.uniform(0.2, 1.5)
    return r


def _gate(t: np.ndarray, cadence: list[tuple[float, float]], ramp: float = 0.005) -> np.ndarray:
    """Envelope of the cadence repeated over ``t`` (seconds), with short ramps."""
    period = sum(on + off for on, off in cadence)
    tt = t % period
    env = np.zeros_like(t)
    start = 0.0
    for on, off in cadence:
        inside = (tt >= start) & (tt < start + on)
        a = np.minimum((tt - start) / ramp, 1.0)
        b = np.minimum((start + on - tt) / ramp, 1.0)
        env = np.where(inside, np.minimum(a, b), env)
        start += on + off
    return env


def _tone(freq: np.ndarray, timbre: np.ndarray) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(freq) / SR
    out = np.zeros_like(phase)
    for k, a in enumerate(timbre, 1):
        mask = k * freq < 0.45 * SR
        out += a * np.sin(k * phase) * mask
    return out


def _source(
    r: dict, pitch: float, tempo: float, start: float, rng: np.random.Generator
) -> np.ndarray:
    """The dry signal of a class as one device plays it, 4 s from ``start`` seconds into the
    pattern."""
    t = np.arange(N) / SR
    tp = t / tempo + start  # pattern time
    f0 = r["f0"] * pitch
    s = r["source"]
    if s == "beeps":
        x = _tone(np.full(N, f0), r["timbre"])
    elif s == "two_tone":
        gate = _gate(tp, r["cadence"])
        period = sum(on + off for on, off in r["cadence"])
        second = (tp % (2 * period)) >= period
        x = _tone(np.where(second, f0 * r["ratio"], f0), r["timbre"])
        return x * gate
    elif s == "melody":
        idx = (tp / r["note_s"]).astype(int) % len(r["notes"])
        x = _tone(f0 * r["notes"][idx], r["timbre"])
    elif s == "sweep":
        ph = (tp / r["period"]) % 1.0
        wave = (np.sin(2 * np.pi * ph), 2 * ph - 1, 1 - 4 * np.abs(ph - 0.5))[r["shape"]]
        x = _tone(f0 * (1 + r["depth"] * wave), r["timbre"])
    elif s == "warble":
        sw = np.tanh(4 * np.sin(2 * np.pi * r["rate"] * tp))
        x = _tone(f0 * (1 + (r["ratio"] - 1) * (sw + 1) / 2), r["timbre"])
    elif s == "chime":
        strike_t = (tp * r["rate"]) % 1.0 / r["rate"]
        env = np.exp(-strike_t / r["decay"])
        x = sum(
            a * np.sin(2 * np.pi * f0 * p * t + rng.uniform(0, 6.3))
            for p, a in zip(r["partials"], (1.0, 0.6, 0.4, 0.25), strict=True)
        )
        x = x * env
    else:  # noise_bursts
        lo = max(60.0, f0 / (1 + r["bandwidth"]))
        hi = min(0.45 * SR, f0 * (1 + r["bandwidth"]))
        x = sosfilt(butter(2, [lo, max(hi, lo * 1.2)], "bandpass", fs=SR, output="sos"),
                    rng.normal(0, 1, N))  # fmt: skip
    if not r["continuous"]:
        x = x * _gate(tp, r["cadence"])
    return x


def _colouring(rng: np.random.Generator) -> np.ndarray:
    hp = butter(2, _loguniform(rng, 80, 900), "highpass", fs=SR, output="sos")
    lp = butter(2, rng.uniform(4000, 7900), "lowpass", fs=SR, output="sos")
    f0, g, q = _loguniform(rng, 500, 6000), rng.uniform(-9, 9), rng.uniform(0.5, 3.0)
    a = 10 ** (g / 40)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    peak = np.concatenate([b / den[0], den / den[0]])[None, :]
    return np.vstack([hp, lp, peak])


def _room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.1, 0.7)
    n = int(rt60 * SR)
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / SR / rt60)
    tail *= np.sqrt(10 ** (-rng.uniform(-2, 15) / 10) / np.sum(tail**2))
    ir = np.concatenate([[1.0], np.zeros(int(rng.uniform(0.001, 0.01) * SR)), tail])
    return fftconvolve(x, ir)[: len(x)]


def _noise(rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(0, 1, N))
    f = np.maximum(np.fft.rfftfreq(N, 1 / SR), 20.0)
    x = np.fft.irfft(spec * f ** (-rng.uniform(0.0, 2.0) / 2), N)
    return x / x.std()


def render_class(seed: int, index: int) -> list[np.ndarray]:
    """The ``DEVICES x CLIPS_PER_DEVICE`` clips (float32, 16 kHz, 4 s) of class ``index``."""
    r = _recipe(np.random.default_rng([seed, index, 0]))
    clips = []
    for d in range(DEVICES):
        dev = np.random.default_rng([seed, index, 1, d])
        pitch, tempo = dev.uniform(0.88, 1.12), dev.uniform(0.88, 1.12)
        sos = _colouring(dev)
        for c in range(CLIPS_PER_DEVICE):
            rng = np.random.default_rng([seed, index, 2, d, c])
            x = _source(r, pitch * rng.uniform(0.99, 1.01), tempo, rng.uniform(0, 10), rng)
            x = _room(sosfilt(sos, x), rng)
            active = x[np.abs(x) > 0.05 * np.abs(x).max()]
            power = float(np.mean(active**2)) if active.size else float(np.mean(x**2))
            if not power > 0:
                x, power = _noise(rng), 1.0
            snr = rng.uniform(5, 30)
            x = x / np.sqrt(power) + _noise(rng) * 10 ** (-snr / 20)
            clips.append((x * rng.uniform(0.2, 0.9) / np.abs(x).max()).astype(np.float32))
    return clips


def _class_features(seed: int, k: int) -> np.ndarray:
    from kwsos.tasks.openset import OpenSetClassifier

    # the classifier's frontend: the features it trains on
    return OpenSetClassifier().features(render_class(seed, k)).astype(np.float16)


def make_alarm_pretrain(out: Path, *, classes: int = 600, seed: int = 0, jobs: int = 1) -> Path:
    """Write the log-Mel clips of ``classes`` random classes to ``out`` (``.npz``), rendering
    them in ``jobs`` processes (the result does not depend on ``jobs``)."""
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import Progress

    from kwsos.tasks.openset import OpenSetClassifier

    clf = OpenSetClassifier()
    feats, labels = [], []
    t0 = time.perf_counter()
    with Progress(transient=True) as bar, ProcessPoolExecutor(max(1, jobs)) as pool:
        task = bar.add_task("rendering classes", total=classes)
        results = pool.map(_class_features, [seed] * classes, range(classes), chunksize=4)
        for k, x in enumerate(results):
            feats.append(x)
            labels += [k] * len(x)
            bar.advance(task)
    front = clf.config.frontend.to_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            features=np.concatenate(feats),
            labels=np.asarray(labels),
            config=json.dumps({**front, "classes": classes, "seed": seed}),
        )
    log.info("%d clips of %d classes in %.0f s -> %s", len(labels), classes,
             time.perf_counter() - t0, out)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/alarm_pretrain/features.npz"))
    p.add_argument("--classes", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="processes rendering classes")
    args = p.parse_args(argv)
    if args.classes < 2:
        p.error(
            f"--classes must be at least 2 (a network learns to tell classes apart), got {args.classes}"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    make_alarm_pretrain(args.out, classes=args.classes, seed=args.seed, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
