"""What the two alarm benchmark generators share.

:mod:`data_prep.make_alarm_bench` (synthetic and real classes) and
:mod:`data_prep.make_alarm_real_bench` (real recordings only) fetch their sounds from the same
kind of Debian packages, work the same audio in the same way and write the same layout: the
clip format, the package cache, the audio helpers, the meta CSVs (folds of K shots at three
opennesses) and the common parts of ``manifest.json`` live here, once.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from kwsos.io import atomic_output

logger = logging.getLogger(__name__)

SR = 16_000
CLIP_S = 4.0
N = int(SR * CLIP_S)
CLIPS_PER_CLASS = 40
CLIPS_PER_DEVICE = 4
SHOTS = (1, 2, 4)
OPENNESS_PCT = (0, 50, 100)

#: The Debian packages the real-recording benchmark is built from (issue 18 keeps them for
#: benchmarks: no pretraining data may come from them).
BENCHMARK_PACKAGES: tuple[str, ...] = (
    "sound-theme-freedesktop",
    "lomiri-sounds",
    "oxygen-sounds",
    "scratch",
    "tuxpaint-stamps-default",
)

#: Reserved for the team's held-out evaluation: never downloaded, read or used (shell patterns).
RESERVED_PACKAGES: tuple[str, ...] = (
    "asterisk-core-sounds-*",
    "hedgewars-data",
    "flightgear-data-*",
    "widelands-data",
    "btanks-data",
    "scorched3d-data",
    "bucklespring-data",
)


def is_reserved(package: str) -> bool:
    """Whether ``package`` is one of (or matches a pattern of) :data:`RESERVED_PACKAGES`."""
    return any(fnmatch.fnmatchcase(package, pattern) for pattern in RESERVED_PACKAGES)


@dataclass(frozen=True)
class Source:
    """Audio files of one Debian package that make up (part of) a class."""

    package: str
    paths: tuple[str, ...]
    licence: str
    copyright: str


class _Spec(Protocol):
    """What :func:`write_meta` and :func:`class_entry` need of a class."""

    @property
    def name(self) -> str: ...
    @property
    def known(self) -> bool: ...
    @property
    def kind(self) -> str: ...
    @property
    def description(self) -> str: ...


# --------------------------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------------------------


@dataclass
class _Package:
    name: str
    root: Path
    available: bool = False
    version: str | None = None
    error: str | None = None
    copyright_file: str | None = None
    files: set[str] = field(default_factory=set)


def wanted_paths(sources: Iterable[Source]) -> dict[str, set[str]]:
    """The files wanted of each package by ``sources``."""
    wanted: dict[str, set[str]] = {}
    for src in sources:
        wanted.setdefault(src.package, set()).update(src.paths)
    return wanted


def fetch_packages(
    wanted: dict[str, set[str]],
    sources_dir: Path,
    download: bool,
    check: Callable[[str], None] | None = None,
) -> dict[str, _Package]:
    """Make every wanted file available under ``sources_dir/<package>/``, package by package in
    name order; ``check(name)`` runs before a package is touched (it may raise)."""
    packages: dict[str, _Package] = {}
    for name, paths in sorted(wanted.items()):
        if check is not None:
            check(name)  # before apt-get can run
        pkg = packages[name] = _Package(name, Path(sources_dir) / name)
        _fetch_package(pkg, paths, download)
    return packages


def _fetch_package(pkg: _Package, paths: set[str], download: bool) -> None:
    """Make the wanted files of ``pkg`` available under ``pkg.root`` (download once, cache)."""
    info = pkg.root / ".package.json"
    requested: set[str] = set()
    if info.is_file():
        meta = json.loads(info.read_text())
        pkg.version, pkg.copyright_file = meta.get("version"), meta.get("copyright_file")
        requested = set(meta.get("requested", []))
    present = {p for p in paths if (pkg.root / p).is_file()}
    # download again only for files never asked for (a file the package lacks stays missing)
    if present != paths and not paths <= requested and download:
        try:
            _download_and_extract(pkg, paths | requested)
        except (OSError, subprocess.CalledProcessError, tarfile.TarError) as err:
            detail = (getattr(err, "stderr", None) or str(err) or type(err).__name__).strip()
            pkg.error = detail.splitlines()[-1] if detail else type(err).__name__
            logger.warning("could not fetch Debian package %s: %s", pkg.name, pkg.error)
        present = {p for p in paths if (pkg.root / p).is_file()}
    if not present and pkg.error is None:
        pkg.error = "no file of it in the sources folder" + ("" if download else " (download off)")
    pkg.files = present
    pkg.available = bool(present)


def download_deb(
    name: str, dest: Path, keep: Callable[[str], bool]
) -> tuple[str, str | None, list[str]]:
    """``apt-get download`` package ``name`` and extract into ``dest`` the files whose path
    (relative, e.g. ``usr/share/sounds/x.ogg``) passes ``keep``, and its copyright file.

    Returns the package version, the copyright file's path if the package has one, and the
    other extracted paths. Callers refuse reserved packages before calling this.
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise OSError("apt-get / dpkg-deb not found (a Debian or Ubuntu system is needed)")
    dest.mkdir(parents=True, exist_ok=True)
    copyright_member = f"usr/share/doc/{name}/copyright"
    extracted: list[str] = []
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        logger.info("downloading Debian package %s", name)
        subprocess.run(
            ["apt-get", "download", name],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        debs = sorted(Path(tmp).glob(f"{name}_*.deb"))
        if not debs:
            raise OSError(f"apt-get download {name} produced no .deb file")
        deb = debs[0]
        version = subprocess.run(
            ["dpkg-deb", "--field", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                if member.isfile() and (path == copyright_member or keep(path)):
                    target = dest / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fileobj = tar.extractfile(member)
                    assert fileobj is not None
                    target.write_bytes(fileobj.read())
                    if path != copyright_member:
                        extracted.append(path)
        proc.stdout.close()
        if proc.wait() != 0:
            raise OSError(f"dpkg-deb --fsys-tarfile {deb.name} failed")
    has_copyright = (dest / copyright_member).is_file()
    return version, copyright_member if has_copyright else None, extracted


def _download_and_extract(pkg: _Package, paths: set[str]) -> None:
    """``apt-get download`` the package, extract only ``paths`` and its copyright file."""
    version, copyright_file, _ = download_deb(pkg.name, pkg.root, lambda path: path in paths)
    pkg.version = version
    pkg.copyright_file = copyright_file
    meta = {"version": version, "copyright_file": pkg.copyright_file, "requested": sorted(paths)}
    (pkg.root / ".package.json").write_text(json.dumps(meta, indent=1))


# --------------------------------------------------------------------------------------------
# Real audio and the clip pipeline
# --------------------------------------------------------------------------------------------


def load_mono(path: Path) -> np.ndarray:
    """Mono float64 at 16 kHz, its mean removed."""
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        from math import gcd

        g = gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g)
    return x - x.mean()


def _load(path: Path) -> np.ndarray:
    """Mono float64 at 16 kHz, peak-normalised."""
    x = load_mono(path)
    peak = np.abs(x).max()
    if peak == 0.0:
        raise ValueError(f"{path} is silent")
    return x / peak


def _speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch and tempo up by ``factor``), linear interpolation."""
    if abs(factor - 1.0) < 1e-6:
        return x
    n_out = max(2, int(len(x) / factor))
    return np.interp(np.arange(n_out) * factor, np.arange(len(x)), x)


def _trim(x: np.ndarray, rel: float = 0.01) -> np.ndarray:
    """Cut leading and trailing near-silence (below ``rel`` of the peak)."""
    idx = np.flatnonzero(np.abs(x) > rel * np.abs(x).max())
    return x[idx[0] : idx[-1] + 1] if idx.size else x


def _loop(x: np.ndarray, n: int, gap: int = 0, fade: int = 0) -> np.ndarray:
    """Repeat ``x`` (with ``gap`` silent samples or a ``fade``-sample crossfade) to >= n samples."""
    if fade:
        fade = min(fade, len(x) // 3)
        ramp = np.linspace(0, 1, fade)
        out = x.copy()
        while len(out) < n:
            head = out[:-fade] if fade else out
            cross = out[-fade:] * (1 - ramp) + x[:fade] * ramp
            out = np.concatenate([head, cross, x[fade:]])
        return out
    unit = np.concatenate([x, np.zeros(gap)])
    return np.tile(unit, n // len(unit) + 2)


def _place(x: np.ndarray, t0: float, out: np.ndarray, gain: float = 1.0) -> None:
    a = int(t0 * SR)
    if a >= len(out):
        return
    seg = x[: len(out) - a]
    out[a : a + len(seg)] += gain * seg


def _peaking(f0: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one SOS row."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def _active_power(x: np.ndarray) -> float:
    """Mean power of the 50 ms frames within 20 dB of the loudest one."""
    frames = x[: len(x) // 800 * 800].reshape(-1, 800)
    p = np.mean(frames**2, axis=1)
    return float(np.mean(p[p >= 0.01 * p.max()]))


# --------------------------------------------------------------------------------------------
# Output: clips, meta CSVs, manifest
# --------------------------------------------------------------------------------------------


def up_to_date(out_dir: Path, config: dict) -> bool:
    """Whether ``out_dir/manifest.json`` was written with ``config`` and all its clips exist."""
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    old = json.loads(manifest_path.read_text())
    if old.get("config") == config and all(
        (out_dir / p).is_file() for c in old["classes"] for p in c["files"]
    ):
        logger.info("%s is up to date (same options); nothing to do", manifest_path)
        return True
    return False


def clear_clips(out_dir: Path) -> None:
    """Remove the clip folders of an earlier build."""
    data = out_dir / "data"
    for sub in ("pattern_sounds", "unwanted_sounds"):
        if (data / sub).exists():
            shutil.rmtree(data / sub)


def class_folder(out_dir: Path, spec: _Spec) -> Path:
    """``data/pattern_sounds/<class>`` (known) or ``data/unwanted_sounds/<class>``, created."""
    sub = "pattern_sounds" if spec.known else "unwanted_sounds"
    folder = out_dir / "data" / sub / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_clip(out_dir: Path, folder: Path, name: str, i: int, y: np.ndarray) -> str:
    """Write clip ``i`` (0-based) of class ``name`` as 16-bit WAV; its path relative to
    ``out_dir``."""
    path = folder / f"{name}_{i + 1:02d}.wav"
    sf.write(str(path), y, SR, subtype="PCM_16")
    return str(path.relative_to(out_dir))


def class_entry(
    spec: _Spec,
    n_clips: int,
    used: Sequence[tuple[Source, str]],
    packages: dict[str, _Package],
    files: list[str],
) -> dict:
    """A class's record in ``manifest.json``: what it is, its source files and licences."""
    return {
        "name": spec.name,
        "known": spec.known,
        "kind": spec.kind,
        "description": spec.description,
        "n_clips": n_clips,
        "sources": [
            {
                "package": s.package,
                "version": packages[s.package].version,
                "path": p,
                "licence": s.licence,
                "copyright": s.copyright,
            }
            for s, p in used
        ],
        "files": files,
    }


def packages_entry(packages: dict[str, _Package]) -> dict:
    """The packages' record in ``manifest.json``: version, availability, copyright file."""
    return {
        p.name: {
            "version": p.version,
            "available": p.available,
            "error": p.error,
            "copyright_file": f"{p.name}/{p.copyright_file}" if p.copyright_file else None,
        }
        for p in packages.values()
    }


def write_manifest(path: Path, manifest: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")


def write_meta(
    out: Path,
    specs: Sequence[_Spec],
    files: dict[str, list[str]],
    seed: int,
    clips: int,
    middle_unseen: Sequence[str],
) -> list[dict]:
    """The nine meta CSVs of the dataset (``filename,target,fold``): per class (in ``specs``
    order), shuffled clips cut into folds of K shots; the unknown classes never seen in training
    (none, half of them, preferring ``middle_unseen``, or all) get fold ``clips // K + 1``.
    Returns the settings for ``manifest.json``."""
    meta_dir = out / "data" / "meta" / "csv"
    meta_dir.mkdir(parents=True, exist_ok=True)
    order = {
        s.name: np.random.default_rng([seed, zlib.crc32(s.name.encode()), 3]).permutation(clips)
        for s in specs
    }
    unknown = [s.name for s in specs if not s.known]
    middle = [n for n in middle_unseen if n in unknown][: len(unknown) // 2]
    middle += [n for n in unknown if n not in middle][: len(unknown) // 2 - len(middle)]
    settings = []
    for k in SHOTS:
        n_folds = clips // k
        for pct in OPENNESS_PCT:
            unseen = set() if pct == 0 else set(middle) if pct == 50 else set(unknown)
            path = meta_dir / f"few_shot_k_{k}_openness_{pct}.csv"
            with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["filename", "target", "fold"])
                for s in specs:
                    target = s.name if s.known else "unknown"
                    for j, i in enumerate(order[s.name]):
                        fold = n_folds + 1 if s.name in unseen else j // k + 1
                        w.writerow([files[s.name][i], target, fold])
            settings.append(
                {
                    "meta_csv": str(path.relative_to(out)),
                    "shots": k,
                    "openness_pct": pct,
                    "folds": n_folds,
                    "unseen_unknown_classes": sorted(unseen),
                }
            )
    return settings


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """``--out --seed --clips-per-class --sources --no-download --force``."""
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clips-per-class",
        type=int,
        default=CLIPS_PER_CLASS,
        help="clips per class, a multiple of 4 (default 40)",
    )
    parser.add_argument(
        "--sources", type=Path, help="extracted-package cache (default OUT/.sources)"
    )
    parser.add_argument("--no-download", action="store_true", help="never call apt-get download")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")


def check_clips_per_class(clips_per_class: int) -> None:
    if clips_per_class < 4 or clips_per_class % 4:
        raise ValueError(f"clips_per_class must be a positive multiple of 4, got {clips_per_class}")


def common_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`add_common_args`' options, for the generator functions."""
    return {
        "seed": args.seed,
        "clips_per_class": args.clips_per_class,
        "sources_dir": args.sources,
        "download": not args.no_download,
        "force": args.force,
    }


def print_summary(manifest_path: Path) -> dict:
    """Print one line on the benchmark built; return its manifest."""
    m = json.loads(manifest_path.read_text())
    print(
        f"{m['n_known']} known + {m['n_unknown']} unknown classes x "
        f"{m['config']['clips_per_class']} clips -> {manifest_path.parent / 'data'} "
        f"({m['elapsed_s']} s)"
    )
    return m
