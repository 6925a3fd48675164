"""Derive a matched-speaker variant of a KWS benchmark: the shots are cut from validation sentences.

KWS-DailyTalk enrolls and tests the same two speakers; KWS-TTS (:mod:`data_prep.make_kws_tts`)
enrolls voices that never speak a test sentence. To measure how much of a system's result is
owed to that speaker mismatch, this command builds a copy of a benchmark whose enrollment shots
are keyword occurrences of the *validation* split (whose voices are the test voices in KWS-TTS):

* per keyword, ``--shots`` occurrences are chosen from distinct voices first, the cleanest
  (highest SNR, then no reverberation, then no speed change) first; each is cut from its
  sentence with ``--margin`` seconds on each side (so the shots carry the sentence's noise and
  coarticulation, like shots cut from real conversations);
* the validation sentences that gave a shot are dropped from the new validation split (the
  threshold is never tuned on the shots' own sentences);
* the test split is the original one, unchanged (the manifests point at the original files).

Usage::

    python -m data_prep.make_matched_shots --data data/kws_tts --out data/kws_tts_matched

The output has the KWS-DailyTalk layout that the ``recipes/kws_tts`` stages read (``load_dataset``
in ``recipes/kws_tts/local/experiment.py``): ``train_manifest.csv``,
``{validation,test}_manifest.csv``, ``{validation,test}_reference.csv``,
``train/<keyword>/<n>.wav``, and a README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from kwsos.errors import KwsosError
from kwsos.events import read_events
from kwsos.io import read_csv_rows
from kwsos.metrics import file_key

#: What a missing manifest is called in the error message.
MANIFEST = "KWS-DailyTalk-layout manifest"


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def choose_shots(occurrences: list[dict], n_shots: int) -> list[dict]:
    """``n_shots`` occurrences, distinct voices first, cleanest first.

    Each occurrence is a dict with ``voice``, ``snr_db``, ``rt60_s``, ``speed`` and ``file``;
    at most one shot per sentence file.
    """
    ranked = sorted(
        occurrences,
        key=lambda o: (-o["snr_db"], o["rt60_s"], abs(o["speed"] - 1.0), o["file"], o["onset"]),
    )
    chosen: list[dict] = []
    voices: set[str] = set()
    files: set[str] = set()
    for distinct in (True, False):
        for o in ranked:
            if len(chosen) == n_shots:
                return chosen
            if o["file"] in files or (distinct and o["voice"] in voices):
                continue
            chosen.append(o)
            voices.add(o["voice"])
            files.add(o["file"])
    return chosen


def derive(data: Path, out: Path, *, n_shots: int = 5, margin_s: float = 0.05) -> dict:
    """Build the matched-speaker copy of ``data`` in ``out`` (see module docstring)."""
    data, out = data.resolve(), out.resolve()
    train = read_csv_rows(data / "train_manifest.csv", ["event_label", "file"], what=MANIFEST)
    keywords = list(dict.fromkeys(r["event_label"] for r in train))
    val_rows = read_csv_rows(data / "validation_manifest.csv", ["file"], what=MANIFEST)
    meta = {file_key(r["file"]): r for r in val_rows}
    val_ref = read_events(data / "validation_reference.csv")
    by_kw: dict[str, list[dict]] = defaultdict(list)
    for e in val_ref:
        m = meta.get(file_key(e.filename))
        if m is None:
            raise KwsosError(f"validation_reference.csv names {e.filename}, not in the manifest")
        by_kw[e.label].append(
            {
                "file": m["file"],
                "onset": e.onset,
                "offset": e.offset,
                "voice": m.get("scene_label", ""),
                "snr_db": _float(m.get("snr_db"), np.inf),
                "rt60_s": _float(m.get("rt60_s"), 0.0),
                "speed": _float(m.get("speed"), 1.0),
            }
        )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "train").mkdir(parents=True)
    try:
        summary = _write_variant(data, out, tmp, keywords, by_kw, n_shots, margin_s)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return summary


def _write_variant(
    data: Path,
    out: Path,
    tmp: Path,
    keywords: list[str],
    by_kw: dict[str, list[dict]],
    n_shots: int,
    margin_s: float,
) -> dict:
    shots_rows, used = [], set()
    for kw in keywords:
        picked = choose_shots(by_kw.get(kw, []), n_shots)
        if len(picked) < n_shots:
            raise KwsosError(
                f"keyword {kw!r}: {len(picked)} validation occurrences in distinct sentences, "
                f"{n_shots} needed"
            )
        folder = tmp / "train" / kw.replace(" ", "_")
        folder.mkdir()
        for i, o in enumerate(picked, 1):
            info = sf.info(str(data / o["file"]))
            a = max(0, int(round((o["onset"] - margin_s) * info.samplerate)))
            b = min(info.frames, int(round((o["offset"] + margin_s) * info.samplerate)))
            wave, sr = sf.read(str(data / o["file"]), start=a, stop=b, dtype="float32")
            rel = f"train/{kw.replace(' ', '_')}/{i}.wav"
            sf.write(str(tmp / rel), wave, sr, subtype="PCM_16")
            used.add(file_key(o["file"]))
            shots_rows.append(
                {
                    "event_label": kw,
                    "shot": i,
                    "file": rel,
                    "source_file": o["file"],
                    "source_onset": f"{o['onset']:.3f}",
                    "source_offset": f"{o['offset']:.3f}",
                    "scene_label": o["voice"],
                    "snr_db": o["snr_db"],
                    "rt60_s": o["rt60_s"],
                    "speed": o["speed"],
                }
            )
    _write_csv(tmp / "train_manifest.csv", shots_rows)
    rel_data = Path(os.path.relpath(data, out))
    stats = {}
    for split in ("validation", "test"):
        rows = read_csv_rows(data / f"{split}_manifest.csv", ["file"], what=MANIFEST)
        ref = read_events(data / f"{split}_reference.csv")
        if split == "validation":
            rows = [r for r in rows if file_key(r["file"]) not in used]
            ref = [e for e in ref if file_key(e.filename) not in used]
        _write_csv(
            tmp / f"{split}_manifest.csv", [{**r, "file": str(rel_data / r["file"])} for r in rows]
        )
        with open(tmp / f"{split}_reference.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "onset", "offset", "event_label"])
            for e in ref:
                w.writerow(
                    [str(rel_data / e.filename), f"{e.onset:.3f}", f"{e.offset:.3f}", e.label]
                )
        stats[split] = {"files": len(rows), "events": len(ref)}
    voices = sorted({r["scene_label"] for r in shots_rows})
    summary = {
        "source": str(data),
        "n_shots": n_shots,
        "margin_s": margin_s,
        "shot_voices": voices,
        "validation_files_dropped": len(used),
        **stats,
    }
    (tmp / "manifest.json").write_text(json.dumps(summary, indent=2) + "\n")
    (tmp / "README.md").write_text(
        "# Matched-speaker variant of `{src}`\n\n"
        "Built by `python -m data_prep.make_matched_shots --data {src} --out {out} --shots {n} "
        "--margin {m}`.\n\n"
        "Enrollment shots are {n} keyword occurrences per keyword cut from the source's "
        "validation sentences (voices: {voices}), with {m} s margins; the {d} validation "
        "sentences that gave a shot are left out of validation ({vf} files, {ve} events remain). "
        "Test is the source's test split ({tf} files, {te} events), read from the source folder.\n".format(
            src=data,
            out=out,
            n=n_shots,
            m=margin_s,
            voices=", ".join(voices),
            d=len(used),
            vf=stats["validation"]["files"],
            ve=stats["validation"]["events"],
            tf=stats["test"]["files"],
            te=stats["test"]["events"],
        )
    )
    return summary


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("data/kws_tts"), help="source benchmark")
    p.add_argument("--out", type=Path, default=Path("data/kws_tts_matched"), help="output folder")
    p.add_argument("--shots", type=int, default=5, help="shots per keyword")
    p.add_argument("--margin", type=float, default=0.05, help="seconds kept around each occurrence")
    args = p.parse_args(argv)
    try:
        summary = derive(args.data, args.out, n_shots=args.shots, margin_s=args.margin)
    except KwsosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
