"""Make an arbitrarily long test recording (and its reference) by tiling the demo recordings.

Used by the detection benchmark (benchmarks/bench_detect_long.py)::

    python -m data_prep.make_long_recording --minutes 60 --out benchmarks/data/long_60min.flac

Pieces of the demo's ``long.flac`` and ``validation.flac`` are appended in random order with a
random gain (-6..0 dB), and the keyword references are shifted accordingly, so the output is a
realistic recording whose every keyword occurrence is annotated. Written block by block: memory
does not grow with the duration.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from kwsos.io import atomic_output

DEMO = Path(__file__).resolve().parent.parent / "kwsos" / "data" / "demo"
SOURCES = ("long", "validation")


def make_long_recording(out: Path, minutes: float, seed: int = 0, demo_dir: Path = DEMO) -> Path:
    """Write ``out`` (FLAC, 16 kHz) of ``minutes`` minutes and ``out`` with suffix ``.csv``."""
    rng = np.random.default_rng(seed)
    pieces = {}
    for name in SOURCES:
        audio, sr = sf.read(str(demo_dir / f"{name}.flac"), dtype="float32")
        with (demo_dir / f"{name}.csv").open() as f:
            rows = [
                (float(r["onset"]), float(r["offset"]), r["event_label"]) for r in csv.DictReader(f)
            ]
        pieces[name] = (audio, rows)
    target = int(minutes * 60 * sr)
    out.parent.mkdir(parents=True, exist_ok=True)
    written, events = 0, []
    with (
        atomic_output(out) as tmp,
        sf.SoundFile(
            str(tmp), "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16"
        ) as f,
    ):
        while written < target:
            audio, rows = pieces[SOURCES[int(rng.integers(len(SOURCES)))]]
            audio = audio[: target - written] * 10 ** (rng.uniform(-6, 0) / 20)
            f.write(audio)
            t0 = written / sr
            events += [(t0 + a, t0 + b, lab) for a, b, lab in rows if b * sr <= len(audio)]
            written += len(audio)
    with atomic_output(out.with_suffix(".csv")) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["filename", "onset", "offset", "event_label"])
        w.writerows([out.name, f"{a:.3f}", f"{b:.3f}", lab] for a, b, lab in events)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = make_long_recording(args.out, args.minutes, args.seed)
    print(f"wrote {path} ({args.minutes} min) and {path.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
