"""DCASE 2020/2022/2023 Task 2 (machine anomalous sound detection) data sets as downloaded,
the official submission files and the official evaluation (Diss. 2.10.1, 3.4, 5.3; SPEC §6).

Layouts (checked against the official baselines and evaluators: ``y-kawagu/dcase2020_task2_baseline``,
``nttcslab/dcase2023_task2_baseline_ae`` (``datasets/loader_common.py``,
``data_download_2023dev.sh``), ``y-kawagu/dcase2020_task2_evaluator/evaluator.py``,
``Kota-Dohi/dcase2022_evaluator/dcase2022_task2_evaluator.py`` and
``nttcslab/dcase2023_task2_evaluator/dcase2023_task2_evaluator.py``):

``dcase2020``
    ``<root>/dev_data/<machine>/train/normal_id_XX_NNNNNNNN.wav``,
    ``<root>/dev_data/<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav``; the additional
    training data ``<root>/eval_data/<machine>/train/normal_id_XX_...wav`` and the anonymised
    evaluation test clips ``<root>/eval_data/<machine>/test/id_XX_NNNNNNNN.wav``. The machine
    ID ``XX`` is the clip's ``section``; there are no domains (``domain == ""``).
``dcase2022`` / ``dcase2023``
    ``<root>/dev_data/raw/<machine>/train/section_XX_<source|target>_train_normal_NNNN_<attrs>.wav``
    (the 2023 baseline's place; ``<root>/dev_data/<machine>`` as the 2022 baseline unpacks it
    is accepted too), ``.../test/section_XX_<source|target>_test_<normal|anomaly>_NNNN_<attrs>.wav``
    and ``<machine>/attributes_XX.csv`` (header ``file_name,d1p,d1v[,d2p,d2v,...]``,
    ``file_name`` = ``<machine>/<train|test>/<clip>.wav``); evaluation test clips are
    anonymised as ``section_XX_NNNN.wav``. ``<attrs>`` is ``key_value`` pairs (``m-n_W``,
    ``car_A1_spd_28V_mic_1``) or ``noAttribute``.

``root`` may be the download root (holding ``dev_data`` and/or ``eval_data``), ``dev_data``,
``dev_data/raw``, ``eval_data[/raw]`` or one machine folder. Machine types are the folder
names found (there is no built-in list).

Telling DCASE2022 from DCASE2023 (same file names): DCASE2022 has sections 00-02 (dev) and
03-05 (eval) per machine type, DCASE2023 one section ``00`` per machine type. A data set with a
section other than ``00`` is ``dcase2022``; one with only section ``00`` is ``dcase2023``
(a DCASE2022 subset holding only section 00 must be forced with ``layout="dcase2022"``).
Nothing else differs in this module: both have the same submission files and the same
official score.

Ground truth of the evaluation sets (``ground_truth=``):

- a checkout of the DCASE2022/2023 evaluator, i.e. a folder with
  ``ground_truth_data/ground_truth_<machine>_section_XX_test.csv`` (rows ``clip.wav,0|1``, no
  header, 1 = anomaly) and ``ground_truth_domain/ground_truth_<machine>_section_XX_test.csv``
  (rows ``clip.wav,0|1``, 1 = target domain), optionally ``ground_truth_attributes/`` (2023:
  ``ground_truth_<machine>_section_XX_test.csv`` rows ``clip.wav,<full name without .wav>``;
  2022: ``<machine>/attributes_XX.csv`` with a ``file_name_with_full_attributes`` column);
- an ``eval_data_list`` CSV (the DCASE2020 ground truth ``eval_data_list.csv``, or the copies
  for later years in the 2023 baseline's ``datasets/eval_data_list_20XX.csv``): a line holding
  only a machine type starts its block, then rows ``anonymised.wav,labelled.wav[,0|1]``; or a
  folder holding ``eval_data_list.csv`` (the DCASE2020 evaluator's checkout).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from kwsos.errors import KwsosError
from kwsos.io import csv_text, read_csv_rows, write_csv_atomic, write_text_atomic
from kwsos.metrics import (
    DcaseSectionScores,
    dcase_official_score,
    dcase_section_scores,
    harmonic_mean,
)

__all__ = [
    "LAYOUTS",
    "AsdClip",
    "DcaseDataError",
    "DcaseReport",
    "SectionResult",
    "Submission",
    "detect_layout",
    "evaluate",
    "evaluate_submission",
    "machines",
    "read_dataset",
    "read_ground_truth",
    "read_submission",
    "scores_for_clips",
    "sections",
    "submission_file_names",
    "write_submission",
]

logger = logging.getLogger(__name__)

LAYOUTS = ("dcase2020", "dcase2022", "dcase2023")
_SPLITS = ("train", "test")
_SUBSETS = ("dev", "eval")


class DcaseDataError(KwsosError):
    """A DCASE data set, ground truth or submission folder that cannot be used (one line)."""


@dataclass(frozen=True)
class AsdClip:
    """One clip of a DCASE Task 2 data set.

    Attributes
    ----------
    path
        The WAV file.
    name
        Its base name, exactly as the submission files and evaluators name it.
    machine
        Machine type (the folder name, e.g. ``"ToyCar"``).
    section
        ``"00"``..: the section (DCASE2022/2023) or the machine ID (DCASE2020, from ``id_00``).
    domain
        ``"source"``, ``"target"`` or ``""`` (unknown: DCASE2020, anonymised evaluation clips).
    split
        ``"train"`` or ``"test"``.
    label
        ``"normal"``, ``"anomaly"`` or None (unknown: anonymised evaluation clips).
    attributes
        ``((key, value), ...)`` from ``attributes_XX.csv`` or else the file name.
    subset
        ``"dev"``, ``"eval"`` (from a ``dev_data``/``eval_data`` folder on the path) or ``""``.
    """

    path: Path
    name: str
    machine: str
    section: str
    domain: str
    split: str
    label: str | None
    attributes: tuple[tuple[str, str], ...] = ()
    subset: str = ""


# ---------------------------------------------------------------------------------------------
# file names
# ---------------------------------------------------------------------------------------------

_RE_2020 = re.compile(r"^(?:(normal|anomaly)_)?id_(\d{2})_(\d+)\.wav$")
_RE_SECTION = re.compile(
    r"^section_(\d{2})_(source|target)_(train|test)_(normal|anomaly)_(\d+)(?:_(.+))?\.wav$"
)
_RE_SECTION_2021 = re.compile(r"^section_(\d{2})_(source|target)_(train|test)_(\d+)\.wav$")
_RE_SECTION_ANON = re.compile(r"^section_(\d{2})_(\d+)\.wav$")
_RE_GT_FILE = re.compile(r"^ground_truth_(.+)_section_(\d{2})_test\.csv$")
_RE_ATTR_FILE = re.compile(r"^attributes_(\d{2})\.csv$")


@dataclass(frozen=True)
class _Parsed:
    family: str  # "dcase2020" | "section"
    section: str
    domain: str
    label: str | None
    attributes: tuple[tuple[str, str], ...]


def _name_attributes(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text or text == "noAttribute":
        return ()
    tokens = text.split("_")
    if len(tokens) % 2:
        return (("attributes", text),)
    return tuple(zip(tokens[0::2], tokens[1::2], strict=True))


def _parse_name(name: str) -> _Parsed | None:
    m = _RE_2020.match(name)
    if m:
        return _Parsed("dcase2020", m.group(2), "", m.group(1), ())
    m = _RE_SECTION.match(name)
    if m:
        return _Parsed("section", m.group(1), m.group(2), m.group(4), _name_attributes(m.group(6)))
    m = _RE_SECTION_2021.match(name)
    if m:
        return _Parsed("section", m.group(1), m.group(2), None, ())
    m = _RE_SECTION_ANON.match(name)
    if m:
        return _Parsed("section", m.group(1), "", None, ())
    return None


# ---------------------------------------------------------------------------------------------
# finding the machine folders
# ---------------------------------------------------------------------------------------------


def _is_machine_dir(path: Path) -> bool:
    return path.is_dir() and any((path / s).is_dir() for s in _SPLITS)


def _machine_dirs_in(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if not p.name.startswith(".") and _is_machine_dir(p))


def _subset_of(path: Path) -> str:
    for part in reversed(path.parts):
        if part == "dev_data":
            return "dev"
        if part == "eval_data":
            return "eval"
    return ""


def _find_machine_dirs(root: Path) -> list[Path]:
    """The machine folders under ``root`` (see the module docstring for the accepted roots)."""
    if _is_machine_dir(root):
        return [root]
    found = _machine_dirs_in(root)
    if found:
        return found
    for sub in ("raw", "dev_data", "eval_data"):
        base = root / sub
        found += _machine_dirs_in(base / "raw") or _machine_dirs_in(base)
    return found


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise DcaseDataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DcaseDataError(f"dataset path {root} is not a folder")
    return root


def _no_machines(root: Path) -> DcaseDataError:
    return DcaseDataError(
        f"{root}: no DCASE Task 2 machine folder found (expected <machine>/train or "
        "<machine>/test, directly or under dev_data/, dev_data/raw/, eval_data/ or eval_data/raw/)"
    )


def _wavs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())


def _scan(root: Path) -> list[tuple[Path, str, _Parsed]]:
    """(path, split, parsed name) of every WAV in every machine folder under ``root``."""
    dirs = _find_machine_dirs(root)
    if not dirs:
        raise _no_machines(root)
    out = []
    for mdir in dirs:
        for split in _SPLITS:
            for wav in _wavs(mdir / split):
                parsed = _parse_name(wav.name)
                if parsed is None:
                    raise DcaseDataError(
                        f"{wav}: not a DCASE 2020/2022/2023 Task 2 file name (expected e.g. "
                        "normal_id_00_00000000.wav, id_00_00000000.wav, "
                        "section_00_source_train_normal_0000_<attributes>.wav or section_00_0000.wav)"
                    )
                out.append((wav, split, parsed))
    if not out:
        raise DcaseDataError(f"{root}: the machine folders hold no .wav file in train/ or test/")
    return out


def _layout_of(scanned: Sequence[tuple[Path, str, _Parsed]], root: Path) -> str:
    families = {p.family for _, _, p in scanned}
    if len(families) > 1:
        a = next(w for w, _, p in scanned if p.family == "dcase2020")
        b = next(w for w, _, p in scanned if p.family == "section")
        raise DcaseDataError(
            f"{root}: DCASE2020 names ({a.name}) and DCASE2022/2023 names ({b.name}) mixed; "
            "point at one data set"
        )
    if families == {"dcase2020"}:
        return "dcase2020"
    return "dcase2022" if any(p.section != "00" for _, _, p in scanned) else "dcase2023"


def detect_layout(root: str | Path) -> str:
    """``"dcase2020"``, ``"dcase2022"`` or ``"dcase2023"`` from the file names under ``root``.

    DCASE2020 names hold ``id_XX``; DCASE2022/2023 names start with ``section_XX``, and a
    section other than ``00`` means DCASE2022 (see the module docstring).

    Raises
    ------
    DcaseDataError
        No machine folder, an unrecognised file name, or both name families mixed.
    """
    root = _check_root(root)
    return _layout_of(_scan(root), root)


# ---------------------------------------------------------------------------------------------
# attributes CSVs and ground truth
# ---------------------------------------------------------------------------------------------


def _csv_attributes(row: dict[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    i = 1
    while f"d{i}p" in row:
        key, value = (row.get(f"d{i}p") or "").strip(), (row.get(f"d{i}v") or "").strip()
        if key and value:
            pairs.append((key, value))
        i += 1
    return tuple(pairs)


def _read_attribute_csvs(machine_dir: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """``{clip base name: attributes}`` from ``<machine>/attributes_XX.csv`` (if any)."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for path in sorted(machine_dir.glob("attributes_*.csv")):
        if not _RE_ATTR_FILE.match(path.name):
            continue
        for row in read_csv_rows(path, ("file_name",), what="attributes CSV"):
            attrs = _csv_attributes(row)
            if attrs:
                out[Path(row["file_name"].replace("\\", "/")).name] = attrs
    return out


@dataclass(frozen=True)
class _Truth:
    label: str | None
    domain: str
    attributes: tuple[tuple[str, str], ...]
    source: Path


def _plain_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DcaseDataError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def _binary_column(path: Path, row: list[str]) -> int:
    if len(row) < 2 or row[1].strip() not in ("0", "1"):
        raise DcaseDataError(f"{path}: expected rows 'clip.wav,0|1', got {','.join(row)!r}")
    return int(row[1].strip())


def _truth_from_full_name(full: str, source: Path) -> _Truth:
    parsed = _parse_name(Path(full.replace("\\", "/")).name)
    if parsed is None or parsed.family == "section" and parsed.label is None:
        raise DcaseDataError(f"{source}: cannot read label and domain from {full!r}")
    return _Truth(parsed.label, parsed.domain, parsed.attributes, source)


def _read_evaluator_dir(root: Path) -> dict[tuple[str, str], _Truth]:
    data_dir, domain_dir = root / "ground_truth_data", root / "ground_truth_domain"
    attr_dir = root / "ground_truth_attributes"
    files = sorted(p for p in data_dir.iterdir() if _RE_GT_FILE.match(p.name))
    if not files:
        raise DcaseDataError(f"{data_dir}: no ground_truth_<machine>_section_XX_test.csv file")
    out: dict[tuple[str, str], _Truth] = {}
    for path in files:
        m = _RE_GT_FILE.match(path.name)
        assert m is not None
        machine, section = m.group(1), m.group(2)
        labels = {r[0].strip(): _binary_column(path, r) for r in _plain_rows(path)}
        domains: dict[str, int] = {}
        dpath = domain_dir / path.name
        if dpath.is_file():
            domains = {r[0].strip(): _binary_column(dpath, r) for r in _plain_rows(dpath)}
            if set(domains) != set(labels):
                raise DcaseDataError(f"{dpath} and {path} list different clips")
        else:
            logger.warning("no domain ground truth %s: domains stay unknown", dpath)
        attrs: dict[str, tuple[tuple[str, str], ...]] = {}
        apath = attr_dir / path.name  # DCASE2023: "clip.wav,<full name without .wav>"
        if apath.is_file():
            for r in _plain_rows(apath):
                if len(r) >= 2:
                    attrs[r[0].strip()] = _truth_from_full_name(
                        r[1].strip() + ".wav", apath
                    ).attributes
        apath = attr_dir / machine / f"attributes_{section}.csv"  # DCASE2022
        if apath.is_file():
            for row in read_csv_rows(apath, ("file_name",), what="attributes CSV"):
                name = Path(row["file_name"].replace("\\", "/")).name
                attrs[name] = _csv_attributes(row)
        for name, label in labels.items():
            domain = {0: "source", 1: "target"}.get(domains.get(name, -1), "")
            out[(machine, name)] = _Truth(
                "anomaly" if label else "normal", domain, attrs.get(name, ()), path
            )
    return out


def _read_eval_data_list(path: Path) -> dict[tuple[str, str], _Truth]:
    out: dict[tuple[str, str], _Truth] = {}
    machine: str | None = None
    for row in _plain_rows(path):
        cells = [c.strip() for c in row]
        if len(cells) == 1 or all(not c for c in cells[1:]):
            machine = cells[0]
            continue
        if machine is None:
            raise DcaseDataError(f"{path}: a clip row comes before the first machine-type line")
        truth = _truth_from_full_name(cells[1], path)
        if len(cells) >= 3 and cells[2] in ("0", "1", "0.0", "1.0"):
            label = "anomaly" if float(cells[2]) else "normal"
            if truth.label is not None and truth.label != label:
                raise DcaseDataError(f"{path}: {cells[1]} is labelled {cells[2]}")
            truth = replace(truth, label=label)
        out[(machine, Path(cells[0]).name)] = truth
    if not out:
        raise DcaseDataError(f"{path}: no ground-truth row")
    return out


def read_ground_truth(path: str | Path) -> dict[tuple[str, str], tuple[str, str]]:
    """Read official ground truth: ``{(machine, clip name): (label, domain)}``.

    ``path`` is an evaluator checkout (``ground_truth_data/`` + ``ground_truth_domain/``), an
    ``eval_data_list`` CSV or a folder holding ``eval_data_list.csv`` (module docstring).
    ``label`` is ``"normal"``/``"anomaly"``; ``domain`` is ``"source"``/``"target"``/``""``.

    Raises
    ------
    DcaseDataError
        Missing or unreadable ground truth (one line naming the path).
    """
    return {k: (t.label or "", t.domain) for k, t in _read_truth(Path(path)).items()}


def _read_truth(path: Path) -> dict[tuple[str, str], _Truth]:
    if not path.exists():
        raise DcaseDataError(f"ground truth {path} does not exist")
    if path.is_file():
        return _read_eval_data_list(path)
    if (path / "ground_truth_data").is_dir():
        return _read_evaluator_dir(path)
    if (path / "eval_data_list.csv").is_file():
        return _read_eval_data_list(path / "eval_data_list.csv")
    raise DcaseDataError(
        f"ground truth {path}: expected ground_truth_data/ (+ ground_truth_domain/), "
        "eval_data_list.csv, or an eval_data_list CSV file"
    )


def _apply_truth(clips: list[AsdClip], truth_path: Path) -> list[AsdClip]:
    truth = _read_truth(truth_path)
    test_keys = {(c.machine, c.name) for c in clips if c.split == "test"}
    sections_seen = {(c.machine, c.section) for c in clips if c.split == "test"}
    for machine, name in truth:
        parsed = _parse_name(name)
        if (
            parsed is not None
            and (machine, parsed.section) in sections_seen
            and (machine, name) not in test_keys
        ):
            raise DcaseDataError(
                f"{truth[(machine, name)].source}: ground truth names {machine}/{name}, "
                "which is not among the test clips"
            )
    out = []
    for clip in clips:
        if clip.split != "test":
            out.append(clip)
            continue
        t = truth.get((clip.machine, clip.name))
        if t is None and clip.label is not None:
            out.append(clip)  # a labelled (development) clip needs no ground truth
            continue
        if t is None:
            raise DcaseDataError(
                f"{truth_path}: no ground truth for test clip {clip.machine}/{clip.name} ({clip.path})"
            )
        if clip.label is not None and t.label is not None and clip.label != t.label:
            raise DcaseDataError(
                f"{t.source}: {clip.machine}/{clip.name} is labelled {t.label}, its name says {clip.label}"
            )
        out.append(
            replace(
                clip,
                label=t.label if t.label is not None else clip.label,
                domain=t.domain or clip.domain,
                attributes=clip.attributes or t.attributes,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# reading a data set
# ---------------------------------------------------------------------------------------------


def read_dataset(
    root: str | Path,
    *,
    layout: str | None = None,
    split: str | None = None,
    machines: Iterable[str] | None = None,
    subset: str | None = None,
    ground_truth: str | Path | None = None,
) -> list[AsdClip]:
    """Every clip of a DCASE Task 2 data set as downloaded, sorted by machine, split, name.

    Parameters
    ----------
    root
        Download root, ``dev_data``, ``dev_data/raw``, ``eval_data[/raw]`` or a machine folder.
    layout
        ``"dcase2020"``, ``"dcase2022"`` or ``"dcase2023"``; None: :func:`detect_layout`.
    split
        ``"train"``, ``"test"`` or None (both).
    machines
        Machine types to keep (folder names); None: all.
    subset
        ``"dev"`` or ``"eval"`` to keep the clips under ``dev_data``/``eval_data`` only.
    ground_truth
        Official ground truth for anonymised evaluation clips (see :func:`read_ground_truth`);
        it fills ``label``, ``domain`` (and attributes) of every anonymised test clip and is
        checked against the labels of the others.

    Raises
    ------
    DcaseDataError
        (one line naming the path) no machine folder, unrecognised file names, names that do
        not fit the forced ``layout``, an unknown machine type, a machine type without normal
        training clips (when training clips are read), missing or mismatching ground truth.
    """
    root = _check_root(root)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if split is not None and split not in _SPLITS:
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    if subset is not None and subset not in _SUBSETS:
        raise ValueError(f"subset must be 'dev', 'eval' or None, got {subset!r}")
    scanned = _scan(root)
    detected = _layout_of(scanned, root)
    if layout is not None:
        family = "dcase2020" if layout == "dcase2020" else "section"
        bad = next((w for w, _, p in scanned if p.family != family), None)
        if bad is not None:
            raise DcaseDataError(f"{bad}: not a {layout} file name (the data look like {detected})")
    else:
        layout = detected
        logger.info("%s: detected layout %s", root, layout)

    attr_cache: dict[Path, dict[str, tuple[tuple[str, str], ...]]] = {}
    clips = []
    for wav, sp, parsed in scanned:
        mdir = wav.parent.parent
        if layout != "dcase2020" and mdir not in attr_cache:
            attr_cache[mdir] = _read_attribute_csvs(mdir)
        attrs = attr_cache.get(mdir, {}).get(wav.name) or parsed.attributes
        clips.append(
            AsdClip(
                path=wav,
                name=wav.name,
                machine=mdir.name,
                section=parsed.section,
                domain=parsed.domain,
                split=sp,
                label=parsed.label,
                attributes=attrs,
                subset=_subset_of(mdir),
            )
        )

    found = sorted({c.machine for c in clips})
    if machines is not None:
        wanted = list(dict.fromkeys(machines))
        unknown = [m for m in wanted if m not in found]
        if unknown:
            raise DcaseDataError(
                f"unknown machine type {unknown[0]!r} in {root} (found: {', '.join(found)})"
            )
        clips = [c for c in clips if c.machine in set(wanted)]
    if subset is not None:
        clips = [c for c in clips if c.subset == subset]
        if not clips:
            raise DcaseDataError(f"{root}: no clip under a {subset}_data folder")
    if split != "test":
        have_train = {c.machine for c in clips if c.split == "train" and c.label != "anomaly"}
        for machine in sorted({c.machine for c in clips} - have_train):
            where = next(c.path.parent.parent for c in clips if c.machine == machine)
            raise DcaseDataError(
                f"machine type {machine}: no normal training clip in {where / 'train'}"
            )
    if split is not None:
        clips = [c for c in clips if c.split == split]
        if not clips:
            raise DcaseDataError(f"{root}: no {split} clip")
    if ground_truth is not None:
        clips = _apply_truth(clips, Path(ground_truth))
    clips.sort(key=lambda c: (c.machine, c.split, c.section, c.name, str(c.path)))
    return clips


def machines(clips: Iterable[AsdClip]) -> list[str]:
    """Sorted machine types of ``clips``."""
    return sorted({c.machine for c in clips})


def sections(clips: Iterable[AsdClip], machine: str) -> list[str]:
    """Sorted sections (machine IDs for DCASE2020) of ``machine`` in ``clips``."""
    return sorted({c.section for c in clips if c.machine == machine})


# ---------------------------------------------------------------------------------------------
# submission files
# ---------------------------------------------------------------------------------------------

_RE_SCORE_FILE = re.compile(r"^anomaly_score_(.+)_section_(\d{2})_test\.csv$")
_RE_DECISION_FILE = re.compile(r"^decision_result_(.+)_section_(\d{2})_test\.csv$")
_RE_SCORE_FILE_2020 = re.compile(r"^anomaly_score_(.+)_id_(\d{2})\.csv$")


def submission_file_names(machine: str, section: str, *, layout: str) -> tuple[str, str | None]:
    """(anomaly-score file, decision file or None) of one machine type and section.

    DCASE2022/2023: ``anomaly_score_<machine>_section_<XX>_test.csv`` and
    ``decision_result_<machine>_section_<XX>_test.csv`` (names the evaluators open).
    DCASE2020: ``anomaly_score_<machine>_id_<XX>.csv`` and no decision file (the 2020
    challenge did not ask for decisions; its evaluator reads scores only).
    """
    if layout == "dcase2020":
        return f"anomaly_score_{machine}_id_{section}.csv", None
    if layout in LAYOUTS:
        return (
            f"anomaly_score_{machine}_section_{section}_test.csv",
            f"decision_result_{machine}_section_{section}_test.csv",
        )
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def _group(clips: Sequence[AsdClip]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault((c.machine, c.section), []).append(i)
    return dict(sorted(groups.items()))


def _check_arrays(
    clips: Sequence[AsdClip], scores: ArrayLike, decisions: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray | None]:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(clips),):
        raise ValueError(f"scores must have shape ({len(clips)},), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores contain {int(np.sum(~np.isfinite(s)))} NaN or infinite values")
    d = None
    if decisions is not None:
        d = np.asarray(decisions)
        if d.shape != (len(clips),):
            raise ValueError(f"decisions must have shape ({len(clips)},), got {d.shape}")
        if not set(np.unique(d).tolist()) <= {0, 1}:
            raise ValueError("decisions must be 0 (normal) or 1 (anomalous)")
        d = d.astype(np.int64)
    return s, d


def write_submission(
    out_dir: str | Path,
    clips: Sequence[AsdClip],
    scores: ArrayLike,
    decisions: ArrayLike | None = None,
    *,
    layout: str,
) -> list[Path]:
    """Write the official submission files of the test ``clips`` (atomic, one per section).

    Rows are ``clip name,score`` (``repr`` of the float) and ``clip name,0|1``, without a
    header, sorted by clip name (the evaluators sort them anyway), as the official baselines
    write them.

    Parameters
    ----------
    out_dir
        Created if missing.
    clips : (n_clips,)
        Test clips.
    scores : (n_clips,)
        Anomaly scores, higher = more anomalous.
    decisions : (n_clips,), optional
        0/1 (1 = anomalous). Required for DCASE2022/2023 (the evaluators need the
        ``decision_result`` files); ignored for DCASE2020.
    layout
        One of :data:`LAYOUTS` (file names, see :func:`submission_file_names`).

    Returns
    -------
    The written files, sorted.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout != "dcase2020" and decisions is None:
        raise ValueError(f"{layout} submissions need decisions (decision_result_*.csv)")
    if any(c.split != "test" for c in clips):
        raise ValueError("write_submission takes test clips only")
    s, d = _check_arrays(clips, scores, decisions)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwsosError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    written = []
    for (machine, section), idx in _group(clips).items():
        names = [clips[i].name for i in idx]
        if len(set(names)) != len(names):
            raise ValueError(f"{machine} section {section}: clip names repeat")
        order = sorted(idx, key=lambda i: clips[i].name)
        score_name, decision_name = submission_file_names(machine, section, layout=layout)
        write_csv_atomic(out_dir / score_name, [(clips[i].name, repr(float(s[i]))) for i in order])
        written.append(out_dir / score_name)
        if decision_name is not None and d is not None:
            write_csv_atomic(out_dir / decision_name, [(clips[i].name, int(d[i])) for i in order])
            written.append(out_dir / decision_name)
    return sorted(written)


@dataclass(frozen=True)
class Submission:
    """Submission files read back: ``{(machine, section): [(clip name, value), ...]}``."""

    layout_family: str  # "dcase2020" or "dcase2022/2023"
    scores: dict[tuple[str, str], list[tuple[str, float]]]
    decisions: dict[tuple[str, str], list[tuple[str, int]]] = field(default_factory=dict)


def _read_pairs(path: Path, kind: type) -> list[tuple[str, float]] | list[tuple[str, int]]:
    rows = []
    for row in _plain_rows(path):
        if len(row) < 2:
            raise DcaseDataError(f"{path}: expected rows 'clip.wav,value', got {','.join(row)!r}")
        try:
            value = kind(row[1].strip()) if kind is float else int(float(row[1].strip()))
        except ValueError:
            raise DcaseDataError(f"{path}: not a number: {row[1]!r}") from None
        if kind is float and not math.isfinite(value):
            raise DcaseDataError(f"{path}: score of {row[0]} is {row[1]}")
        rows.append((row[0].strip(), value))
    return rows


def read_submission(out_dir: str | Path) -> Submission:
    """Read the ``anomaly_score_*.csv`` (and ``decision_result_*.csv``) files of a folder.

    Raises
    ------
    DcaseDataError
        Missing folder, no submission file, both naming families, malformed rows.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise DcaseDataError(f"submission folder {out_dir} does not exist")
    scores: dict = {}
    decisions: dict = {}
    families = set()
    for path in sorted(out_dir.iterdir()):
        if m := _RE_SCORE_FILE.match(path.name):
            families.add("dcase2022/2023")
            scores[(m.group(1), m.group(2))] = _read_pairs(path, float)
        elif m := _RE_DECISION_FILE.match(path.name):
            decisions[(m.group(1), m.group(2))] = _read_pairs(path, int)
        elif m := _RE_SCORE_FILE_2020.match(path.name):
            families.add("dcase2020")
            scores[(m.group(1), m.group(2))] = _read_pairs(path, float)
    if not scores:
        raise DcaseDataError(f"{out_dir}: no anomaly_score_*.csv file")
    if len(families) > 1:
        raise DcaseDataError(f"{out_dir}: DCASE2020 and DCASE2022/2023 score files mixed")
    return Submission(families.pop(), scores, decisions)


def scores_for_clips(
    submission: Submission, clips: Sequence[AsdClip]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores (and decisions, if every section has them) of ``clips`` from ``submission``.

    Returns
    -------
    scores : (n_clips,)
    decisions : (n_clips,) int or None

    Raises
    ------
    DcaseDataError
        A section or clip without a score, or a score for a clip that is not in ``clips``.
    """
    groups = _group(clips)
    s = np.empty(len(clips))
    d = np.empty(len(clips), dtype=np.int64)
    have_decisions = all(k in submission.decisions for k in groups)
    for key, idx in groups.items():
        machine, section = key
        if key not in submission.scores:
            raise DcaseDataError(f"no anomaly score file for {machine} section {section}")
        table = dict(submission.scores[key])
        names = {clips[i].name for i in idx}
        extra = sorted(set(table) - names)
        if extra:
            raise DcaseDataError(
                f"{machine} section {section}: score for {extra[0]}, which is not a test clip"
            )
        dec = dict(submission.decisions.get(key, []))
        for i in idx:
            name = clips[i].name
            if name not in table:
                raise DcaseDataError(f"{machine} section {section}: no score for {name}")
            s[i] = table[name]
            if have_decisions:
                if name not in dec:
                    raise DcaseDataError(f"{machine} section {section}: no decision for {name}")
                d[i] = dec[name]
    return s, (d if have_decisions else None)


# ---------------------------------------------------------------------------------------------
# official evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionResult:
    """The official numbers of one machine type and section (DCASE2020: machine ID)."""

    machine: str
    section: str
    scores: DcaseSectionScores

    def to_dict(self) -> dict:
        """Plain values; a metric that does not apply (NaN) is None, so the dict is JSON."""
        values = {k: _none_if_nan(v) for k, v in self.scores.to_dict().items()}
        return {"machine": self.machine, "section": self.section, **values}


def _none_if_nan(x: object) -> object:
    return None if isinstance(x, float) and math.isnan(x) else x


_METRICS = ("AUC", "pAUC", "precision", "recall", "F1 score")


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))


def _pct(x: float) -> str:
    return "   -  " if math.isnan(x) else f"{100 * x:6.2f}"


@dataclass(frozen=True)
class DcaseReport:
    """Result of :func:`evaluate`: one row per machine type and section, and the summaries.

    ``summary`` (all values in [0, 1]):

    - DCASE2022/2023: ``official_score`` (:func:`kwsos.metrics.dcase_official_score`),
      ``amean`` (arithmetic mean of the same values), ``hmean_auc_source``,
      ``hmean_auc_target``, ``hmean_pauc``, ``hmean_auc_all_pauc`` (harmonic mean of the
      domain-independent AUCs and the pAUCs: Diss. 5.3's measure), and when decisions were
      given ``hmean_f1`` / ``amean_f1`` over both domains.
    - DCASE2020: ``amean_auc``/``amean_pauc`` over all machine IDs (Diss. 3.4's measure),
      ``amean_auc_types``/``amean_pauc_types`` (mean of the per-type averages),
      ``hmean_auc``, ``hmean_pauc`` and ``hmean`` (all AUCs and pAUCs at once).

    ``per_machine[machine]``: DCASE2020 ``amean_auc``/``amean_pauc`` (the evaluator's
    "Average" row) and ``hmean``; DCASE2022/2023 per metric the evaluator's "arithmetic mean" /
    "harmonic mean" / "source|target harmonic mean" rows (``amean_auc``, ``hmean_auc``,
    ``hmean_auc_source``, ``hmean_auc_target``, ``amean_pauc``, ``hmean_pauc``, F1 likewise)
    and ``score``, the official score restricted to the machine type.
    """

    layout: str
    rows: tuple[SectionResult, ...]
    summary: dict[str, float]
    per_machine: dict[str, dict[str, float]]

    @property
    def has_domains(self) -> bool:
        return self.layout != "dcase2020"

    @property
    def has_decisions(self) -> bool:
        return self.has_domains and not any(math.isnan(r.scores.f1_source) for r in self.rows)

    def to_dict(self) -> dict:
        return {
            "layout": self.layout,
            "rows": [r.to_dict() for r in self.rows],
            "summary": dict(self.summary),
            "per_machine": {k: dict(v) for k, v in self.per_machine.items()},
        }

    def _machine_rows(self) -> dict[str, list[SectionResult]]:
        out: dict[str, list[SectionResult]] = {}
        for r in self.rows:
            out.setdefault(r.machine, []).append(r)
        return out

    def csv_rows(self) -> list[list[str]]:
        """The rows of :meth:`to_csv` (laid out like the official evaluator's result CSV)."""
        lines: list[list[str]] = []
        if not self.has_domains:
            # y-kawagu/dcase2020_task2_evaluator: "<machine>", "id,AUC,pAUC", rows, "Average"
            for machine, rows in self._machine_rows().items():
                pm = self.per_machine[machine]
                lines += [[machine], ["id", "AUC", "pAUC"]]
                lines += [[r.section, _fmt(r.scores.auc), _fmt(r.scores.pauc)] for r in rows]
                lines += [["Average", _fmt(pm["amean_auc"]), _fmt(pm["amean_pauc"])], []]
            s = self.summary
            lines += [
                ["", "AUC", "pAUC"],
                [
                    "arithmetic mean over all machine IDs",
                    _fmt(s["amean_auc"]),
                    _fmt(s["amean_pauc"]),
                ],
                [
                    "arithmetic mean over machine types",
                    _fmt(s["amean_auc_types"]),
                    _fmt(s["amean_pauc_types"]),
                ],
                ["harmonic mean over all machine IDs", _fmt(s["hmean_auc"]), _fmt(s["hmean_pauc"])],
                ["harmonic mean of all AUCs and pAUCs", _fmt(s["hmean"])],
            ]
            return lines
        # nttcslab/dcase2023_task2_evaluator: per machine a section table and its means
        columns = [
            "AUC (all)", "AUC (source)", "AUC (target)", "pAUC",
            "precision (source)", "precision (target)", "recall (source)", "recall (target)",
            "F1 score (source)", "F1 score (target)",
        ]  # fmt: skip
        keys = [
            "auc", "auc_source", "auc_target", "pauc", "precision_source", "precision_target",
            "recall_source", "recall_target", "f1_source", "f1_target",
        ]  # fmt: skip
        header = ["", ""] + list(_METRICS)
        for machine, rows in self._machine_rows().items():
            lines += [[machine], ["section"] + columns]
            for r in rows:
                lines.append([r.section] + [_fmt(getattr(r.scores, k)) for k in keys])
            lines.append(header)
            for label, stats in _domain_means(rows):
                lines.append([label, ""] + [_fmt(v) for v in stats])
            lines.append([])
        lines.append(header)
        suffix = " over all machine types, sections, and domains"
        for label, stats in _domain_means(self.rows):
            lines.append([label + suffix, ""] + [_fmt(v) for v in stats])
        lines += [[], ["official score", "", _fmt(self.summary["official_score"])]]
        return lines

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`csv_rows` to ``path`` atomically (``\\n`` line ends, no quoting)."""
        write_text_atomic(path, csv_text(self.csv_rows()))

    def format_table(self) -> str:
        """A plain-text table (percent) of every section and the summary, for a terminal."""
        out = []
        if self.has_domains:
            head = f"{'machine':<16} {'sec':>3} {'AUC':>6} {'AUC-s':>6} {'AUC-t':>6} {'pAUC':>6}"
            if self.has_decisions:
                head += f" {'F1-s':>6} {'F1-t':>6}"
            out += [head, "-" * len(head)]
            for r in self.rows:
                s = r.scores
                line = f"{r.machine:<16} {r.section:>3} {_pct(s.auc)} {_pct(s.auc_source)} {_pct(s.auc_target)} {_pct(s.pauc)}"
                if self.has_decisions:
                    line += f" {_pct(s.f1_source)} {_pct(s.f1_target)}"
                out.append(line)
            out.append("-" * len(head))
            for machine, pm in self.per_machine.items():
                out.append(
                    f"{machine:<16} hmean AUC-s {_pct(pm['hmean_auc_source'])} AUC-t "
                    f"{_pct(pm['hmean_auc_target'])} pAUC {_pct(pm['hmean_pauc'])} "
                    f"score {_pct(pm['score'])}"
                )
            s = self.summary
            out.append("-" * len(head))
            out.append(
                f"hmean AUC-s {_pct(s['hmean_auc_source'])}  AUC-t {_pct(s['hmean_auc_target'])}"
                f"  pAUC {_pct(s['hmean_pauc'])}"
            )
            out.append(f"official score (hmean of AUC-s, AUC-t, pAUC) {_pct(s['official_score'])}")
        else:
            head = f"{'machine':<16} {'id':>3} {'AUC':>6} {'pAUC':>6}"
            out += [head, "-" * len(head)]
            for machine, rows in self._machine_rows().items():
                for r in rows:
                    out.append(
                        f"{machine:<16} {r.section:>3} {_pct(r.scores.auc)} {_pct(r.scores.pauc)}"
                    )
                pm = self.per_machine[machine]
                out.append(
                    f"{machine:<16} {'avg':>3} {_pct(pm['amean_auc'])} {_pct(pm['amean_pauc'])}"
                )
            s = self.summary
            out.append("-" * len(head))
            out.append(f"{'mean of all IDs':<20} {_pct(s['amean_auc'])} {_pct(s['amean_pauc'])}")
            out.append(
                f"{'mean of types':<20} {_pct(s['amean_auc_types'])} {_pct(s['amean_pauc_types'])}"
            )
            out.append(f"{'hmean of all IDs':<20} {_pct(s['hmean_auc'])} {_pct(s['hmean_pauc'])}")
        return "\n".join(out)


def _domain_means(rows: Sequence[SectionResult]) -> list[tuple[str, list[float]]]:
    """The evaluator's arithmetic / harmonic / source / target harmonic mean rows.

    Per metric the values are ``[source of every section] + [target of every section]``
    (the pAUC twice, pooled), exactly as ``performance`` in the DCASE2023 evaluator; the
    source/target rows take the first/second half (the DCASE2022 evaluator halves at
    ``len(section_ids)//2`` instead, a bug fixed in 2023). Means of absent decisions are NaN.
    """
    perf = []
    for a, b in (
        ("auc_source", "auc_target"),
        ("pauc", "pauc"),
        ("precision_source", "precision_target"),
        ("recall_source", "recall_target"),
        ("f1_source", "f1_target"),
    ):
        perf.append([getattr(r.scores, a) for r in rows] + [getattr(r.scores, b) for r in rows])
    n = len(rows)

    def agg(fn, part: slice) -> list[float]:
        return [math.nan if any(math.isnan(x) for x in v[part]) else fn(v[part]) for v in perf]

    return [
        ("arithmetic mean", agg(lambda v: float(np.mean(v)), slice(None))),
        ("harmonic mean", agg(harmonic_mean, slice(None))),
        ("source harmonic mean", agg(harmonic_mean, slice(0, n))),
        ("target harmonic mean", agg(harmonic_mean, slice(n, None))),
    ]


def evaluate(
    clips: Sequence[AsdClip],
    scores: ArrayLike,
    decisions: ArrayLike | None = None,
    *,
    layout: str,
) -> DcaseReport:
    """Official evaluation of the anomaly ``scores`` of labelled test ``clips``.

    DCASE2022/2023 follow ``nttcslab/dcase2023_task2_evaluator/dcase2023_task2_evaluator.py``
    (per section :func:`kwsos.metrics.dcase_section_scores`; official score = ONE harmonic
    mean over every section's AUC_source, AUC_target and pAUC). DCASE2020 follows
    ``y-kawagu/dcase2020_task2_evaluator/evaluator.py`` (per machine ID AUC and pAUC,
    arithmetic mean per machine type) plus the overall means of :class:`DcaseReport`.
    The jackknife confidence interval of the 2022/2023 evaluators is not computed.

    Parameters
    ----------
    clips : (n_clips,)
        Test clips with known ``label`` (and ``domain`` for DCASE2022/2023): a development
        set, or an evaluation set read with ``ground_truth=``.
    scores : (n_clips,)
        Anomaly scores, higher = more anomalous.
    decisions : (n_clips,), optional
        0/1 decisions (1 = anomalous) for precision/recall/F1 (DCASE2022/2023).
    layout
        One of :data:`LAYOUTS`.

    Raises
    ------
    DcaseDataError
        A clip without label (or domain), a section without normal or anomalous clips, or a
        domain without normal clips (one line naming the machine type and section).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not clips:
        raise ValueError("no clip to evaluate")
    s, d = _check_arrays(clips, scores, decisions)
    domains = layout != "dcase2020"
    for c in clips:
        if c.label not in ("normal", "anomaly"):
            raise DcaseDataError(
                f"{c.path}: label unknown (evaluation clips need ground_truth=, see read_dataset)"
            )
        if domains and c.domain not in ("source", "target"):
            raise DcaseDataError(f"{c.path}: domain unknown (give the domain ground truth)")
    rows = []
    for (machine, section), idx in _group(clips).items():
        ii = np.asarray(idx)
        y = np.array([clips[i].label == "anomaly" for i in idx])
        tgt = np.array([clips[i].domain == "target" for i in idx]) if domains else None
        try:
            res = dcase_section_scores(y, s[ii], tgt, None if d is None or not domains else d[ii])
        except ValueError as exc:
            raise DcaseDataError(f"{machine} section {section}: {exc}") from None
        rows.append(SectionResult(machine, section, res))
    by_machine: dict[str, list[SectionResult]] = {}
    for r in rows:
        by_machine.setdefault(r.machine, []).append(r)
    per_machine: dict[str, dict[str, float]] = {}
    if domains:
        for machine, mrows in by_machine.items():
            per_machine[machine] = _machine_summary(mrows)
        summary = _overall_summary(rows)
    else:
        for machine, mrows in by_machine.items():
            aucs = [r.scores.auc for r in mrows]
            paucs = [r.scores.pauc for r in mrows]
            per_machine[machine] = {
                "amean_auc": float(np.mean(aucs)),
                "amean_pauc": float(np.mean(paucs)),
                "hmean": harmonic_mean(aucs + paucs),
            }
        aucs = [r.scores.auc for r in rows]
        paucs = [r.scores.pauc for r in rows]
        summary = {
            "amean_auc": float(np.mean(aucs)),
            "amean_pauc": float(np.mean(paucs)),
            "amean_auc_types": float(np.mean([v["amean_auc"] for v in per_machine.values()])),
            "amean_pauc_types": float(np.mean([v["amean_pauc"] for v in per_machine.values()])),
            "hmean_auc": harmonic_mean(aucs),
            "hmean_pauc": harmonic_mean(paucs),
            "hmean": harmonic_mean(aucs + paucs),
        }
    return DcaseReport(layout, tuple(rows), summary, per_machine)


def _machine_summary(rows: Sequence[SectionResult]) -> dict[str, float]:
    means = dict(_domain_means(rows))
    out = {
        "amean_auc": means["arithmetic mean"][0],
        "hmean_auc": means["harmonic mean"][0],
        "hmean_auc_source": means["source harmonic mean"][0],
        "hmean_auc_target": means["target harmonic mean"][0],
        "amean_pauc": means["arithmetic mean"][1],
        "hmean_pauc": means["harmonic mean"][1],
        "score": dcase_official_score(
            [r.scores.auc_source for r in rows],
            [r.scores.auc_target for r in rows],
            [r.scores.pauc for r in rows],
        ),
    }
    if not math.isnan(means["arithmetic mean"][4]):
        out["amean_f1"] = means["arithmetic mean"][4]
        out["hmean_f1"] = means["harmonic mean"][4]
    return out


def _overall_summary(rows: Sequence[SectionResult]) -> dict[str, float]:
    src = [r.scores.auc_source for r in rows]
    tgt = [r.scores.auc_target for r in rows]
    pauc = [r.scores.pauc for r in rows]
    out = {
        "official_score": dcase_official_score(src, tgt, pauc),
        "amean": float(np.mean(src + tgt + pauc)),
        "hmean_auc_source": harmonic_mean(src),
        "hmean_auc_target": harmonic_mean(tgt),
        "hmean_pauc": harmonic_mean(pauc),
        "hmean_auc_all_pauc": harmonic_mean([r.scores.auc for r in rows] + pauc),
    }
    f1 = [r.scores.f1_source for r in rows] + [r.scores.f1_target for r in rows]
    if not any(math.isnan(x) for x in f1):
        out["amean_f1"] = float(np.mean(f1))
        out["hmean_f1"] = harmonic_mean(f1)
    return out


def evaluate_submission(
    submission_dir: str | Path, clips: Sequence[AsdClip], *, layout: str | None = None
) -> DcaseReport:
    """:func:`read_submission` + :func:`scores_for_clips` + :func:`evaluate`.

    ``layout`` defaults to ``dcase2020`` for ``anomaly_score_<m>_id_XX.csv`` files and else to
    ``dcase2023`` when every section is ``00`` and ``dcase2022`` otherwise.
    """
    sub = read_submission(submission_dir)
    if layout is None:
        if sub.layout_family == "dcase2020":
            layout = "dcase2020"
        else:
            layout = "dcase2022" if any(c.section != "00" for c in clips) else "dcase2023"
    s, d = scores_for_clips(sub, clips)
    return evaluate(clips, s, d, layout=layout)
