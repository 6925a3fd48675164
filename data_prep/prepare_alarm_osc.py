"""Prepare the few-shot open-set domestic alarm dataset of Naranjo-Alcazar et al. for kwsos.

The dataset (Diss. 6.2.1, Table 28; "An Open-Set Recognition and Few-Shot Learning Dataset for
Audio Event Classification in Domestic Environments") has 24 known alarm classes and 10 unwanted
(unknown) classes, 40 clips of 4 s at 16 kHz each::

    <root>/data/pattern_sounds/<class>/*.wav     known alarm sounds
    <root>/data/unwanted_sounds/<class>/*.wav    unwanted sounds
    <root>/data/meta/csv/few_shot_k_<K>_openness_<O>.csv

One meta CSV per setting (K = 1, 2, 4 shots; O = 0, 50, 100 % of the unwanted classes never
seen in training = openness low / middle / high), with the columns ``filename,target,fold``
(``target`` is the known class or ``unknown``; ``filename`` is relative to ``<root>``). Fold
``f`` of a setting trains on the clips with ``fold == f`` (K shots of every known class, and K
clips of every unwanted class that is seen in training) and tests on all the other clips; the
clips of the never-seen unwanted classes carry an extra fold number (41 / 21 / 11) and are
always test clips.

Unlike the public reference code (SPEC §8), every meta CSV is read and checked on its own (no
audio cache shared across settings), and a clip is unknown because its own ``target`` says so,
whatever its fold number (the reference code relabels only fold 41, which is wrong for 2 and 4
shots). The folds used for training are the folds that hold known-class clips.

Output, per setting ``<K>shot_<low|middle|high>`` and fold::

    <out>/<setting>/fold_<NN>/train.csv    the shots
    <out>/<setting>/fold_<NN>/test.csv     every other clip
    <out>/index.csv                        one row per (setting, fold), with the openness

with the columns ``path,label,class,role,fold``: ``path`` absolute; ``label`` the known class or
``unknown``; ``class`` the clip's folder (so the unwanted classes seen in training can also be
modelled separately); ``role`` one of ``known``, ``unknown_seen`` (an unwanted class with shots
in this fold's training set, "known unknown" in Table 28) or ``unknown_unseen``.

Usage::

    python -m data_prep.prepare_alarm_osc /path/to/dataset --out data/alarm_osc
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kwsos.io import atomic_output, read_csv_rows
from kwsos.metrics import openness

__all__ = [
    "MANIFEST_COLUMNS",
    "OPENNESS_LEVELS",
    "UNKNOWN",
    "Clip",
    "Setting",
    "find_meta_csvs",
    "prepare_alarm_osc",
    "read_manifest",
    "read_meta_csv",
]

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
#: Percentage of unwanted classes never seen in training -> openness level (Diss. Table 28).
OPENNESS_LEVELS: dict[int, str] = {0: "low", 50: "middle", 100: "high"}
MANIFEST_COLUMNS = ("path", "label", "class", "role", "fold")

_NAME_PATTERNS = (
    re.compile(r"few_shot_k_(?P<k>\d+)_openness_(?P<o>\d+)$", re.IGNORECASE),
    re.compile(r"(?P<k>\d+)[_-]?shots?[_-]?openness[_-]?(?P<o>low|middle|medium|high|\d+)$", re.I),
)
_LEVEL_PCT = {"low": 0, "middle": 50, "medium": 50, "high": 100}


@dataclass(frozen=True)
class Setting:
    """One meta CSV: ``shots`` per class and the percentage of never-seen unwanted classes."""

    shots: int
    openness_pct: int
    meta_csv: Path

    @property
    def level(self) -> str:
        return OPENNESS_LEVELS.get(self.openness_pct, f"{self.openness_pct}pct")

    @property
    def name(self) -> str:
        return f"{self.shots}shot_{self.level}"


@dataclass(frozen=True)
class Clip:
    """One row of a meta CSV, resolved."""

    path: Path
    label: str  # known class or UNKNOWN
    source_class: str  # the clip's folder
    fold: int

    @property
    def is_unknown(self) -> bool:
        return self.label == UNKNOWN


def parse_setting(path: Path) -> tuple[int, int] | None:
    """``(shots, openness_pct)`` from a meta CSV name, or None if the name does not match."""
    for pattern in _NAME_PATTERNS:
        m = pattern.search(path.stem)
        if m:
            o = m.group("o").lower()
            return int(m.group("k")), _LEVEL_PCT[o] if o in _LEVEL_PCT else int(o)
    return None


def find_meta_csvs(source_dir: Path) -> list[Setting]:
    """All meta CSVs under ``source_dir`` whose name gives the shots and the openness.

    Recognised names: ``few_shot_k_<K>_openness_<0|50|100>.csv`` (the dataset's) and
    ``<K>shot_openness<low|middle|high>.csv``. Sorted by shots, then openness.
    """
    source_dir = Path(source_dir)
    found: dict[tuple[int, int], Path] = {}
    for path in sorted(source_dir.rglob("*.csv")):
        parsed = parse_setting(path)
        if parsed is None:
            continue
        if parsed in found:
            raise ValueError(
                f"two meta CSVs for {parsed[0]} shots / openness {parsed[1]} %: "
                f"{found[parsed]} and {path}"
            )
        found[parsed] = path
    return [Setting(k, o, p) for (k, o), p in sorted(found.items())]


def _resolve(root: Path, filename: str) -> Path:
    """The audio file a meta CSV row names, relative to the dataset root (``data/`` optional)."""
    rel = filename.strip().replace("\\", "/").lstrip("/")
    candidates = [root / rel, root / "data" / rel]
    if rel.startswith("data/"):
        candidates.append(root / rel[len("data/") :])
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return candidates[0].resolve()


def read_meta_csv(meta_csv: Path, root: Path, *, check_files: bool = True) -> list[Clip]:
    """Read one meta CSV (``filename,target,fold``) into clips; nothing is shared or cached.

    Parameters
    ----------
    meta_csv
        The CSV file.
    root
        Folder that the ``filename`` column is relative to (the one holding ``data/``).
    check_files
        Raise if an audio file does not exist.
    """
    meta_csv = Path(meta_csv)
    with meta_csv.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("filename", "target", "fold") if c not in columns]
        if missing:
            raise ValueError(
                f"{meta_csv}: missing column(s) {', '.join(missing)} "
                f"(expected filename,target,fold; found {','.join(columns) or 'nothing'})"
            )
        reader.fieldnames = columns
        clips, seen, absent = [], set(), []
        for line, row in enumerate(reader, start=2):
            name = (row["filename"] or "").strip()
            if not name:
                raise ValueError(f"{meta_csv}:{line}: empty filename")
            if name in seen:
                raise ValueError(f"{meta_csv}:{line}: {name} is listed twice")
            seen.add(name)
            try:
                fold = int(float(row["fold"]))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{meta_csv}:{line}: fold {row['fold']!r} is not a number"
                ) from None
            target = (row["target"] or "").strip()
            if not target:
                raise ValueError(f"{meta_csv}:{line}: empty target")
            label = UNKNOWN if target.lower() == UNKNOWN else target
            path = _resolve(root, name)
            if check_files and not path.is_file():
                absent.append(name)
            source_class = Path(name.replace("\\", "/")).parent.name or label
            clips.append(Clip(path, label, source_class, fold))
    if absent:
        raise ValueError(
            f"{meta_csv}: {len(absent)} audio file(s) not found under {root}, e.g. {absent[0]}"
        )
    if not clips:
        raise ValueError(f"{meta_csv}: no rows")
    return clips


def _train_folds(clips: Sequence[Clip], setting: Setting) -> list[int]:
    """The folds holding known-class clips, checked to hold ``shots`` clips of each class."""
    known_classes = sorted({c.label for c in clips if not c.is_unknown})
    if not known_classes:
        raise ValueError(f"{setting.meta_csv}: no known-class clip (every target is unknown)")
    folds = sorted({c.fold for c in clips if not c.is_unknown})
    counts = Counter((c.fold, c.label) for c in clips if not c.is_unknown)
    for fold in folds:
        for label in known_classes:
            n = counts[(fold, label)]
            if n != setting.shots:
                raise ValueError(
                    f"{setting.meta_csv}: fold {fold} has {n} clip(s) of class {label}, "
                    f"expected {setting.shots} (one fold = the shots of one training set)"
                )
    return folds


def _role(clip: Clip, seen_classes: set[str]) -> str:
    if not clip.is_unknown:
        return "known"
    return "unknown_seen" if clip.source_class in seen_classes else "unknown_unseen"


def _write_manifest(path: Path, clips: Sequence[Clip], seen: set[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS)
        for c in clips:
            w.writerow([str(c.path), c.label, c.source_class, _role(c, seen), c.fold])


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a ``train.csv`` / ``test.csv`` (or ``index.csv``) written by this module.

    A missing or unreadable file is a one-line :class:`~kwsos.errors.KwsosError` (a ValueError).
    """
    return read_csv_rows(path, what="manifest")


def prepare_alarm_osc(
    source_dir: Path,
    out_dir: Path,
    *,
    settings: Sequence[str] | None = None,
    meta_csvs: Sequence[Path] | None = None,
    check_files: bool = True,
) -> Path:
    """Write the per-fold train / test manifests of every setting; return ``index.csv``.

    Parameters
    ----------
    source_dir
        Dataset root (holding ``data/pattern_sounds``, ``data/unwanted_sounds`` and the meta
        CSVs). The benchmark of :mod:`data_prep.make_alarm_bench` has the same layout.
    out_dir
        Output folder.
    settings
        Setting names to keep, e.g. ``["1shot_low", "4shot_high"]``; default all found.
    meta_csvs
        Explicit meta CSVs (named as in :func:`find_meta_csvs`) instead of searching
        ``source_dir``.
    check_files
        Check that every audio file exists.

    Returns
    -------
    Path of ``<out_dir>/index.csv`` with the columns ``setting, shots, openness_pct, openness,
    fold, train, test, n_train, n_test, n_known_classes, n_unknown_seen, n_unknown_unseen``.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise ValueError(f"dataset folder {source_dir} does not exist")
    if meta_csvs is not None:
        found = []
        for p in meta_csvs:
            parsed = parse_setting(Path(p))
            if parsed is None:
                raise ValueError(
                    f"cannot tell shots and openness from the name {Path(p).name} "
                    "(expected few_shot_k_<K>_openness_<0|50|100>.csv)"
                )
            found.append(Setting(parsed[0], parsed[1], Path(p)))
    else:
        found = find_meta_csvs(source_dir)
    if not found:
        raise ValueError(f"no meta CSV (few_shot_k_<K>_openness_<O>.csv) found under {source_dir}")
    if settings is not None:
        wanted = set(settings)
        unknown = wanted - {s.name for s in found}
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; "
                f"available: {', '.join(s.name for s in found)}"
            )
        found = [s for s in found if s.name in wanted]

    index_rows = []
    for setting in found:
        clips = read_meta_csv(setting.meta_csv, source_dir, check_files=check_files)
        folds = _train_folds(clips, setting)
        n_known = len({c.label for c in clips if not c.is_unknown})
        all_unknown = {c.source_class for c in clips if c.is_unknown}
        by_fold: dict[int, list[Clip]] = defaultdict(list)
        for c in clips:
            by_fold[c.fold].append(c)
        for fold in folds:
            train = by_fold[fold]
            test = [c for c in clips if c.fold != fold]
            seen = {c.source_class for c in train if c.is_unknown}
            fold_dir = out_dir / setting.name / f"fold_{fold:02d}"
            _write_manifest(fold_dir / "train.csv", train, seen)
            _write_manifest(fold_dir / "test.csv", test, seen)
            n_train_classes = n_known + len(seen)
            n_test_classes = n_known + len({c.source_class for c in test if c.is_unknown})
            index_rows.append(
                [
                    setting.name,
                    setting.shots,
                    setting.openness_pct,
                    f"{openness(n_train_classes, max(n_test_classes, n_train_classes)):.4f}",
                    fold,
                    str((fold_dir / "train.csv").resolve()),
                    str((fold_dir / "test.csv").resolve()),
                    len(train),
                    len(test),
                    n_known,
                    len(seen),
                    len(all_unknown - seen),
                ]
            )
        logger.info(
            "%s: %d clips, %d known classes, %d unwanted classes, %d folds",
            setting.name,
            len(clips),
            n_known,
            len(all_unknown),
            len(folds),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.csv"
    with atomic_output(index) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            [
                "setting",
                "shots",
                "openness_pct",
                "openness",
                "fold",
                "train",
                "test",
                "n_train",
                "n_test",
                "n_known_classes",
                "n_unknown_seen",
                "n_unknown_unseen",
            ]
        )
        w.writerows(index_rows)
    return index


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="dataset root (holds data/ and the meta CSVs)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--setting",
        action="append",
        dest="settings",
        help="keep only this setting, e.g. 1shot_low (repeatable); default all",
    )
    parser.add_argument(
        "--no-check-files", action="store_true", help="do not check that the audio files exist"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        index = prepare_alarm_osc(
            args.source, args.out, settings=args.settings, check_files=not args.no_check_files
        )
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    rows = read_manifest(index)
    for name in dict.fromkeys(r["setting"] for r in rows):
        sel = [r for r in rows if r["setting"] == name]
        print(
            f"{name:12s} openness {sel[0]['openness']}  folds {len(sel):2d}  "
            f"train {sel[0]['n_train']:>4s}  test {sel[0]['n_test']:>5s}"
        )
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
