"""Cut many short recordings (and their references) out of existing ones, for the many-file
detection benchmark (benchmarks/bench_many_files.py)::

    python -m data_prep.make_many_files --source /path/to/kws_tts/test_manifest.csv \\
        --out benchmarks/data/many --n 200 --min-s 2 --max-s 5 --seed 0

The source recordings (a folder of audio files, or a manifest CSV with a ``file`` column of
paths relative to the manifest) are read in order as one stream; ``--n`` segments of a uniformly
random length in ``[--min-s, --max-s]`` start at uniformly random points of that stream (a
segment may run from the end of one recording into the next; segments may overlap). Written:

* ``segments/seg_0000.wav`` ... (16-bit PCM WAV, the sources' rate);
* ``concatenated.wav``: the same segments, in order, as one file (the "same audio as one file"
  comparison);
* ``reference.csv`` and ``concatenated.csv``: the keyword events that lie wholly inside a
  segment, shifted to its (or the concatenated file's) time axis, in the sed_eval format
  ``filename,onset,offset,event_label``;
* ``segments.csv``: every segment's file, duration and start in the source stream.

The events come from ``--reference`` (sed_eval CSV, files matched by base name), by default the
``<split>_reference.csv`` next to a ``<split>_manifest.csv`` source. All sources are held in
memory (fine for the ~10 minutes of the KWS-TTS test split).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from kwsos.audio import AUDIO_SUFFIXES
from kwsos.errors import KwsosError
from kwsos.events import read_events
from kwsos.io import atomic_output, write_csv_atomic
from kwsos.metrics import file_key

HEADER = ("filename", "onset", "offset", "event_label")


def source_files(source: Path) -> list[Path]:
    """The recordings of a folder (recursively, sorted) or of a manifest CSV (``file`` column)."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    elif source.is_file():
        with source.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            col = next((c for c in ("file", "filename") if c in (reader.fieldnames or [])), None)
            if col is None:
                raise KwsosError(f"{source}: a manifest needs a 'file' or 'filename' column")
            files = [source.parent / row[col] for row in reader]
    else:
        raise KwsosError(f"source not found: {source}")
    if not files:
        raise KwsosError(f"no recordings in {source}")
    return files


def default_reference(source: Path) -> Path | None:
    """``<split>_reference.csv`` beside a ``<split>_manifest.csv`` source, if there is one."""
    if source.is_file() and source.stem.endswith("_manifest"):
        ref = source.with_name(source.stem[: -len("_manifest")] + "_reference.csv")
        return ref if ref.is_file() else None
    return None


def make_many_files(
    source: Path,
    out: Path,
    *,
    n: int = 200,
    min_s: float = 2.0,
    max_s: float = 5.0,
    seed: int = 0,
    reference: Path | None = None,
) -> list[Path]:
    """Write the segments, the concatenated file and the references (module docstring) into
    ``out``; returns the segment paths."""
    if n < 1 or not 0 < min_s <= max_s:
        raise KwsosError("need --n >= 1 and 0 < --min-s <= --max-s")
    files = source_files(source)
    reference = reference if reference is not None else default_reference(source)
    by_file: dict[str, list[tuple[float, float, str]]] = {}
    if reference is not None:
        for e in read_events(reference):
            by_file.setdefault(file_key(e.filename), []).append((e.onset, e.offset, e.label))
    waves, rate = [], None
    events: list[tuple[float, float, str]] = []  # in stream time
    t0 = 0.0
    for f in files:
        wave, sr = sf.read(str(f), dtype="float32", always_2d=True)
        if rate is not None and sr != rate:
            raise KwsosError(f"{f} is at {sr} Hz, the other sources at {rate} Hz")
        rate = sr
        waves.append(wave.mean(axis=1))
        events += [(t0 + a, t0 + b, lab) for a, b, lab in by_file.get(file_key(f.name), [])]
        t0 += len(waves[-1]) / sr
    assert rate is not None
    stream = np.concatenate(waves)
    if len(stream) < max_s * rate:
        raise KwsosError(f"the sources hold {len(stream) / rate:.1f} s, less than --max-s")
    rng = np.random.default_rng(seed)
    seg_dir = out / "segments"
    seg_dir.mkdir(parents=True, exist_ok=True)
    for old in seg_dir.glob("seg_*.wav"):
        old.unlink()
    paths, rows, seg_ref, cat_ref, cat = [], [], [], [], []
    cat_t = 0.0
    for i in range(n):
        length = int(round(rng.uniform(min_s, max_s) * rate))
        start = int(rng.integers(0, len(stream) - length + 1))
        seg = stream[start : start + length]
        path = seg_dir / f"seg_{i:04d}.wav"
        with atomic_output(path) as tmp:
            sf.write(str(tmp), seg, rate, format="WAV", subtype="PCM_16")
        paths.append(path)
        cat.append(seg)
        a, b = start / rate, (start + length) / rate
        rows.append([f"segments/{path.name}", f"{length / rate:.3f}", f"{a:.3f}"])
        for on, off, lab in events:
            if on >= a and off <= b:
                seg_ref.append([f"segments/{path.name}", f"{on - a:.3f}", f"{off - a:.3f}", lab])
                cat_ref.append(
                    ["concatenated.wav", f"{on - a + cat_t:.3f}", f"{off - a + cat_t:.3f}", lab]
                )
        cat_t += length / rate
    with atomic_output(out / "concatenated.wav") as tmp:
        sf.write(str(tmp), np.concatenate(cat), rate, format="WAV", subtype="PCM_16")
    write_csv_atomic(out / "reference.csv", seg_ref, HEADER)
    write_csv_atomic(out / "concatenated.csv", cat_ref, HEADER)
    write_csv_atomic(out / "segments.csv", rows, ("filename", "duration_s", "source_start_s"))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="Folder or manifest CSV.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200, help="Number of segments.")
    parser.add_argument("--min-s", type=float, default=2.0)
    parser.add_argument("--max-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference", type=Path, default=None, help="sed_eval CSV of the sources' events."
    )
    args = parser.parse_args()
    try:
        paths = make_many_files(
            args.source,
            args.out,
            n=args.n,
            min_s=args.min_s,
            max_s=args.max_s,
            seed=args.seed,
            reference=args.reference,
        )
    except KwsosError as exc:
        sys.exit(f"error: {exc}")
    total = sum(sf.info(str(p)).duration for p in paths)
    print(
        f"wrote {len(paths)} segments ({total:.1f} s) to {args.out / 'segments'}, "
        f"{args.out / 'concatenated.wav'} and the references"
    )


if __name__ == "__main__":
    main()
