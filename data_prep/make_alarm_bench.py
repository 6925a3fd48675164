"""Generate a local few-shot open-set alarm benchmark with the layout of Naranjo-Alcazar et al.

The real domestic alarm dataset (Diss. 6.2.1) cannot be downloaded here, so this script builds
one with the same structure from local material:

* 24 known alarm classes: 15 synthesised parametrically (smoke alarm T3 and CO alarm T4
  patterns, two-tone doorbell, UK and US phone-ring cadences, alarm-clock and microwave beeps,
  a mechanical timer bell, kettle whistle, wail / yelp / hi-lo sirens, reversing beeper,
  intruder-alarm warble, an appliance end-of-cycle tune) and 9 real alarm and ring tones of the
  Debian sound themes ``sound-theme-freedesktop``, ``oxygen-sounds`` and ``lomiri-sounds``;
* 10 unknown classes of real household sounds from the Debian packages ``scratch`` (MIT Scratch
  media library) and ``tuxpaint-stamps-default``: cough, clapping, door slam, keyboard typing,
  music, footsteps, running water, vacuum cleaner, washing machine, dog bark.

Each class has 40 clips of 4 s at 16 kHz, made by "devices" (4 clips each): a device fixes the
pitch, timing and loudspeaker / microphone colouring of a class; every clip then gets its own
start time, room reverberation, level and room noise (10-30 dB SNR). The audio packages are
fetched with ``apt-get download`` and unpacked with ``dpkg-deb`` at prepare time (never
committed; their licences are recorded in ``manifest.json``). If a package cannot be had, its
classes are replaced by reserve classes (other packages' sounds, or synthetic ones for the
known set), and the replacement is recorded.

Layout (as the real dataset, so :mod:`data_prep.prepare_alarm_osc` reads both)::

    <out>/data/pattern_sounds/<class>/<class>_NN.wav
    <out>/data/unwanted_sounds/<class>/<class>_NN.wav
    <out>/data/meta/csv/few_shot_k_<1|2|4>_openness_<0|50|100>.csv   filename,target,fold
    <out>/manifest.json                                           sources, licences, settings

Usage::

    python -m data_prep.make_alarm_bench --out data/alarm_bench --seed 0
    python -m data_prep.prepare_alarm_osc data/alarm_bench --out data/alarm_bench/prepared

Deterministic for a seed (each class draws from its own seeded generator, so a ``--classes``
subset gives the same clips for those classes); a second run with the same options finds
``manifest.json`` and returns at once.
"""

from __future__ import annotations

import argparse
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from data_prep.alarm_common import (
    CLIP_S,
    CLIPS_PER_CLASS,
    CLIPS_PER_DEVICE,
    SR,
    N,
    Source,
    _active_power,
    _fetch_package,  # noqa: F401 (the tests reach it here)
    _load,
    _loop,
    _Package,
    _peaking,
    _place,
    _speed,
    _trim,
    add_common_args,
    check_clips_per_class,
    class_entry,
    class_folder,
    clear_clips,
    common_kwargs,
    fetch_packages,
    packages_entry,
    print_summary,
    up_to_date,
    wanted_paths,
    write_clip,
    write_manifest,
    write_meta,
)

__all__ = [
    "CLASSES",
    "KNOWN",
    "RESERVE_KNOWN",
    "RESERVE_UNKNOWN",
    "UNKNOWN",
    "ClassSpec",
    "Source",
    "make_alarm_bench",
]

logger = logging.getLogger(__name__)

VERSION = 1
SNR_DB = (10.0, 30.0)

# --------------------------------------------------------------------------------------------
# Sources (Debian packages) and their licences, as stated in each package's copyright file
# --------------------------------------------------------------------------------------------

_FD = "usr/share/sounds/freedesktop/stereo/"
_OX = "usr/share/sounds/"
_LO = "usr/share/sounds/lomiri/"
_SC = "usr/share/scratch/Media/Sounds/"
_TP = "usr/share/tuxpaint/stamps/"
_SCRATCH_MEDIA = ("CC-BY-SA-3.0", "2011 Massachusetts Institute of Technology (Scratch media)")
_TUXPAINT = ("GPL-2", "2002-2022 Bill Kendrick and the Tux Paint contributors")
_OXYGEN = ("LGPL-3.0-or-later", "2008 Nuno Filipe Povoa")
_LOMIRI = ("CC-BY-SA-3.0", "2013 Canonical Ltd.")


def _src(package: str, paths: Sequence[str], lic: tuple[str, str]) -> Source:
    return Source(package, tuple(paths), lic[0], lic[1])


@dataclass(frozen=True)
class ClassSpec:
    """One benchmark class.

    ``kind``: ``"synth"`` (parametric generator), ``"tone"`` (a real alarm / ring tone repeated
    like a device would), ``"events"`` (1..n short real sounds at random times), ``"train"``
    (one burst of a short sound repeated quickly, e.g. clapping) or ``"excerpt"`` (a random 4 s
    stretch of a looped real recording).
    """

    name: str
    known: bool
    kind: str
    sources: tuple[Source, ...] = ()
    synth: Callable[[np.random.Generator, np.random.Generator], np.ndarray] | None = None
    events: tuple[int, int] = (1, 3)
    description: str = ""


# --------------------------------------------------------------------------------------------
# Synthesis primitives (all at 16 kHz, 4 s)
# --------------------------------------------------------------------------------------------

_T = np.arange(N) / SR


def _tone(freq: np.ndarray | float, amps: Sequence[float], phase0: float = 0.0) -> np.ndarray:
    """Harmonic tone with instantaneous frequency ``freq`` (Hz); harmonics above 7.6 kHz left out."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (N,))
    phase = 2 * np.pi * np.cumsum(f) / SR + phase0
    fmax = float(f.max())
    out = np.zeros(N)
    for k, a in enumerate(amps, start=1):
        if a and k * fmax < 7600.0:
            out += a * np.sin(k * phase)
    return out


_PIEZO = (1.0, 0.12, 0.45, 0.08, 0.25, 0.05, 0.12)  # square-ish with some even distortion
_SQUARE = (1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14)
_HORN = (1.0, 0.6, 0.45, 0.3, 0.2, 0.12)


def _smooth(env: np.ndarray, ramp_s: float = 0.004) -> np.ndarray:
    """Raised-cosine edges so that gated tones do not click."""
    n = max(3, int(ramp_s * SR) | 1)
    w = np.hanning(n + 2)[1:-1]
    return fftconvolve(env, w / w.sum(), mode="same")


def _cadence(pattern: Sequence[tuple[float, float]], start_s: float) -> np.ndarray:
    """Periodic on/off envelope; ``pattern`` is a list of (on_s, off_s), shifted by ``start_s``."""
    period = sum(on + off for on, off in pattern)
    t = (_T + start_s) % period
    env = np.zeros(N)
    pos = 0.0
    for on, off in pattern:
        env[(t >= pos) & (t < pos + on)] = 1.0
        pos += on + off
    return _smooth(env)


def _gate(onsets: Sequence[float], durations: Sequence[float]) -> np.ndarray:
    env = np.zeros(N)
    for t0, d in zip(onsets, durations, strict=True):
        a, b = int(max(t0, 0) * SR), int(min(t0 + d, CLIP_S) * SR)
        env[a:b] = 1.0
    return _smooth(env)


def _strike(
    t0: float,
    f0: float,
    ratios: Sequence[float],
    amps: Sequence[float],
    tau: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A struck bar / bell: decaying inharmonic partials from ``t0``; higher partials die faster."""
    out = np.zeros(N)
    a = max(0, int(t0 * SR))
    if a >= N:
        return out
    t = _T[: min(N - a, int(8 * tau * SR))]  # 8 time constants: below -69 dB
    for r, amp in zip(ratios, amps, strict=True):
        f = f0 * r
        if f < 7600:
            decay = np.exp(-t * r**0.7 / tau)
            out[a : a + len(t)] += amp * decay * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
    return out


def _jitter(rng: np.random.Generator, depth: float = 0.002) -> np.ndarray:
    """Slow random frequency wobble (factor around 1) of a cheap oscillator."""
    return 1.0 + depth * np.sin(2 * np.pi * rng.uniform(0.5, 4.0) * _T + rng.uniform(0, 6.3))


# --------------------------------------------------------------------------------------------
# Parametric alarm classes. ``dev`` draws the device's constants (same for all its clips),
# ``clip`` the clip's own randomness (start time, ...).
# --------------------------------------------------------------------------------------------


def _smoke_t3(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Smoke alarm, ANSI S3.41 temporal-3: three 0.5 s beeps, 0.5 s apart, then 1.5 s off."""
    f, tempo = dev.uniform(2900, 3500), dev.uniform(0.9, 1.1)
    pattern = [(0.5 * tempo, 0.5 * tempo)] * 2 + [(0.5 * tempo, 1.5 * tempo)]
    return _tone(f * _jitter(clip), _PIEZO) * _cadence(pattern, clip.uniform(0, 4 * tempo))


def _co_t4(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """CO alarm, temporal-4: four 0.1 s beeps, 0.1 s apart, then 5 s off (one burst per clip)."""
    f, tempo = dev.uniform(2900, 3500), dev.uniform(0.85, 1.15)
    pattern = [(0.1 * tempo, 0.1 * tempo)] * 3 + [(0.1 * tempo, 5.0)]
    period = 0.8 * tempo + 5.0
    start = period - clip.uniform(0.1, 2.6)  # the burst starts 0.1-2.6 s into the clip
    return _tone(f * _jitter(clip), _PIEZO) * _cadence(pattern, start)


def _doorbell(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Two-tone "ding-dong" chime (struck bars, a major third apart), sometimes pressed twice."""
    f_hi = dev.uniform(600, 720)
    f_lo = f_hi * dev.uniform(0.78, 0.82)
    tau, gap = dev.uniform(0.5, 1.0), dev.uniform(0.45, 0.7)
    ratios, amps = (1.0, 2.76, 5.40), (1.0, 0.35, 0.15)
    t0 = clip.uniform(0.05, 1.0)
    x = _strike(t0, f_hi, ratios, amps, tau, clip) + _strike(
        t0 + gap, f_lo, ratios, amps, tau, clip
    )
    if clip.random() < 0.35:
        t1 = t0 + gap + dev.uniform(1.2, 1.6)
        x += _strike(t1, f_hi, ratios, amps, tau, clip) + _strike(
            t1 + gap, f_lo, ratios, amps, tau, clip
        )
    return x


def _phone_uk(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """UK ring cadence: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2 s off."""
    p, tempo = dev.uniform(0.97, 1.03), dev.uniform(0.92, 1.08)
    pattern = [(0.4 * tempo, 0.2 * tempo), (0.4 * tempo, 2.0 * tempo)]
    tone = _tone(400 * p, (1.0, 0.1, 0.05)) + _tone(450 * p, (1.0, 0.1, 0.05), 1.0)
    return tone * _cadence(pattern, clip.uniform(0, 3.0 * tempo))


def _phone_us(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """North-American ring cadence: 440 + 480 Hz, 2 s on, 4 s off (the ring falls in the clip)."""
    p, tempo = dev.uniform(0.97, 1.03), dev.uniform(0.9, 1.1)
    pattern = [(2.0 * tempo, 4.0 * tempo)]
    start = (6.0 * tempo - clip.uniform(-1.2, 1.8)) % (6.0 * tempo)
    tone = _tone(440 * p, (1.0, 0.15, 0.05)) + _tone(480 * p, (1.0, 0.15, 0.05), 2.0)
    return tone * _cadence(pattern, start)


def _alarm_clock(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Digital alarm clock: groups of four short beeps every second."""
    f, tempo = dev.uniform(3600, 4400), dev.uniform(0.9, 1.1)
    b = 0.07 * tempo
    pattern = [(b, b)] * 3 + [(b, 1.0 * tempo - 7 * b)]
    return _tone(f * _jitter(clip), _PIEZO) * _cadence(pattern, clip.uniform(0, tempo))


def _microwave(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Microwave "done": three to five long square-wave beeps, then silence."""
    f, n_beeps = dev.uniform(1800, 2600), int(dev.integers(3, 6))
    on, off = dev.uniform(0.25, 0.5), dev.uniform(0.2, 0.45)
    t0 = clip.uniform(0.05, max(0.1, CLIP_S - n_beeps * (on + off)))
    onsets = [t0 + k * (on + off) for k in range(n_beeps)]
    return _tone(f, _SQUARE) * _gate(onsets, [on] * n_beeps)


def _timer_bell(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Mechanical kitchen timer: a small bell struck 14-22 times a second for ~2 s."""
    rate, dur = dev.uniform(14, 22), dev.uniform(1.5, 2.8)
    f0, tau = dev.uniform(2000, 2800), dev.uniform(0.08, 0.16)
    t0 = clip.uniform(0.05, CLIP_S - dur - 0.05)
    x = np.zeros(N)
    for k in range(int(dur * rate)):
        t = t0 + k / rate + clip.normal(0, 0.003)
        x += clip.uniform(0.7, 1.0) * _strike(t, f0, (1.0, 2.32, 4.25), (1.0, 0.5, 0.25), tau, clip)
    return x


def _kettle(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Whistling kettle: a breathy whistle gliding up, growing louder."""
    f0 = dev.uniform(1500, 1900)
    f1 = f0 * dev.uniform(1.1, 1.3)
    t_on = clip.uniform(0.0, 1.5)
    t = np.clip(_T - t_on, 0, None)
    flutter = np.cumsum(clip.normal(0, 1, N))
    flutter = (flutter - np.linspace(flutter[0], flutter[-1], N)) / (np.abs(flutter).max() + 1e-9)
    f = f0 + (f1 - f0) * (1 - np.exp(-t / dev.uniform(0.8, 2.0))) + 25 * flutter
    breath = sosfilt(
        butter(2, [f0 * 0.9, f1 * 1.15], "bandpass", fs=SR, output="sos"), clip.normal(0, 1, N)
    )
    breath /= np.abs(breath).max() + 1e-9
    amp = np.clip(t / dev.uniform(0.3, 1.0), 0, 1) ** 2 * (_T >= t_on)
    return amp * (_tone(f, (1.0, 0.25, 0.08)) + dev.uniform(0.15, 0.4) * breath)


def _siren_wail(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Wail siren: a slow sinusoidal sweep (3-5 s period)."""
    fc, depth, period = dev.uniform(850, 1100), dev.uniform(0.3, 0.45), dev.uniform(3.0, 5.0)
    f = fc * (1 + depth * np.sin(2 * np.pi * _T / period + clip.uniform(0, 6.3)))
    return _tone(f, _HORN)


def _siren_yelp(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Yelp siren: fast rising sweeps, 0.25-0.4 s each."""
    lo, period = dev.uniform(650, 800), dev.uniform(0.25, 0.4)
    hi = lo * dev.uniform(2.0, 2.4)
    frac = (_T / period + clip.uniform(0, 1)) % 1.0
    return _tone(lo + (hi - lo) * frac, _HORN)


def _siren_hilo(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Two-tone (hi-lo) siren: alternating tones a fourth apart, 0.4-0.65 s each."""
    f1, half = dev.uniform(420, 480), dev.uniform(0.4, 0.65)
    f2 = f1 * dev.uniform(1.30, 1.36)
    high = _cadence([(half, half)], clip.uniform(0, 2 * half))
    return _tone(f1 + (f2 - f1) * high, _SQUARE)


def _reversing(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Reversing beeper: a harsh 1-1.3 kHz beep, on and off at the same length."""
    f, half = dev.uniform(1000, 1300), dev.uniform(0.4, 0.6)
    x = _tone(f, _SQUARE) * _cadence([(half, half)], clip.uniform(0, 2 * half))
    return np.tanh(2.5 * x)


def _intruder(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Intruder-alarm warble: a piezo switching quickly between two pitches."""
    fc, df, rate = dev.uniform(2700, 3200), dev.uniform(200, 400), dev.uniform(6, 12)
    sw = np.tanh(4 * np.sin(2 * np.pi * rate * _T + clip.uniform(0, 6.3)))
    return _tone(fc + df * sw, _PIEZO)


_TUNE = (0, 4, 7, 12, 11, 12, 7)  # semitones of the end-of-cycle tune


def _appliance_tune(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Washing machine / dishwasher "finished" tune on a piezo beeper."""
    base, note = dev.uniform(1000, 1500), dev.uniform(0.15, 0.24)
    t0 = clip.uniform(0.05, CLIP_S - len(_TUNE) * note - 0.3)
    x = np.zeros(N)
    for k, semi in enumerate(_TUNE):
        f = base * 2 ** (semi / 12)
        a, b = int((t0 + k * note) * SR), int((t0 + (k + 0.9) * note) * SR)
        seg = _T[: b - a]
        x[a:b] += np.exp(-seg / (0.6 * note)) * sum(
            amp * np.sin(2 * np.pi * h * f * seg) for h, amp in ((1, 1.0), (3, 0.3)) if h * f < 7600
        )
    return _smooth(x, 0.002)


def _door_buzzer(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Electromechanical door buzzer (reserve class): a 100-130 Hz buzz, pressed twice."""
    f = dev.uniform(100, 130)
    on1, on2, gap = clip.uniform(0.4, 1.2), clip.uniform(0.3, 1.0), clip.uniform(0.2, 0.6)
    t0 = clip.uniform(0.05, max(0.1, CLIP_S - on1 - on2 - gap - 0.05))
    return np.tanh(3 * _tone(f, [1 / k for k in range(1, 40)])) * _gate(
        [t0, t0 + on1 + gap], [on1, on2]
    )


def _phone_trill(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Electronic phone trill (reserve class): 16-20 Hz switching between two tones."""
    f1, rate = dev.uniform(900, 1100), dev.uniform(16, 20)
    f2 = f1 * dev.uniform(1.2, 1.3)
    sw = (np.sin(2 * np.pi * rate * _T) > 0).astype(float)
    return _tone(f1 + (f2 - f1) * sw, _SQUARE) * _cadence([(1.0, 2.0)], clip.uniform(0, 3.0))


def _fridge_beep(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Fridge door-open alarm (reserve class): a pair of short beeps every 1.5-2.5 s."""
    f, b, period = dev.uniform(2400, 3000), dev.uniform(0.08, 0.14), dev.uniform(1.5, 2.5)
    pattern = [(b, b), (b, period - 3 * b)]
    return _tone(f, _SQUARE) * _cadence(pattern, clip.uniform(0, period))


def _security_chime(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Door-entry chime (reserve class): three descending struck tones."""
    f0, step, tau = dev.uniform(750, 900), dev.uniform(0.3, 0.45), dev.uniform(0.4, 0.8)
    t0 = clip.uniform(0.05, 1.5)
    return sum(
        _strike(t0 + k * step, f0 * r, (1.0, 2.76), (1.0, 0.3), tau, clip)
        for k, r in enumerate((1.0, 0.84, 0.667))
    )


def _battery_chirp(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Smoke-alarm low-battery chirp (reserve class): one or two very short chirps."""
    f, d = dev.uniform(3000, 3600), dev.uniform(0.03, 0.07)
    n = int(clip.integers(1, 3))
    onsets = np.sort(clip.uniform(0.1, CLIP_S - 0.2, n))
    return _tone(f, _PIEZO) * _gate(list(onsets), [d] * n)


def _gas_alarm(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Gas alarm (reserve class): fast pulsed beeps, each gliding slightly upwards."""
    f, on, off = dev.uniform(2600, 3200), dev.uniform(0.1, 0.18), dev.uniform(0.06, 0.12)
    start = clip.uniform(0, on + off)
    frac = ((_T + start) % (on + off)) / on
    return _tone(f * (1 + 0.08 * np.clip(frac, 0, 1)), _PIEZO) * _cadence([(on, off)], start)


def _cuckoo(dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
    """Cuckoo clock (reserve class): two soft falling notes, repeated one to three times."""
    f, note, period = dev.uniform(600, 750), dev.uniform(0.2, 0.3), dev.uniform(0.8, 1.0)
    n = int(clip.integers(1, 4))
    t0 = clip.uniform(0.05, max(0.1, CLIP_S - n * period))
    x = np.zeros(N)
    for k in range(n):
        for j, ratio in enumerate((1.0, 0.8)):
            a = int((t0 + k * period + j * (note + 0.05)) * SR)
            seg = _T[: min(int(note * SR), N - a)]
            env = np.sin(np.pi * seg / note) ** 0.5
            x[a : a + len(seg)] += env * (
                np.sin(2 * np.pi * f * ratio * seg) + 0.2 * np.sin(4 * np.pi * f * ratio * seg)
            )
    return x


def _synth(name: str, fn: Callable, description: str) -> ClassSpec:
    return ClassSpec(name, True, "synth", synth=fn, description=description)


def _doc(fn: Callable) -> str:
    return (fn.__doc__ or "").strip().split("\n")[0]


def _theme(name: str, package: str, path: str, lic: tuple[str, str], what: str) -> ClassSpec:
    """A known class made of one real alarm / ring tone of a Debian sound theme."""
    return ClassSpec(name, True, "tone", (_src(package, [path], lic),), description=what)


def _house(
    name: str, kind: str, sources: Sequence[Source], what: str, events: tuple[int, int] = (1, 3)
) -> ClassSpec:
    """An unknown class of real household sounds."""
    return ClassSpec(name, False, kind, tuple(sources), events=events, description=what)


_FDO = "sound-theme-freedesktop"
_MUSIC = ("Cave", "DrumMachine", "Drum", "DrumSet1", "DrumSet2", "Eggs", "Garden", "GuitarChords1",
          "GuitarChords2", "HipHop", "HumanBeatbox1", "HumanBeatbox2", "Jungle", "Medieval1",
          "Medieval2", "Techno", "Techno2", "Triumph", "Xylo1", "Xylo2", "Xylo3", "xylo4",
          "DripDrop")  # fmt: skip

#: Known classes, in the order of the ``target`` folders (15 synthetic + 9 sound-theme tones).
KNOWN: tuple[ClassSpec, ...] = (
    *(
        _synth(name, fn, _doc(fn))
        for name, fn in (
            ("smoke_alarm_t3", _smoke_t3),
            ("co_alarm_t4", _co_t4),
            ("doorbell_ding_dong", _doorbell),
            ("phone_ring_uk", _phone_uk),
            ("phone_ring_us", _phone_us),
            ("alarm_clock_beeps", _alarm_clock),
            ("microwave_beeps", _microwave),
            ("timer_bell", _timer_bell),
            ("kettle_whistle", _kettle),
            ("siren_wail", _siren_wail),
            ("siren_yelp", _siren_yelp),
            ("siren_hilo", _siren_hilo),
            ("reversing_beeper", _reversing),
            ("intruder_warble", _intruder),
            ("appliance_tune", _appliance_tune),
        )
    ),
    _theme("fd_alarm_clock", _FDO, _FD + "alarm-clock-elapsed.oga",
           ("CC-BY-SA-3.0", "Tim/corsica_s"), "freedesktop alarm-clock-elapsed"),
    _theme("fd_phone_ring", _FDO, _FD + "phone-incoming-call.oga",
           ("GPL-2+", "Damien Sandras"), "freedesktop phone-incoming-call"),
    _theme("fd_bell", _FDO, _FD + "bell.oga",
           ("CC-BY-3.0", "Dr. Richard Boulanger et al."), "freedesktop bell, repeated"),
    _theme("oxygen_phone_ring", "oxygen-sounds", _OX + "Oxygen-Im-Phone-Ring.ogg", _OXYGEN,
           "KDE Oxygen phone ring"),
    _theme("oxygen_critical", "oxygen-sounds", _OX + "Oxygen-Sys-App-Error-Critical.ogg", _OXYGEN,
           "KDE Oxygen critical error"),
    _theme("oxygen_warning", "oxygen-sounds", _OX + "Oxygen-Sys-Warning.ogg", _OXYGEN,
           "KDE Oxygen warning"),
    _theme("lomiri_alarm_clock", "lomiri-sounds", _LO + "ringtones/Alarm clock.ogg", _LOMIRI,
           "Lomiri alarm clock ringtone"),
    _theme("lomiri_alarm_synth", "lomiri-sounds", _LO + "ringtones/Alarm synth.ogg", _LOMIRI,
           "Lomiri alarm synth ringtone"),
    _theme("lomiri_low_battery", "lomiri-sounds", _LO + "notifications/LowBattery.ogg", _LOMIRI,
           "Lomiri low-battery alert"),
)  # fmt: skip

#: Replacements, in order, for known classes whose package cannot be had.
RESERVE_KNOWN: tuple[ClassSpec, ...] = (
    _theme("fd_suspend_error", _FDO, _FD + "suspend-error.oga",
           ("CC-BY-SA-3.0", "Red Hat, Inc."), "freedesktop suspend-error"),
    _theme("oxygen_error_serious", "oxygen-sounds", _OX + "Oxygen-Sys-App-Error-Serious.ogg",
           _OXYGEN, "KDE Oxygen serious error"),
    *(
        _synth(name, fn, _doc(fn))
        for name, fn in (
            ("door_buzzer", _door_buzzer),
            ("phone_ring_trill", _phone_trill),
            ("fridge_door_beep", _fridge_beep),
            ("security_chime", _security_chime),
            ("battery_chirp", _battery_chirp),
            ("gas_alarm", _gas_alarm),
            ("cuckoo_clock", _cuckoo),
        )
    ),
)  # fmt: skip

_SCR, _TUX = "scratch", "tuxpaint-stamps-default"

#: Unknown (unwanted) household classes, cf. the dataset's car horn, clapping, cough, door slam,
#: engine, keyboard tapping, music, pots and pans, steps and water falling.
UNKNOWN: tuple[ClassSpec, ...] = (
    _house("cough", "events", [_src(_SCR, [_SC + "Human/Cough-female.wav",
                                           _SC + "Human/Cough-male.wav"], _SCRATCH_MEDIA)],
           "coughs", events=(1, 3)),
    _house("clapping", "train", [_src(_SCR, [_SC + "Percussion/HandClap.wav"], _SCRATCH_MEDIA)],
           "a burst of hand claps", events=(4, 14)),
    _house("door_slam", "events", [_src(_SCR, [_SC + "Effects/DoorClose.mp3"], _SCRATCH_MEDIA)],
           "a door closing", events=(1, 2)),
    _house("keyboard_typing", "excerpt",
           [_src(_SCR, [_SC + "Effects/Typing.mp3"], _SCRATCH_MEDIA)], "typing"),
    _house("music", "excerpt",
           [_src(_SCR, [f"{_SC}Music Loops/{n}.mp3" for n in _MUSIC], _SCRATCH_MEDIA)],
           "music loops"),
    _house("footsteps", "excerpt", [_src(_SCR, [_SC + "Human/Footsteps-1.wav",
                                                _SC + "Human/Footsteps-2.mp3"], _SCRATCH_MEDIA)],
           "footsteps"),
    _house("water_running", "excerpt",
           [_src(_SCR, [_SC + "Effects/WaterRunning.mp3"], _SCRATCH_MEDIA),
            _src(_TUX, [_TP + "household/toilet.ogg"], _TUXPAINT)], "running water, toilet flush"),
    _house("vacuum_cleaner", "excerpt",
           [_src(_TUX, [_TP + "household/vacuum_cleaner.ogg"], _TUXPAINT)], "vacuum cleaner"),
    _house("washing_machine", "excerpt",
           [_src(_TUX, [_TP + "household/Washing-machine.ogg"], _TUXPAINT)], "washing machine"),
    _house("dog_bark", "events", [_src(_SCR, [_SC + "Animal/Dog1.wav", _SC + "Animal/Dog2.wav"],
                                       _SCRATCH_MEDIA),
                                  _src(_TUX, [_TP + "animals/mammals/dogs/dog.ogg"], _TUXPAINT)],
           "dog barks", events=(1, 4)),
)  # fmt: skip

#: Replacements, in order, for unknown classes whose package cannot be had.
RESERVE_UNKNOWN: tuple[ClassSpec, ...] = (
    _house("laughing", "events", [_src(_SCR, [_SC + "Human/Laugh-female.wav",
                                              _SC + "Human/Laugh-male1.wav",
                                              _SC + "Human/Laugh-male2.wav"], _SCRATCH_MEDIA)],
           "laughter", events=(1, 2)),
    _house("baby_cry", "excerpt", [_src(_SCR, [_SC + "Human/BabyCry.mp3"], _SCRATCH_MEDIA)],
           "a crying baby"),
    _house("sewing_machine", "excerpt",
           [_src(_SCR, [_SC + "Effects/SewingMachine.mp3"], _SCRATCH_MEDIA)], "sewing machine"),
    _house("hammering", "train", [_src(_TUX, [_TP + "household/tools/hammer.ogg"], _TUXPAINT)],
           "hammering", events=(3, 8)),
    _house("sawing", "excerpt", [_src(_TUX, [_TP + "household/tools/saw.ogg"], _TUXPAINT)],
           "sawing"),
    _house("glass_clink", "events", [_src(_TUX, [_TP + "household/dishes/glass.ogg",
                                                 _TP + "household/dishes/bottle.ogg"], _TUXPAINT)],
           "glasses and bottles", events=(1, 3)),
)  # fmt: skip

CLASSES: dict[str, ClassSpec] = {
    c.name: c for c in (*KNOWN, *RESERVE_KNOWN, *UNKNOWN, *RESERVE_UNKNOWN)
}

#: Unwanted classes never seen in training at openness "middle" (50 %), in order of preference
#: (mirrors the dataset's clapping, door slam, water, music, pots and pans).
MIDDLE_UNSEEN = ("clapping", "door_slam", "water_running", "music", "keyboard_typing")


# --------------------------------------------------------------------------------------------
# Debian packages and the clip pipeline
# --------------------------------------------------------------------------------------------


def _wanted_paths(specs: Sequence[ClassSpec]) -> dict[str, set[str]]:
    return wanted_paths(src for spec in specs for src in spec.sources)


def _colouring(dev: np.random.Generator, known: bool) -> np.ndarray:
    """Loudspeaker (known alarms) or microphone / room (unknown sounds) colouring of a device."""
    sections = []
    if known:  # small loudspeakers and piezos: no bass, a resonance, limited top end
        sections.append(butter(2, dev.uniform(150, 700), "highpass", fs=SR, output="sos"))
        sections.append(butter(2, dev.uniform(5500, 7800), "lowpass", fs=SR, output="sos"))
    else:
        sections.append(butter(1, dev.uniform(40, 200), "highpass", fs=SR, output="sos"))
    sections.append(
        _peaking(
            dev.uniform(700, 5000),
            dev.uniform(-6, 6) if known else dev.uniform(-4, 4),
            dev.uniform(0.7, 2.5),
        )
    )
    return np.vstack(sections)


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small room: direct sound plus an exponentially decaying noise tail (RT60 0.15-0.6 s)."""
    rt60 = rng.uniform(0.15, 0.6)
    n_ir = int(rt60 * SR)
    t = np.arange(n_ir) / SR
    tail = rng.normal(0, 1, n_ir) * np.exp(-6.9 * t / rt60)
    tail = sosfilt(butter(1, rng.uniform(3000, 7000), "lowpass", fs=SR, output="sos"), tail)
    drr_db = rng.uniform(0, 12)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    ir = np.zeros(n_ir + int(rng.uniform(0.002, 0.01) * SR))
    ir[0] = 1.0
    ir[-n_ir:] += tail
    return fftconvolve(x, ir)[: len(x)]


def _room_noise(rng: np.random.Generator) -> np.ndarray:
    """Unit-power room noise: 1/f^a noise (a in 0.5-1.5), sometimes with mains hum."""
    spec = np.fft.rfft(rng.normal(0, 1, N))
    f = np.maximum(np.fft.rfftfreq(N, 1 / SR), 20.0)
    noise = np.fft.irfft(spec * f ** (-rng.uniform(0.5, 1.5) / 2), N)
    noise /= noise.std()
    if rng.random() < 0.3:
        hum_f = rng.choice([50.0, 60.0])
        hum = sum(
            rng.uniform(0, 1) / k * np.sin(2 * np.pi * k * hum_f * _T + rng.uniform(0, 6.3))
            for k in (1, 2, 3)
        )
        noise += rng.uniform(0.1, 0.5) * hum / (np.std(hum) + 1e-12)
    return noise / noise.std()


class _ClassRenderer:
    """Renders the clips of one class (devices, sources and per-clip randomness)."""

    def __init__(self, spec: ClassSpec, seed: int, files: list[Path]) -> None:
        self.spec = spec
        self.key = zlib.crc32(spec.name.encode())
        self.seed = seed
        self.sources = [_load(p) for p in files]
        if spec.kind in ("events", "train"):
            self.sources = [_trim(s) for s in self.sources]

    def _rng(self, *parts: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.key, *parts])

    def _source_signal(self, dev: np.random.Generator, clip: np.random.Generator) -> np.ndarray:
        spec = self.spec
        if spec.kind == "synth":
            assert spec.synth is not None
            return spec.synth(dev, clip)
        out = np.zeros(N)
        if spec.kind == "tone":
            # a device plays its tone at its own speed and repeats it after its own pause
            x = _speed(self.sources[0], dev.uniform(0.96, 1.04) * clip.uniform(0.995, 1.005))
            gap = int(dev.uniform(0.2, 1.2) * SR) if len(x) < 6 * SR else 0
            looped = _loop(x, 2 * N + len(x) + gap, gap=gap)
            start = int(clip.uniform(0, len(x) + gap))
            return looped[start : start + N]
        if spec.kind == "excerpt":
            x = _speed(
                self.sources[int(clip.integers(len(self.sources)))], clip.uniform(0.95, 1.05)
            )
            looped = _loop(x, 2 * N, fade=int(0.05 * SR))
            start = int(clip.uniform(0, len(looped) - N))
            return looped[start : start + N]
        lo, hi = spec.events
        if spec.kind == "train":  # one burst of quick repetitions (claps, hammer blows)
            src = self.sources[int(clip.integers(len(self.sources)))]
            count, step = int(clip.integers(lo, hi + 1)), clip.uniform(0.15, 0.35)
            t = clip.uniform(0.0, max(0.05, CLIP_S - count * step - 0.2))
            for _ in range(count):
                ev = _speed(src, clip.uniform(0.94, 1.06))
                _place(ev, t, out, 10 ** (clip.uniform(-4, 1) / 20))
                t += step * clip.uniform(0.85, 1.15)
            return out
        for _ in range(int(clip.integers(lo, hi + 1))):  # "events"
            ev = _speed(
                self.sources[int(clip.integers(len(self.sources)))], clip.uniform(0.94, 1.06)
            )
            t = clip.uniform(0.0, max(0.05, CLIP_S - min(len(ev) / SR, CLIP_S) - 0.05))
            _place(ev, t, out, 10 ** (clip.uniform(-4, 1) / 20))
        return out

    def render(self, index: int) -> np.ndarray:
        """Clip ``index`` (0-based), float32 at 16 kHz, 4 s."""
        device = index // CLIPS_PER_DEVICE
        clip = self._rng(2, index)
        x = self._source_signal(self._rng(1, device, 0), clip)
        x = sosfilt(_colouring(self._rng(1, device, 1), self.spec.known), x)
        x = _reverb(x, clip)
        power = _active_power(x)
        if power <= 0.0:
            raise RuntimeError(f"class {self.spec.name}: clip {index} came out silent")
        snr_db = clip.uniform(*SNR_DB)
        x = x / np.sqrt(power) + _room_noise(clip) * 10 ** (-snr_db / 20)
        x *= clip.uniform(0.25, 0.9) / np.abs(x).max()
        return x.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _select(
    classes: Sequence[str] | None, packages: dict[str, _Package]
) -> tuple[list[ClassSpec], list[ClassSpec], list[dict]]:
    """The known and unknown classes to build, with reserves standing in for unavailable ones."""

    def usable(spec: ClassSpec) -> bool:
        return spec.kind == "synth" or any(
            packages[s.package].files & set(s.paths) for s in spec.sources
        )

    fallbacks: list[dict] = []
    chosen: dict[bool, list[ClassSpec]] = {True: [], False: []}
    if classes is None:
        for known, primary, reserve in (
            (True, KNOWN, RESERVE_KNOWN),
            (False, UNKNOWN, RESERVE_UNKNOWN),
        ):
            spare = [r for r in reserve if usable(r)]
            for spec in primary:
                if usable(spec):
                    chosen[known].append(spec)
                elif spare:
                    sub = spare.pop(0)
                    chosen[known].append(sub)
                    fallbacks.append(
                        {
                            "class": spec.name,
                            "replaced_by": sub.name,
                            "reason": _why(spec, packages),
                        }
                    )
                else:
                    fallbacks.append(
                        {"class": spec.name, "replaced_by": None, "reason": _why(spec, packages)}
                    )
    else:
        for name in classes:
            if name not in CLASSES:
                raise ValueError(f"unknown class {name!r}; choose from {', '.join(CLASSES)}")
            spec = CLASSES[name]
            if not usable(spec):
                raise ValueError(f"class {name!r} is unavailable: {_why(spec, packages)}")
            chosen[spec.known].append(spec)
    return chosen[True], chosen[False], fallbacks


def _why(spec: ClassSpec, packages: dict[str, _Package]) -> str:
    return "; ".join(
        f"{s.package}: {packages[s.package].error or 'files missing'}" for s in spec.sources
    )


def make_alarm_bench(
    out_dir: Path,
    *,
    seed: int = 0,
    clips_per_class: int = CLIPS_PER_CLASS,
    classes: Sequence[str] | None = None,
    sources_dir: Path | None = None,
    download: bool = True,
    force: bool = False,
) -> Path:
    """Build the benchmark under ``out_dir``; return the path of ``manifest.json``.

    Parameters
    ----------
    out_dir
        Output folder (``data/``, ``manifest.json``).
    seed
        Seed of every random choice.
    clips_per_class
        Clips per class, a multiple of 4 (so that 1, 2 and 4 shots make whole folds).
    classes
        Names from :data:`CLASSES` to build (known and unknown; at least one known class);
        default: the 24 known and 10 unknown classes, reserves standing in where needed.
    sources_dir
        Cache of the extracted Debian packages (``<package>/usr/share/...``); default
        ``<out_dir>/.sources``.
    download
        Fetch missing packages with ``apt-get download``; otherwise use what
        ``sources_dir`` holds.
    force
        Rebuild even if ``manifest.json`` matches the options.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    check_clips_per_class(clips_per_class)
    config = {
        "version": VERSION,
        "seed": seed,
        "clips_per_class": clips_per_class,
        "classes": list(classes) if classes is not None else None,
    }
    manifest_path = out_dir / "manifest.json"
    if not force and up_to_date(out_dir, config):
        return manifest_path

    sources_dir = Path(sources_dir) if sources_dir is not None else out_dir / ".sources"
    candidates = (
        list(CLASSES.values()) if classes is None else [CLASSES[c] for c in classes if c in CLASSES]
    )
    packages = fetch_packages(_wanted_paths(candidates), sources_dir, download)
    known, unknown, fallbacks = _select(classes, packages)
    if not known:
        raise ValueError("the benchmark needs at least one known class")
    for fb in fallbacks:
        logger.warning(
            "class %s unavailable (%s); replaced by %s",
            fb["class"],
            fb["reason"],
            fb["replaced_by"],
        )

    clear_clips(out_dir)
    files: dict[str, list[str]] = {}
    class_info = []
    for spec in (*known, *unknown):
        used = [(s, p) for s in spec.sources for p in s.paths if p in packages[s.package].files]
        renderer = _ClassRenderer(spec, seed, [packages[s.package].root / p for s, p in used])
        folder = class_folder(out_dir, spec)
        names = [
            write_clip(out_dir, folder, spec.name, i, renderer.render(i))
            for i in range(clips_per_class)
        ]
        files[spec.name] = names
        class_info.append(class_entry(spec, clips_per_class, used, packages, names))
        logger.info("%-20s %d clips", spec.name, clips_per_class)
    settings = write_meta(out_dir, (*known, *unknown), files, seed, clips_per_class, MIDDLE_UNSEEN)

    manifest = {
        "generator": "data_prep.make_alarm_bench",
        "config": config,
        "sample_rate": SR,
        "clip_s": CLIP_S,
        "clips_per_device": CLIPS_PER_DEVICE,
        "snr_db": list(SNR_DB),
        "n_known": len(known),
        "n_unknown": len(unknown),
        "sources_dir": str(sources_dir.resolve()),
        "packages": packages_entry(packages),
        "fallbacks": fallbacks,
        "settings": settings,
        "classes": class_info,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    write_manifest(manifest_path, manifest)
    return manifest_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, Path("data/alarm_bench"))
    parser.add_argument("--classes", help="comma-separated class names (default: all 34)")
    parser.add_argument("--list", action="store_true", help="list the classes and exit")
    args = parser.parse_args(argv)
    if args.list:
        for spec in CLASSES.values():
            role = ("known" if spec.known else "unknown") + (
                " (reserve)" if spec in RESERVE_KNOWN or spec in RESERVE_UNKNOWN else ""
            )
            print(f"{spec.name:22s} {role:18s} {spec.kind:8s} {spec.description}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    try:
        path = make_alarm_bench(args.out, classes=classes, **common_kwargs(args))
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    m = print_summary(path)
    for fb in m["fallbacks"]:
        print(f"fallback: {fb['class']} -> {fb['replaced_by']} ({fb['reason']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
