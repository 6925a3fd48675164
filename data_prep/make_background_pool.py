"""A pool of REAL background recordings as log-Mel segments, for background- and
device-invariant pretraining of the open-set clip network (issue 18;
``recipes/alarm_osc/local/pretrain_invariant.py``).

Backgrounds are ambience, machine and crowd recordings from Debian game data packages that
neither benchmark uses for anything and that are not reserved for the held-out evaluation:
only the files named in :data:`PACKAGES` are extracted. Every file becomes 4 s segments
(hop 2 s, at most :data:`MAX_SEGMENTS` per file; a shorter file is looped with a 50 ms
cross-fade), each turned into the open-set classifier's log-Mel features (the same frontend
as ``data/real_pretrain/features.npz``: log of the Mel-filtered STFT magnitude of the
peak-normalised, 50 Hz high-passed clip).

The benchmarks' packages (``BENCHMARK_PACKAGES``: their backgrounds come from ``scratch``)
and the reserved ones (``RESERVED_PACKAGES``) are refused by :func:`check_package` before
``apt-get`` runs. ``make_real_pretrain``'s packages are not used either, so that no background
is also a pretraining class.

    python -m data_prep.make_background_pool --out data/background_pool/features.npz

Output: ``features`` (n, frames, mels) float16, ``source`` (n,) index into ``files``,
``files`` (package/path), ``config`` (frontend + options); ``manifest.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from data_prep.alarm_common import (
    BENCHMARK_PACKAGES,
    RESERVED_PACKAGES,
    SR,
    N,
    download_deb,
    is_reserved,
    load_mono,
)
from data_prep.make_real_pretrain import PACKAGES as PRETRAIN_PACKAGES

logger = logging.getLogger(__name__)

MAX_SEGMENTS = 24
HOP_S = 2.0

_STK = "usr/share/games/supertuxkart/data/"
_TORCS = "usr/share/games/torcs/data/sound/"
#: package -> (licence summary, files used as backgrounds). Ambience (rain, river, waterfall,
#: birds, restaurant babble, airport PA, crowd, radio static, sheep), engines and machines.
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "supertuxkart-data": (
        "GPL-3+ / CC-BY-SA (per asset)",
        tuple(
            _STK + f
            for f in (
                "sfx/rain.ogg", "sfx/river_loop.ogg", "sfx/waterfall_loop_2.ogg",
                "sfx/exotic-birds.ogg", "sfx/exotic-birds_2.ogg", "sfx/lenautile_restaurant.ogg",
                "sfx/sara_airport_pa.ogg", "sfx/static-radio.ogg", "sfx/goal_scored.ogg",
                "sfx/engine_large.ogg", "sfx/engine_small.ogg", "sfx/machine_sound.ogg",
                "sfx/airplane_jetEngine.ogg", "sfx/spaceship.ogg", "sfx/tractor_beam.ogg",
                "sfx/fireworks_show.ogg", "sfx/thunder.ogg",
                "library/stklib_steamLocomotive_a/steamLocomotive.ogg",
                "tracks/scotland/sheep.ogg", "tracks/black_forest/cow.ogg",
                "tracks/introcutscene2/nolok_speech.ogg",
            )
        ),  # fmt: skip
    ),
    "torcs-data": (
        "GPL-2+ / Free Art License (data)",
        tuple(
            _TORCS + f
            for f in (
                "206_engine.wav", "935.wav", "944.wav", "alpha-romeo.wav", "axle.wav",
                "backfire_loop.wav", "cleanviper.wav", "clkdtmb2.wav", "corolla1400hi2.wav",
                "f360.wav", "ferrarif355.wav", "ford1b.wav", "gt40.wav", "lamborghinidiablo.wav",
                "lotus.wav", "mclarenf1.wav", "nsx.wav", "porsche_engine.wav", "renault-v10.wav",
                "road-ride.wav", "skid_tyres.wav", "turbo1.wav", "viper_long.wav", "xj220.wav",
            )
        ),  # fmt: skip
    ),
}


def is_forbidden(package: str) -> bool:
    """Benchmark package, reserved for the held-out evaluation, or a pretraining class source."""
    return (
        package in BENCHMARK_PACKAGES
        or is_reserved(package)
        or package in {p.name for p in PRETRAIN_PACKAGES}
    )


def check_package(package: str) -> None:
    """Raise ``ValueError`` unless ``package`` is one of :data:`PACKAGES` and allowed."""
    if is_forbidden(package):
        raise ValueError(f"{package} is used by a benchmark, reserved, or a pretraining source")
    if package not in PACKAGES:
        raise ValueError(f"{package} is not one of this generator's packages")


for _name in PACKAGES:  # the list itself must never name a forbidden package
    check_package(_name)


def fetch(name: str, sources: Path) -> dict:
    check_package(name)  # before apt-get can run
    root = sources / name
    info = root / ".package.json"
    if info.is_file():
        return json.loads(info.read_text())
    wanted = set(PACKAGES[name][1])
    version, copyright_file, files = download_deb(name, root, lambda p: p in wanted)
    meta = {"version": version, "copyright_file": copyright_file, "files": sorted(files)}
    info.write_text(json.dumps(meta, indent=1))
    return meta


def segments(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """4 s segments of ``x`` (hop :data:`HOP_S`, at most :data:`MAX_SEGMENTS`, a random subset);
    a shorter sound is looped with a 50 ms cross-fade from a random start."""
    if len(x) < N:
        fade = min(800, len(x) // 4)
        ramp = np.linspace(0, 1, fade)
        unit = x.copy()
        if fade > 1:
            unit[:fade] = x[:fade] * ramp + x[-fade:] * (1 - ramp)
            unit = unit[: len(unit) - fade] if len(unit) > 2 * fade else unit
        reps = N // len(unit) + 2
        long = np.tile(unit, reps)
        out = []
        for _ in range(4):
            a = int(rng.integers(0, len(unit)))
            out.append(long[a : a + N])
        return out
    hop = int(HOP_S * SR)
    starts = list(range(0, len(x) - N + 1, hop))
    if len(starts) > MAX_SEGMENTS:
        starts = sorted(rng.choice(starts, MAX_SEGMENTS, replace=False).tolist())
    return [x[a : a + N] for a in starts]


def make_background_pool(out: Path, *, seed: int = 0, sources: Path | None = None) -> Path:
    from kwsos.tasks.openset import OpenSetClassifier

    t0 = time.perf_counter()
    sources = Path(sources or out.parent / ".sources")
    sources.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clf = OpenSetClassifier()
    feats, source, files, pkg_meta = [], [], [], {}
    for name, (licence, wanted) in PACKAGES.items():
        meta = fetch(name, sources)
        missing = sorted(set(wanted) - set(meta["files"]))
        pkg_meta[name] = {"version": meta["version"], "licence": licence,
                          "copyright_file": meta["copyright_file"], "missing": missing}  # fmt: skip
        for f in wanted:
            if f in missing:
                continue
            try:
                x = load_mono(sources / name / f)
            except Exception as err:  # noqa: BLE001 - unreadable file: dropped, logged
                logger.warning("skipping %s: %s", f, err)
                continue
            if not np.abs(x).max() > 0:
                continue
            segs = [s.astype(np.float32) for s in segments(x, rng) if np.abs(s).max() > 0]
            if not segs:
                continue
            feats.append(clf.features(segs).astype(np.float16))
            source += [len(files)] * len(segs)
            files.append(f"{name}/{f}")
            pkg_meta[name].setdefault("used_files", 0)
            pkg_meta[name]["used_files"] += 1
    front = clf.config.frontend.to_dict()
    options = {"seed": seed, "max_segments": MAX_SEGMENTS, "hop_s": HOP_S,
               "generator": "make_background_pool"}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, features=np.concatenate(feats), source=np.asarray(source), files=np.asarray(files),
             config=json.dumps({**front, **options}))  # fmt: skip
    manifest = {
        "generator": "data_prep.make_background_pool",
        "options": options,
        "forbidden": {"benchmark": list(BENCHMARK_PACKAGES), "reserved": list(RESERVED_PACKAGES),
                      "pretraining_sources": sorted(p.name for p in PRETRAIN_PACKAGES)},
        "packages": pkg_meta,
        "files": files,
        "segments": len(source),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    (out.parent / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info("%d segments of %d files in %.0f s -> %s", len(source), len(files),
                time.perf_counter() - t0, out)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/background_pool/features.npz"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sources", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    make_background_pool(args.out, seed=args.seed, sources=args.sources)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
