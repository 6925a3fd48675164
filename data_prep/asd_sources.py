"""The real recordings behind the synthetic machine-sound (ASD) data set.

:mod:`data_prep.make_asd_synth` builds DCASE-layout anomalous-sound-detection data from real
machine, engine, motor and fan loops of Debian data packages. This module names those
recordings (:data:`MACHINE_TYPES`, :data:`BACKGROUNDS`), splits them into two disjoint halves
(``dev`` for development and ablations, ``final`` for the reported table; :func:`split_half`),
fetches the packages (``apt-get download`` + ``dpkg-deb -x`` through
:func:`data_prep.alarm_common.fetch_packages`; reserved packages are refused before ``apt-get``
runs), reads each recording as 16 kHz mono float (:func:`load_recording`, including the
sounds packed in OpenTTD's ``opensfx.cat``, read natively so ``catcodec`` is not needed) and
finds each file's licence in its package's machine-readable copyright file
(:func:`dep5_licence`).

Packages and licences (``/usr/share/doc/<package>/copyright``; the per-file licence is looked up
and written to the manifest at build time):

* ``torcs-data`` (car engine loops): GPL-2+.
* ``supertuxkart-data`` (jet, spaceship, tractor-beam, nitro, engine loops, steam locomotive,
  rain, river, waterfall): per file, CC-BY-SA-3.0 / CC-BY-3.0 / CC0 / GPL.
* ``lincity-ng-data`` (industry, mines, recycling, water works, power station, railway,
  mill, smithy, traffic and harbour ambiences): GPL-2+.
* ``openttd-opensfx`` (helicopter, propeller plane, mining machinery, sawmill, chainsaw,
  jackhammer, trains, wind): collection CC-BY-SA-3.0; each sound's own licence (CC-BY-3.0,
  CC-BY-SA-3.0 or CC0) is stated in its name inside ``opensfx.cat`` and recorded too.
"""

from __future__ import annotations

import fnmatch
import io
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from data_prep.alarm_common import SR, _load, fetch_packages, is_reserved

TORCS = "usr/share/games/torcs/data/sound/"
STK = "usr/share/games/supertuxkart/data/"
LINCITY = "usr/share/games/lincity-ng/sounds/"
OPENSFX = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"


@dataclass(frozen=True)
class Recording:
    """One source recording: a file of a Debian package, or sound ``#k`` of a ``.cat`` file
    (``path`` is then ``<cat path>#k``)."""

    package: str
    path: str

    @property
    def file(self) -> str:
        """The path of the file inside the package."""
        return self.path.split("#", 1)[0]

    @property
    def name(self) -> str:
        stem = Path(self.file).stem
        return f"{stem}#{self.path.split('#', 1)[1]}" if "#" in self.path else stem


def _files(package: str, prefix: str, names: str, ext: str) -> tuple[Recording, ...]:
    return tuple(Recording(package, f"{prefix}{n}.{ext}") for n in names.split())


def _sfx(*indices: int) -> tuple[Recording, ...]:
    return tuple(Recording("openttd-opensfx", f"{OPENSFX}#{i}") for i in indices)


#: Machine types and their source recordings (several per type; the folder name says what the
#: recordings are). Each type's list is split into a ``dev`` and a ``final`` half.
MACHINE_TYPES: dict[str, tuple[Recording, ...]] = {
    # steady car-engine loops at various revs
    "engine": _files(
        "torcs-data",
        TORCS,
        "935 944 alpha-romeo cleanviper corolla1400hi2 f360 ferrarif355 ford1b ford2c "
        "lamborghinidiablo nsx porsche_engine viper2 lotus mclarenf1 gt40",
        "wav",
    ),
    # short high-rev motor loops (small engines, turbo)
    "motor": _files(
        "torcs-data",
        TORCS,
        "206_engine engine-1 evo7_engine evo7_engine_f ferrarif50 clkdtmb2 xj220 "
        "impreza2002_engine turbo1",
        "wav",
    )
    + _files("supertuxkart-data", STK + "sfx/", "engine_small engine_large", "ogg"),
    # rotors and turbines: jet engine, helicopter, propellers, spaceship hum
    "fan": _files(
        "supertuxkart-data", STK + "sfx/", "airplane_jetEngine spaceship tractor_beam nitro", "ogg"
    )
    + _sfx(24, 8, 69),
    # industrial plant loops: heavy/light industry, recycling, ore and coal mines
    "conveyor": _files(
        "lincity-ng-data",
        LINCITY,
        "IndustryHigh1 IndustryHigh2 IndustryHigh3 IndustryLight1 IndustryLight2 "
        "IndustryLight3 Recycle1 Recycle2 Recycle3 OreMine1 OreMine2 OreMine3 CoalMine1 "
        "CoalMine2 CoalMine3",
        "wav",
    )
    + _sfx(11),
    # water works and (steam) power-station loops
    "pump": _files(
        "lincity-ng-data",
        LINCITY,
        "Water1 Water3 Water4 Water5 PowerCoalLow PowerCoalMed PowerCoalEmpty",
        "wav",
    )
    + _sfx(13),
    # locomotives and rail traffic
    "train": (Recording("supertuxkart-data", STK + "tracks/black_forest/steamLocomotive.ogg"),)
    + _files("lincity-ng-data", LINCITY, "RailTrain1 RailTrain2 RailTrain3", "wav")
    + _sfx(5, 65, 71),
    # cutting and grinding tools: saws, jackhammer, sparking, mills, smithy
    "grinder": _sfx(40, 56, 33, 12)
    + _files(
        "lincity-ng-data",
        LINCITY,
        "Mill1 Mill3 Blacksmith1 Blacksmith3 MonumentConstruction1",
        "wav",
    ),
}

#: Factory and outdoor background recordings (never a machine's source); split like the
#: machines. (lincity ``Tip2`` is byte-identical to ``CoalMine2`` and is not used.)
BACKGROUNDS: tuple[Recording, ...] = (
    _files(
        "lincity-ng-data",
        LINCITY,
        "TraficHigh1 TraficHigh2 TraficHigh3 TraficLow1 TraficLow2 Harbor1 MarketEmpty1 "
        "PowerCoalFull Tip1",
        "wav",
    )
    + _files("supertuxkart-data", STK + "sfx/", "rain river_loop waterfall_loop_2", "ogg")
    + (Recording("torcs-data", TORCS + "road-ride.wav"),)
    + _sfx(52, 57)
)

SPLITS = ("dev", "final")


def split_half(recordings: Sequence[Recording], split: str) -> tuple[Recording, ...]:
    """The ``split`` half of ``recordings``: sorted by (package, path), ``dev`` takes the even
    positions and ``final`` the odd ones, so the halves are disjoint and fixed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    ordered = sorted(recordings, key=lambda r: (r.package, r.path))
    return tuple(ordered[SPLITS.index(split) :: 2])


def check_package(name: str) -> None:
    """Refuse the packages reserved for the team's held-out evaluation (before ``apt-get``)."""
    if is_reserved(name):
        raise ValueError(f"Debian package {name} is reserved for held-out evaluation")


def wanted(recordings: Sequence[Recording]) -> dict[str, set[str]]:
    """The files to fetch of each package for ``recordings``."""
    out: dict[str, set[str]] = {}
    for r in recordings:
        check_package(r.package)
        out.setdefault(r.package, set()).add(r.file)
    return out


def fetch(recordings: Sequence[Recording], sources_dir: Path, download: bool) -> dict:
    """Make the files of ``recordings`` available under ``sources_dir/<package>/`` (download
    once, then cached); returns the packages of :func:`data_prep.alarm_common.fetch_packages`."""
    return fetch_packages(wanted(recordings), sources_dir, download, check=check_package)


# --------------------------------------------------------------------------------------------
# Reading audio
# --------------------------------------------------------------------------------------------


def read_cat(data: bytes) -> list[tuple[str, bytes]]:
    """The ``(description, RIFF bytes)`` of each sound of an OpenTTD ``.cat`` sound pack.

    Layout (OpenTTD ``sound.cpp``): a table of ``(offset, size)`` little-endian uint32 pairs
    (the first offset, with bit 31 set in the new format, gives the table's length); at each
    offset a length-prefixed name, then a RIFF/WAVE file of ``size - 1 - len(name)`` bytes.
    """
    n = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    out = []
    for i in range(n):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= 0x7FFFFFFF
        name_len = data[off]
        name = data[off + 1 : off + 1 + name_len].rstrip(b"\0").decode("latin-1")
        out.append((name, data[off + 1 + name_len : off + size]))
    return out


def cat_licence(description: str) -> str | None:
    """The ``License: ...`` part of an OpenSFX sound's description, if any."""
    m = re.search(r"License:\s*([^.]+(?:\.\d+[^.]*)*)", description)
    return m.group(1).strip() if m else None


def _to_sr(x: np.ndarray, sr: int) -> np.ndarray:
    x = x.mean(axis=1) if x.ndim == 2 else x
    if sr != SR:
        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g)
    x = x - x.mean()
    peak = np.abs(x).max()
    if peak == 0.0:
        raise ValueError("silent recording")
    return x / peak


def load_recording(root: Path, rec: Recording) -> tuple[np.ndarray, str | None]:
    """``rec`` as 16 kHz mono float64 (peak 1), and the licence stated inside the file (only
    for ``.cat`` sounds; ``None`` otherwise). ``root`` is the package's folder."""
    if "#" not in rec.path:
        return _load(root / rec.path), None
    index = int(rec.path.split("#", 1)[1])
    desc, riff = read_cat((root / rec.file).read_bytes())[index]
    x, sr = sf.read(io.BytesIO(riff), dtype="float64", always_2d=True)
    return _to_sr(x, sr), cat_licence(desc)


# --------------------------------------------------------------------------------------------
# Licences
# --------------------------------------------------------------------------------------------


def dep5_licence(copyright_text: str, path: str) -> str | None:
    """The ``License:`` of the last ``Files:`` stanza of a machine-readable (DEP-5) copyright
    file that matches ``path`` (an installed path; patterns are source-tree paths, so a pattern
    matches any path that ends with it, and ``*`` matches everything)."""
    licence = None
    for stanza in re.split(r"\n\s*\n", copyright_text):
        m = re.search(r"^Files:(.*(?:\n[ \t].*)*)", stanza, re.M)
        lic = re.search(r"^License:\s*(.+)$", stanza, re.M)
        if not m or not lic:
            continue
        patterns = m.group(1).split()
        if any(
            fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, "*/" + p) for p in patterns
        ):
            licence = lic.group(1).strip()
    return licence
