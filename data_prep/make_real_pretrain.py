"""Pretraining data for the open-set clip network made of REAL recordings (issue 18, item 1).

The bundled network (:mod:`data_prep.make_alarm_pretrain`) learnt from procedurally generated
beeps only. This script makes the same kind of training set -- many classes, each seen in
several "views" -- from real sound files of Debian game, sound-theme and sample packages:

* **Class**: one sound FILE (instance-level classes). A file longer than :data:`REGION_S`
  contributes one random region of that length (all its views come from there), so that the
  views of a long music track still share content.
* **View** (:data:`VIEWS` per class, :func:`make_view`): a random 4 s excerpt of the region
  (a short sound is placed at a random offset and, half the time, repeated after a random
  pause, like a device repeating it), played at a random speed (pitch and tempo together,
  0.88-1.12), through a random device colouring (high-pass, low-pass, two peaking filters, soft
  clipping on some views), with added noise (coloured noise, and half the time a real background:
  a stretch of another file of the pool, 5-30 dB below), at a random level.

Packages: only those of :data:`PACKAGES` are ever fetched (``apt-get download`` + ``dpkg-deb``,
only the audio files under the listed folders and the copyright file, into
``<out dir>/.sources``). The benchmarks' packages (:data:`BENCHMARK_PACKAGES`) and those
reserved for the team's held-out evaluation (:data:`RESERVED_PACKAGES`) are refused by
:func:`check_package` before ``apt-get`` runs. A file whose bytes equal a file of the real
benchmark's package cache (``--bench-sources``, if present) is dropped.

Output: one ``.npz`` in the layout of :mod:`data_prep.make_alarm_pretrain` (``features`` (n,
frames, mels) float16, ``labels`` (n,) int, ``config``: the open-set classifier's frontend plus
this script's options), read unchanged by ``recipes/alarm_osc/local/pretrain.py``; and
``manifest.json`` beside it (packages, versions, licences, files per package, classes, clips).

Usage::

    python -m data_prep.make_real_pretrain --out data/real_pretrain/features.npz --jobs 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import subprocess
import tarfile
import time
import zlib
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt

from data_prep.alarm_common import (
    BENCHMARK_PACKAGES,
    RESERVED_PACKAGES,
    SR,
    N,
    _peaking,
    download_deb,
    is_reserved,
)
from kwsos.io import atomic_output

__all__ = [
    "BENCHMARK_PACKAGES",
    "PACKAGES",
    "RESERVED_PACKAGES",
    "check_package",
    "make_real_pretrain",
    "make_view",
    "make_views",
]

logger = logging.getLogger(__name__)

VIEWS = 16
REGION_S = 10.0
MIN_S = 0.15  # shorter files (clicks) are dropped
SPEED = (0.88, 1.12)
SNR_DB = (5.0, 30.0)
AUDIO_EXT = (".wav", ".ogg", ".oga", ".flac")


@dataclass(frozen=True)
class Package:
    """A Debian package of the pool: audio files under ``roots``, at most ``cap`` of them (a
    seeded random subset), and its licence as read from its copyright file."""

    name: str
    roots: tuple[str, ...]
    licence: str
    cap: int | None = None


_U = "usr/share/"
#: The only packages this generator fetches (Debian 12 "bookworm" versions in the manifest).
PACKAGES: tuple[Package, ...] = (
    Package("yaru-theme-sound", (_U + "sounds/",), "CC-BY-SA-4.0"),
    Package("deepin-sound-theme", (_U + "sounds/",), "GPL-3+"),
    Package("pidgin-data", (_U + "sounds/",), "GPL-2+"),
    Package("lmms-common", (_U + "lmms/samples/",), "GPL-2+ / various free sample licences"),
    Package("hydrogen-drumkits", (_U + "hydrogen/",), "GPL-2+ / CC (per drumkit)", cap=250),
    Package("sonic-pi-samples", (_U,), "CC0-1.0 / CC-BY (freesound samples)"),
    Package("ktuberling-data", (_U,), "GPL-2+", cap=200),
    Package("kbounce", (_U,), "GPL-2+"),
    Package("kgoldrunner", (_U,), "GPL-2+"),
    Package("bomber", (_U,), "GPL-2+"),
    Package("granatier", (_U,), "GPL-2+"),
    Package("kolf", (_U,), "GPL-2+"),
    Package("kblocks", (_U,), "GPL-2+"),
    Package("kapman", (_U,), "GPL-2+"),
    Package("ksirk", (_U,), "GPL-2+"),
    Package("chromium-bsu-data", (_U,), "Artistic / Clarified-Artistic"),
    Package("lbreakout2-data", (_U,), "GPL-2+"),
    Package("pinball-data", (_U,), "GPL-2+"),
    Package("pingus-data", (_U,), "GPL-3+"),
    Package("frozen-bubble-data", (_U,), "GPL-2"),
    Package("extremetuxracer-data", (_U,), "GPL-2+"),
    Package("xmoto-data", (_U,), "GPL-2+"),
    Package("ri-li-data", (_U,), "GPL-2+"),
    Package("tuxtype-data", (_U,), "GPL-2+"),
    Package("tuxmath-data", (_U,), "GPL-3+"),
    Package("freeciv-data", (_U,), "GPL-2+"),
    Package("lincity-ng-data", (_U,), "GPL-2+"),
    Package("supertux-data", (_U,), "GPL-3+ / CC-BY-SA (data)"),
    Package("minetest-data", (_U,), "LGPL-2.1+ / CC-BY-SA-3.0 (media)"),
    Package("freedroidrpg-data", (_U,), "GPL-2+"),
    Package("wesnoth-1.16-data", (_U,), "GPL-2+"),
)


def is_forbidden(package: str) -> bool:
    """Whether ``package`` is a benchmark package or matches a reserved pattern."""
    return package in BENCHMARK_PACKAGES or is_reserved(package)


def check_package(package: str) -> None:
    """Raise ``ValueError`` unless ``package`` is one of :data:`PACKAGES` and not forbidden."""
    if is_forbidden(package):
        raise ValueError(f"{package} is used by the benchmarks or reserved; never pretrain on it")
    if package not in {p.name for p in PACKAGES}:
        raise ValueError(f"{package} is not one of this generator's packages")


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def _is_audio(name: str, roots: tuple[str, ...]) -> bool:
    return name.lower().endswith(AUDIO_EXT) and any(name.startswith(r) for r in roots)


def fetch(pkg: Package, sources: Path, download: bool = True) -> dict:
    """Audio files of ``pkg`` under ``sources/<name>/`` (download once, then cached); returns
    ``{"version", "copyright_file", "files": [...]}``."""
    check_package(pkg.name)  # before apt-get can run
    root = sources / pkg.name
    info = root / ".package.json"
    if info.is_file():
        return json.loads(info.read_text())
    if not download:
        raise OSError(f"{pkg.name} is not in {sources} and downloads are off")
    version, copyright_file, files = download_deb(
        pkg.name, root, lambda name: _is_audio(name, pkg.roots)
    )
    meta = {"version": version, "copyright_file": copyright_file, "files": sorted(files)}
    info.write_text(json.dumps(meta, indent=1))
    return meta


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _licences_in(copyright_path: Path) -> list[str]:
    """The distinct ``License:`` names of a machine-readable copyright file."""
    if not copyright_path.is_file():
        return []
    text = copyright_path.read_text(errors="replace")
    return sorted({m.strip() for m in re.findall(r"^License:\s*(.+)$", text, re.M)})


# --------------------------------------------------------------------------------------------
# Views (pure functions of arrays and generators)
# --------------------------------------------------------------------------------------------


def speed_change(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch and tempo together), linear interpolation."""
    if abs(factor - 1.0) < 1e-6:
        return x
    n_out = max(2, int(len(x) / factor))
    return np.interp(np.arange(n_out) * factor, np.arange(len(x)), x)


def excerpt(x: np.ndarray, rng: np.random.Generator, n: int = N) -> np.ndarray:
    """``n`` samples of ``x``: a random stretch of a long sound; a short one placed at a random
    offset and, half the time, repeated after a random pause (0.1-1.5 s)."""
    out = np.zeros(n)
    if len(x) >= n:
        a = int(rng.integers(0, len(x) - n + 1))
        return x[a : a + n].copy()
    if rng.random() < 0.5:
        gap = int(rng.uniform(0.1, 1.5) * SR)
        unit = np.concatenate([x, np.zeros(gap)])
        x = np.tile(unit, n // len(unit) + 2)
        a = int(rng.integers(0, len(unit)))
        return x[a : a + n].copy()
    a = int(rng.integers(0, n - len(x) + 1))
    out[a : a + len(x)] = x
    return out


def colouring(rng: np.random.Generator) -> np.ndarray:
    """A random device: high-pass 50-800 Hz, low-pass 3-7.9 kHz, two peaking filters of
    +-9 dB, as SOS rows."""
    hp = butter(2, float(np.exp(rng.uniform(np.log(50), np.log(800)))), "highpass", fs=SR,
                output="sos")  # fmt: skip
    lp = butter(2, rng.uniform(3000, 7900), "lowpass", fs=SR, output="sos")
    peaks = [
        _peaking(
            float(np.exp(rng.uniform(np.log(200), np.log(6000)))),
            rng.uniform(-9, 9),
            rng.uniform(0.5, 3.0),
        )  # fmt: skip
        for _ in range(2)
    ]
    return np.vstack([hp, lp, *peaks])


def coloured_noise(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """Unit-variance noise with a random 1/f^a spectrum, a in [0, 2]."""
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    x = np.fft.irfft(spec * f ** (-rng.uniform(0.0, 2.0) / 2), n)
    return x / (x.std() + 1e-12)


def _power(x: np.ndarray) -> float:
    """Mean power of the 50 ms frames within 20 dB of the loudest one."""
    frames = x[: len(x) // 800 * 800].reshape(-1, 800)
    p = np.mean(frames**2, axis=1)
    return float(np.mean(p[p >= 0.01 * p.max()])) if p.max() > 0 else 0.0


def make_view(
    x: np.ndarray, rng: np.random.Generator, background: np.ndarray | None = None
) -> np.ndarray:
    """One 4 s view (float32, 16 kHz) of sound ``x`` (float, 16 kHz): speed, excerpt, device
    colouring (soft clipping on 20 % of views), noise (coloured, plus ``background`` half the
    time) at 5-30 dB SNR, peak level -20 to -1 dBFS."""
    y = excerpt(speed_change(x, rng.uniform(*SPEED)), rng)
    y = sosfilt(colouring(rng), y)
    if rng.random() < 0.2:
        drive = rng.uniform(1.5, 4.0)
        y = np.tanh(drive * y / (np.abs(y).max() + 1e-12)) / np.tanh(drive)
    p = _power(y)
    if not p > 0:
        y, p = coloured_noise(rng), 1.0
    y = y / np.sqrt(p)
    noise = coloured_noise(rng) * 10 ** (-rng.uniform(*SNR_DB) / 20)
    if background is not None and rng.random() < 0.5:
        b = excerpt(background, rng)
        pb = _power(b)
        if pb > 0:
            noise = noise + b / np.sqrt(pb) * 10 ** (-rng.uniform(*SNR_DB) / 20)
    y = y + noise
    level = 10 ** (rng.uniform(-20, -1) / 20)
    return (y * level / (np.abs(y).max() + 1e-12)).astype(np.float32)


def make_views(
    x: np.ndarray, rng: np.random.Generator, views: int = VIEWS,
    background: np.ndarray | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """``views`` independent views of ``x`` (:func:`make_view`)."""
    return [make_view(x, rng, background) for _ in range(views)]


# --------------------------------------------------------------------------------------------
# Loading and the per-class work
# --------------------------------------------------------------------------------------------


def load_region(path: Path, rng: np.random.Generator, region_s: float = REGION_S) -> np.ndarray:
    """Mono float64 at 16 kHz of at most ``region_s`` seconds of ``path`` (a random region of a
    longer file), DC removed, peak-normalised, leading/trailing near-silence trimmed."""
    import soundfile as sf

    info = sf.info(str(path))
    want = int(region_s * info.samplerate)
    start = int(rng.integers(0, info.frames - want + 1)) if info.frames > want else 0
    x, sr = sf.read(str(path), start=start, frames=want, dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g)
    x = x - x.mean()
    peak = np.abs(x).max() if x.size else 0.0
    if not peak > 0:
        raise ValueError(f"{path} is silent")
    x = x / peak
    idx = np.flatnonzero(np.abs(x) > 0.01)
    return x[idx[0] : idx[-1] + 1]


def _class_features(seed: int, k: int, path: str, bg_path: str) -> np.ndarray | None:
    from kwsos.tasks.openset import OpenSetClassifier

    rng = np.random.default_rng([seed, k])
    try:
        x = load_region(Path(path), rng)
        if len(x) < MIN_S * SR:
            return None
        try:
            bg = load_region(Path(bg_path), rng)
        except Exception:  # noqa: BLE001 - a bad background file only loses the background
            bg = None
        clips = make_views(x, rng, VIEWS, bg)
    except Exception as err:  # noqa: BLE001 - unreadable file: dropped, logged
        logger.warning("skipping %s: %s", path, err)
        return None
    return OpenSetClassifier().features(clips).astype(np.float16)


def make_real_pretrain(
    out: Path,
    *,
    seed: int = 0,
    jobs: int = 1,
    sources: Path | None = None,
    bench_sources: Path | None = Path("data/alarm_real/.sources"),
    download: bool = True,
    max_classes: int | None = None,
) -> Path:
    """Fetch the packages, make :data:`VIEWS` views of every file, write features + manifest."""
    from concurrent.futures import ProcessPoolExecutor

    from kwsos.tasks.openset import OpenSetClassifier

    t0 = time.perf_counter()
    sources = Path(sources or out.parent / ".sources")
    sources.mkdir(parents=True, exist_ok=True)
    banned: set[str] = set()
    if bench_sources is not None and Path(bench_sources).is_dir():
        banned = {
            _digest(p) for p in Path(bench_sources).rglob("*")
            if p.is_file() and p.suffix.lower() in AUDIO_EXT
        }  # fmt: skip
    pkg_meta, pool = {}, []
    for pkg in PACKAGES:
        try:
            meta = fetch(pkg, sources, download)
        except (OSError, subprocess.CalledProcessError, tarfile.TarError, IndexError) as err:
            logger.warning("could not fetch %s: %s", pkg.name, err)
            pkg_meta[pkg.name] = {"error": str(err)}
            continue
        files = list(meta["files"])
        dup = [f for f in files if _digest(sources / pkg.name / f) in banned]
        files = [f for f in files if f not in dup]
        if pkg.cap is not None and len(files) > pkg.cap:
            pick = np.random.default_rng([seed, zlib.crc32(pkg.name.encode())]).permutation(
                len(files)
            )[: pkg.cap]
            files = [files[i] for i in sorted(pick)]
        copyright_file = meta.get("copyright_file")
        pkg_meta[pkg.name] = {
            "version": meta["version"],
            "licence": pkg.licence,
            "copyright_licences": _licences_in(sources / pkg.name / copyright_file)
            if copyright_file else [],
            "audio_files": len(meta["files"]),
            "dropped_identical_to_benchmark": len(dup),
            "used_files": len(files),
        }  # fmt: skip
        pool += [(pkg.name, f) for f in files]
    if max_classes is not None:
        pool = pool[:max_classes]
    paths = [str(sources / p / f) for p, f in pool]
    bg_rng = np.random.default_rng([seed, 99])
    bgs = [paths[(i + 1 + int(bg_rng.integers(len(paths) - 1))) % len(paths)]
           for i in range(len(paths))]  # fmt: skip
    feats, labels, classes = [], [], []
    with ProcessPoolExecutor(max(1, jobs)) as ex:
        results = ex.map(
            _class_features, [seed] * len(paths), range(len(paths)), paths, bgs, chunksize=8
        )
        for i, ((pkg_name, f), x) in enumerate(zip(pool, results, strict=True)):
            if x is None:
                continue
            label = len(classes)
            classes.append({"label": label, "package": pkg_name, "path": f})
            feats.append(x)
            labels += [label] * len(x)
            if (i + 1) % 200 == 0:
                logger.info("%d / %d files, %.0f s", i + 1, len(paths), time.perf_counter() - t0)
    front = OpenSetClassifier().config.frontend.to_dict()
    options = {
        "seed": seed,
        "views": VIEWS,
        "region_s": REGION_S,
        "generator": "make_real_pretrain",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            features=np.concatenate(feats),
            labels=np.asarray(labels),
            config=json.dumps({**front, "classes": len(classes), **options}),
        )
    per_pkg: dict[str, int] = {}
    for c in classes:
        per_pkg[c["package"]] = per_pkg.get(c["package"], 0) + 1
    for name, n in per_pkg.items():
        pkg_meta[name]["classes"] = n
    manifest = {
        "generator": "data_prep.make_real_pretrain",
        "options": options,
        "forbidden": {"benchmark": list(BENCHMARK_PACKAGES), "reserved": list(RESERVED_PACKAGES)},
        "packages": pkg_meta,
        "n_classes": len(classes),
        "n_clips": len(labels),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "classes": classes,
    }
    with atomic_output(out.parent / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info("%d clips of %d classes in %.0f s -> %s", len(labels), len(classes),
                time.perf_counter() - t0, out)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/real_pretrain/features.npz"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="processes making views")
    p.add_argument(
        "--sources", type=Path, help="extracted-package cache (default OUT_DIR/.sources)"
    )
    p.add_argument("--bench-sources", type=Path, default=Path("data/alarm_real/.sources"),
                   help="the real benchmark's package cache: identical files are dropped")  # fmt: skip
    p.add_argument("--no-download", action="store_true", help="never call apt-get download")
    p.add_argument("--max-classes", type=int, help="use only the first N files (for tests)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    make_real_pretrain(
        args.out, seed=args.seed, jobs=args.jobs, sources=args.sources,
        bench_sources=args.bench_sources, download=not args.no_download,
        max_classes=args.max_classes,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
