"""Prepare KWS-DailyTalk for kwsos: its annotation CSVs plus a user's copy of the DailyTalk audio.

KWS-DailyTalk (github.com/wilkinghoff/kws-dailytalk) ships annotations only; the audio is
DailyTalk's (``dailytalk/data/<dialog>/<turn>_<speaker>_d<dialog>.wav``). Usage::

    python -m data_prep.prepare_kws_dailytalk --annotations kws-dailytalk \\
        --dailytalk-audio /data/DailyTalk --out data/kws_dailytalk

Annotation files, looked up by name in ``--annotations``:

* ``train_keywords.csv`` (or ``train.csv``), ``kws_dailytalk_validation.csv`` (or
  ``validation.csv``), ``kws_dailytalk_test.csv`` (or ``test.csv``), each with the header
  ``idx,event_label,event_onset,event_offset,file,scene_label``; labels may contain spaces
  ("credit card"), ``file`` is a Windows path such as ``.\\dailytalk\\data\\1003\\0_0_d1003.wav``;
* optional sentence lists ``validation_sentences.csv`` and
  ``kws_splits_5shot_final_test_list.csv`` (headerless; the first column names each sentence,
  e.g. ``.\\dailytalk_kws_ref\\validation\\0_0_d2032.txt``): they add the sentences that hold no
  keyword, which count for false alarms.

An annotation's ``file`` is found by trying, in order: the path relative to the audio folder,
then to the annotation folder, each also with its leading folders dropped one at a time
(so ``--dailytalk-audio`` may be the folder holding ``dailytalk/``, ``dailytalk/`` itself or
``dailytalk/data/``); finally the file name anywhere below the audio folder (any of .wav, .flac,
.ogg). Sentence-list entries are turned into ``dailytalk/data/<dialog>/<name>.wav`` first.

Output (``--out``), the same layout as :mod:`data_prep.make_kws_tts`::

    train/<keyword>/<n>.wav      the annotated keyword cut out of its sentence (+ --shot-margin)
    validation/<name>.wav        symbolic links to the DailyTalk files (--copy: copies)
    test/<name>.wav
    train_manifest.csv           event_label,shot,file,onset,offset,duration,source,scene_label
    validation_manifest.csv      file,duration,n_events,source,scene_label (source: the
    test_manifest.csv            DailyTalk file; sentences without keywords have n_events 0)
    validation_reference.csv     filename,onset,offset,event_label (sed_eval / kwsos evaluate)
    test_reference.csv
    manifest.json                counts per keyword and split, durations, how paths resolved
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import soundfile as sf

from kwsos.errors import KwsosError
from kwsos.io import atomic_output

log = logging.getLogger(__name__)

__all__ = [
    "Annotation",
    "AudioResolver",
    "DailyTalkError",
    "prepare_kws_dailytalk",
    "read_annotations",
    "read_sentence_list",
]

HEADER = ("idx", "event_label", "event_onset", "event_offset", "file", "scene_label")
SPLITS = ("train", "validation", "test")
ANNOTATION_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train_keywords.csv", "train.csv"),
    "validation": ("kws_dailytalk_validation.csv", "validation.csv"),
    "test": ("kws_dailytalk_test.csv", "test.csv"),
}
SENTENCE_LISTS: dict[str, tuple[str, ...]] = {
    "validation": ("validation_sentences.csv", "kws_splits_5shot_final_validation_list.csv"),
    "test": ("kws_splits_5shot_final_test_list.csv", "test_sentences.csv"),
}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SHOTS_EXPECTED = 5
#: An onset this far (s) past the end of its file is an error; a later offset is clipped.
END_TOLERANCE_S = 0.05


class DailyTalkError(KwsosError):
    """A problem with the KWS-DailyTalk annotations or the DailyTalk audio (one line)."""


@dataclass(frozen=True)
class Annotation:
    """One row of a KWS-DailyTalk annotation CSV (times in seconds)."""

    idx: str
    label: str
    onset: float
    offset: float
    file: str
    scene_label: str
    line: int


def read_annotations(path: Path) -> list[Annotation]:
    """Read a KWS-DailyTalk annotation CSV.

    Raises
    ------
    DailyTalkError
        On a missing file, a wrong header, a short row, a non-numeric time, ``onset >= offset``
        or an empty label/file, naming the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DailyTalkError(f"cannot read {path}: {exc}") from None
    rows = [(i, r) for i, r in enumerate(csv.reader(text.splitlines()), start=1) if any(r)]
    if not rows:
        raise DailyTalkError(f"{path} is empty; expected the header {','.join(HEADER)}")
    header = [c.strip().lower() for c in rows[0][1]]
    missing = [c for c in HEADER if c not in header]
    if missing:
        raise DailyTalkError(
            f"{path}: expected the header {','.join(HEADER)}, got {','.join(header)}"
        )
    col = {name: header.index(name) for name in HEADER}
    out = []
    for line, row in rows[1:]:
        if len(row) < len(header):
            raise DailyTalkError(
                f"{path}:{line}: expected {len(header)} fields ({','.join(header)}), got {len(row)}"
            )
        onset_s, offset_s = row[col["event_onset"]].strip(), row[col["event_offset"]].strip()
        try:
            onset, offset = float(onset_s), float(offset_s)
        except ValueError:
            raise DailyTalkError(
                f"{path}:{line}: event_onset/event_offset must be numbers, got {onset_s!r}, {offset_s!r}"
            ) from None
        if not 0 <= onset < offset:  # also rejects NaN
            raise DailyTalkError(f"{path}:{line}: need 0 <= onset < offset, got {onset}, {offset}")
        label = " ".join(row[col["event_label"]].split())
        file = row[col["file"]].strip()
        if not label or not file:
            raise DailyTalkError(f"{path}:{line}: empty event_label or file")
        out.append(
            Annotation(
                row[col["idx"]].strip(),
                label,
                onset,
                offset,
                file,
                row[col["scene_label"]].strip(),
                line,
            )
        )
    if not out:
        raise DailyTalkError(f"{path} has a header but no annotations")
    return out


def read_sentence_list(path: Path) -> list[str]:
    """Read a headerless KWS-DailyTalk sentence list; return DailyTalk-relative audio paths
    ``dailytalk/data/<dialog>/<name>.wav`` (or the entry itself when it has no dialog id)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DailyTalkError(f"cannot read {path}: {exc}") from None
    out = []
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip():
            continue
        name = PureWindowsPath(row[0].strip()).stem
        if not name:
            raise DailyTalkError(f"{path}:{line}: empty sentence entry")
        dialog = re.search(r"_d(\d+)$", name)
        out.append(f"dailytalk/data/{dialog.group(1)}/{name}.wav" if dialog else row[0].strip())
    return out


def _parts(raw: str) -> tuple[str, ...]:
    """Path components of a Windows or POSIX relative path, without drive, root and ``.``."""
    path = PureWindowsPath(raw)
    return tuple(p for p in path.parts[1 if path.anchor else 0 :] if p not in (".", ""))


class AudioResolver:
    """Find DailyTalk audio files named by annotation paths (see the module docstring).

    Parameters
    ----------
    audio_dir
        The user's DailyTalk folder (or a parent or child of its ``data`` folder).
    annotation_dir
        The folder of the annotation CSVs (tried second).
    """

    def __init__(self, audio_dir: Path, annotation_dir: Path) -> None:
        self.audio_dir = Path(audio_dir)
        self.annotation_dir = Path(annotation_dir)
        self._by_name: dict[str, list[Path]] | None = None
        self.rules: Counter[str] = Counter()

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            log.info("indexing audio files under %s (fallback by file name)", self.audio_dir)
            self._by_name = {}
            for root, _, files in os.walk(self.audio_dir, followlinks=True):
                for name in files:
                    if name.lower().endswith(AUDIO_SUFFIXES):
                        stem = name.rsplit(".", 1)[0]
                        self._by_name.setdefault(stem, []).append(Path(root) / name)
        return self._by_name

    def resolve(self, raw: str) -> Path | None:
        """The audio file for annotation path ``raw``, or None if none (or several) match."""
        parts = _parts(raw)
        if not parts:
            return None
        for base, rule in ((self.audio_dir, "audio-dir"), (self.annotation_dir, "annotation-dir")):
            for k in range(len(parts)):
                candidate = base.joinpath(*parts[k:])
                if candidate.is_file():
                    self.rules[f"{rule} relative" if k == 0 else f"{rule} tail"] += 1
                    return candidate
        stem = PurePosixPath(parts[-1]).stem
        matches = self._index().get(stem, [])
        if len(matches) == 1:
            self.rules["file name"] += 1
            return matches[0]
        if len(matches) > 1:
            log.warning("%d files named %s under %s; ambiguous", len(matches), stem, self.audio_dir)
        return None


def _find(annotation_dir: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (annotation_dir / name).is_file():
            return annotation_dir / name
    return None


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    path.chmod(0o644)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _link_or_copy(source: Path, target: Path, copy: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if not copy:
        try:
            target.symlink_to(source.resolve())
            return
        except OSError:
            log.warning("cannot create symbolic links in %s; copying", target.parent)
    shutil.copyfile(source, target)


def prepare_kws_dailytalk(
    annotations_dir: Path,
    audio_dir: Path,
    out_dir: Path,
    *,
    shot_margin_s: float = 0.0,
    copy: bool = False,
) -> dict[str, Any]:
    """Turn the KWS-DailyTalk annotations and the DailyTalk audio into kwsos's layout.

    Parameters
    ----------
    annotations_dir
        Folder with the KWS-DailyTalk CSVs (see the module docstring for the names).
    audio_dir
        The user's DailyTalk audio folder.
    out_dir
        Output folder (created; files written by an earlier run are replaced).
    shot_margin_s
        Seconds of context kept on each side of an enrollment keyword when it is cut out of
        its sentence (0: exactly the annotated segment).
    copy
        Copy the validation/test recordings instead of linking to them.

    Returns
    -------
    dict
        The manifest also written to ``out_dir/manifest.json``.

    Raises
    ------
    DailyTalkError
        Missing or malformed annotation files, or audio files that cannot be found.
    """
    annotations_dir, audio_dir, out_dir = Path(annotations_dir), Path(audio_dir), Path(out_dir)
    if not annotations_dir.is_dir():
        raise DailyTalkError(f"annotation folder not found: {annotations_dir}")
    if not audio_dir.is_dir():
        raise DailyTalkError(f"DailyTalk audio folder not found: {audio_dir}")
    if shot_margin_s < 0:
        raise DailyTalkError("--shot-margin must be >= 0")
    annotations: dict[str, list[Annotation]] = {}
    sources: dict[str, str] = {}
    for split in SPLITS:
        path = _find(annotations_dir, ANNOTATION_FILES[split])
        if path is None:
            raise DailyTalkError(
                f"no {split} annotations in {annotations_dir} "
                f"(expected {' or '.join(ANNOTATION_FILES[split])})"
            )
        annotations[split] = read_annotations(path)
        sources[split] = path.name
    extra: dict[str, list[str]] = {}
    for split, names in SENTENCE_LISTS.items():
        path = _find(annotations_dir, names)
        extra[split] = read_sentence_list(path) if path else []
        if path:
            sources[f"{split}_sentences"] = path.name

    resolver = AudioResolver(audio_dir, annotations_dir)
    by_key: dict[tuple[str, ...], Path | None] = {}
    resolved: dict[str, Path | None] = {}
    missing: list[str] = []
    wanted = [a.file for split in SPLITS for a in annotations[split]]
    wanted += [raw for split in extra for raw in extra[split]]
    for raw in wanted:
        key = _parts(raw)  # one file, however its path is spelled
        if key not in by_key:
            by_key[key] = resolver.resolve(raw)
            if by_key[key] is None:
                missing.append(raw)
        resolved[raw] = by_key[key]
    if missing:
        raise DailyTalkError(
            f"{len(missing)} of {len(by_key)} audio files not found under {audio_dir} "
            f"(first: {missing[0]}); give --dailytalk-audio the folder that holds DailyTalk's "
            "data/<dialog>/<file>.wav"
        )
    durations: dict[Path, float] = {}
    for path in {p for p in resolved.values() if p is not None}:
        try:
            durations[path] = sf.info(str(path)).duration
        except RuntimeError as exc:
            raise DailyTalkError(f"cannot read audio {path}: {exc}") from None

    clipped = 0
    for split in SPLITS:
        for a in annotations[split]:
            duration = durations[resolved[a.file]]  # type: ignore[index]
            if a.onset >= duration - END_TOLERANCE_S:
                raise DailyTalkError(
                    f"{sources[split]}:{a.line}: onset {a.onset} s is past the end of "
                    f"{resolved[a.file]} ({duration:.2f} s)"
                )
            clipped += a.offset > duration

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "dataset": "KWS-DailyTalk",
        "annotations": str(annotations_dir.resolve()),
        "audio": str(audio_dir.resolve()),
        "annotation_files": sources,
        "shot_margin_s": shot_margin_s,
        "recordings": "copied" if copy else "symbolic links",
        "path_resolution": dict(resolver.rules),
        "offsets_clipped_to_file_end": int(clipped),
    }
    manifest["train"] = _write_shots(
        out_dir, annotations["train"], resolved, durations, shot_margin_s
    )
    for split in ("validation", "test"):
        manifest[split] = _write_recordings(
            out_dir, split, annotations[split], extra[split], resolved, durations, copy
        )
    with atomic_output(out_dir / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out_dir / "manifest.json").chmod(0o644)
    return manifest


def _write_shots(
    out_dir: Path,
    annotations: list[Annotation],
    resolved: dict[str, Path | None],
    durations: dict[Path, float],
    margin_s: float,
) -> dict[str, Any]:
    """Cut every train annotation out of its sentence into ``train/<keyword>/<n>.wav``."""
    rows, counts = [], Counter()
    for a in annotations:
        source = resolved[a.file]
        assert source is not None
        counts[a.label] += 1
        n = counts[a.label]
        info = sf.info(str(source))
        start = max(0.0, a.onset - margin_s)
        stop = min(durations[source], a.offset + margin_s)
        audio, rate = sf.read(
            str(source),
            start=int(round(start * info.samplerate)),
            stop=int(round(stop * info.samplerate)),
            dtype="float32",
            always_2d=True,
        )
        rel = f"train/{a.label.replace(' ', '_')}/{n}.wav"
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target) as tmp:
            sf.write(str(tmp), audio.mean(axis=1), rate, subtype="PCM_16")
        target.chmod(0o644)
        shot_duration = len(audio) / rate
        onset = a.onset - start
        rows.append(
            [
                a.label,
                n,
                rel,
                _fmt(onset),
                _fmt(min(onset + a.offset - a.onset, shot_duration)),
                _fmt(shot_duration),
                str(source),
                a.scene_label,
            ]
        )
    odd = {k: v for k, v in counts.items() if v != SHOTS_EXPECTED}
    if odd:
        log.warning("keywords without %d shots: %s", SHOTS_EXPECTED, odd)
    _write_csv(
        out_dir / "train_manifest.csv",
        ("event_label", "shot", "file", "onset", "offset", "duration", "source", "scene_label"),
        rows,
    )
    return {
        "keywords": sorted(counts),
        "counts": dict(sorted(counts.items())),
        "files": len(rows),
        "duration_s": round(sum(float(r[5]) for r in rows), 2),
    }


def _write_recordings(
    out_dir: Path,
    split: str,
    annotations: list[Annotation],
    extra: list[str],
    resolved: dict[str, Path | None],
    durations: dict[Path, float],
    copy: bool,
) -> dict[str, Any]:
    """Link the split's recordings, write its reference CSV and manifest; return statistics."""
    recordings: dict[Path, str] = {}  # source -> file relative to out_dir
    scene: dict[Path, str] = {}
    events: dict[Path, list[Annotation]] = {}
    for raw in [a.file for a in annotations] + extra:
        source = resolved[raw]
        assert source is not None
        if source in recordings:
            continue
        rel = f"{split}/{source.name}"
        if rel in recordings.values():
            raise DailyTalkError(f"two {split} recordings are both named {source.name}")
        recordings[source] = rel
        events[source] = []
    for a in annotations:
        source = resolved[a.file]
        assert source is not None
        events[source].append(a)
        scene.setdefault(source, a.scene_label)
    reference = []
    for source, rel in sorted(recordings.items(), key=lambda item: item[1]):
        _link_or_copy(source, out_dir / rel, copy)
        for a in sorted(events[source], key=lambda e: e.onset):
            offset = min(a.offset, durations[source])
            reference.append([rel, _fmt(a.onset), _fmt(offset), a.label])
    _write_csv(
        out_dir / f"{split}_reference.csv",
        ("filename", "onset", "offset", "event_label"),
        reference,
    )
    _write_csv(
        out_dir / f"{split}_manifest.csv",
        ("file", "duration", "n_events", "source", "scene_label"),
        (
            [rel, _fmt(durations[s]), len(events[s]), str(s), scene.get(s, "")]
            for s, rel in sorted(recordings.items(), key=lambda item: item[1])
        ),
    )
    counts = Counter(a.label for a in annotations)
    n_events = [len(v) for v in events.values()]
    return {
        "files": len(recordings),
        "files_without_keywords": int(sum(n == 0 for n in n_events)),
        "duration_s": round(sum(durations[s] for s in recordings), 2),
        "events": len(annotations),
        "max_events_per_file": int(max(n_events, default=0)),
        "counts": dict(sorted(counts.items())),
        "mean_event_duration_s": round(
            float(np.mean([a.offset - a.onset for a in annotations])), 3
        ),
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (exit status 2 with one line on a user error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--annotations", type=Path, required=True, help="folder with the KWS-DailyTalk CSVs"
    )
    parser.add_argument(
        "--dailytalk-audio", type=Path, required=True, help="your DailyTalk audio folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--shot-margin",
        type=float,
        default=0.0,
        help="seconds of context around each enrollment keyword (default 0)",
    )
    parser.add_argument(
        "--copy", action="store_true", help="copy validation/test audio instead of linking"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        manifest = prepare_kws_dailytalk(
            args.annotations,
            args.dailytalk_audio,
            args.out,
            shot_margin_s=args.shot_margin,
            copy=args.copy,
        )
    except KwsosError as exc:
        print(f"prepare_kws_dailytalk: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    train = manifest["train"]
    print(f"train: {train['files']} shots of {len(train['keywords'])} keywords")
    for split in ("validation", "test"):
        s = manifest[split]
        print(
            f"{split}: {s['files']} files ({s['files_without_keywords']} without keywords), "
            f"{s['duration_s'] / 60:.1f} min, {s['events']} keyword events"
        )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
