"""Generated background sounds: the built-in "no speech" material for training keyword embeddings.

The TACos model learns an extra "no speech" class from background audio (Diss. 6.3.4 uses the
SpeechCommands background recordings). So that enrollment works with nothing but the shots,
kwsos generates its own: white, pink and brown noise, mains hum, drifting room tone, near-silence
and digital silence, at levels from quiet to loud. Users with recordings of their environment
pass them with ``--background DIR``; both are mixed.
"""

from __future__ import annotations

import numpy as np

from kwsos.audio import SAMPLE_RATE

__all__ = ["colored_noise", "mains_hum", "room_tone", "background_noise", "builtin_backgrounds"]


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f**exponent power spectrum (0: white, 1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    spectrum[freqs < 20] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


def mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS 50 Hz hum with decaying harmonics and a slow amplitude wobble."""
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6))
    hum *= 1 + 0.2 * np.sin(2 * np.pi * 0.07 * t + rng.uniform(0, 2 * np.pi))
    return hum / np.sqrt(np.mean(hum**2))


def room_tone(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS low-passed noise whose level drifts slowly (ventilation, distant traffic)."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, 400, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    tone = sosfilt(sos, rng.standard_normal(n))
    control = rng.standard_normal(int(n / SAMPLE_RATE) + 2)
    envelope = np.interp(np.arange(n) / SAMPLE_RATE, np.arange(len(control)), control)
    tone *= 10 ** (0.25 * envelope)
    return tone / np.sqrt(np.mean(tone**2))


def background_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS mix of pink noise, brown noise, mains hum and room tone."""
    noise = (
        1.0 * colored_noise(rng, n, 1.0)
        + 0.7 * colored_noise(rng, n, 2.0)
        + 0.25 * mains_hum(rng, n)
        + 0.6 * room_tone(rng, n)
    )
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def builtin_backgrounds(
    rng: np.random.Generator, *, n_clips: int = 24, clip_s: float = 1.0
) -> list[np.ndarray]:
    """``n_clips`` generated background clips (16 kHz, float32) covering the kinds listed in the
    module docstring, each at a random RMS level between -55 and -15 dB full scale."""
    n = int(clip_s * SAMPLE_RATE)
    kinds = ("white", "pink", "brown", "hum", "room", "mix", "near_silence", "silence")
    clips = []
    for i in range(n_clips):
        kind = kinds[i % len(kinds)]
        if kind == "silence":
            clips.append(np.zeros(n, np.float32))
            continue
        if kind == "white":
            x = rng.standard_normal(n)
        elif kind in ("pink", "brown"):
            x = colored_noise(rng, n, 1.0 if kind == "pink" else 2.0)
        elif kind == "hum":
            x = mains_hum(rng, n) + 0.1 * rng.standard_normal(n)
        elif kind == "room":
            x = room_tone(rng, n)
        else:
            x = background_noise(rng, n)
        level_db = -80.0 if kind == "near_silence" else rng.uniform(-55.0, -15.0)
        clips.append((x / np.sqrt(np.mean(x**2)) * 10 ** (level_db / 20)).astype(np.float32))
    return clips
