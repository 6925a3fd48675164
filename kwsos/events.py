"""Events and the files that hold them.

An event is ``(filename, onset_s, offset_s, label[, cost])``. On disk it follows the sed_eval /
DCASE convention: CSV ``filename,onset,offset,event_label[,cost]`` (comma- or tab-separated,
header optional when reading), JSON (a list of objects with the same keys) or an Audacity label
track (``onset<TAB>offset<TAB>label``).

``cost`` is the length-normalised DTW path cost of a detection (cosine distance, 0 = identical):
lower is better, and a detection is kept when ``cost <= threshold``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from kwsos.errors import KwsosError

__all__ = [
    "Event",
    "EventFileError",
    "FORMATS",
    "format_events",
    "read_events",
]

FORMATS = ("table", "csv", "json", "audacity")
_COLUMNS = ("filename", "onset", "offset", "event_label")
#: A row holding only a file name (a file without events) must name an audio file.
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus")
#: KWS-DailyTalk's column names (``idx,event_label,event_onset,event_offset,file,scene_label``).
_DAILYTALK = {
    "file": "filename",
    "event_onset": "onset",
    "event_offset": "offset",
    "event_label": "event_label",
}


class EventFileError(KwsosError):
    """A malformed event/reference file (user-facing, one line)."""


class Event(NamedTuple):
    filename: str
    onset: float
    offset: float
    label: str
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "filename": self.filename,
            "onset": round(self.onset, 3),
            "offset": round(self.offset, 3),
            "event_label": self.label,
        }
        if self.cost is not None:
            d["cost"] = round(float(self.cost), 4)
        return d


def read_events(path: str | Path) -> list[Event]:
    """Read a reference or estimate file (CSV/TSV with optional header, or the JSON written by kwsos).

    KWS-DailyTalk annotation CSVs (``idx,event_label,event_onset,event_offset,file,scene_label``)
    are read too; :func:`kwsos.metrics.file_key` matches their Windows paths by base name.
    Rows with only a filename (DCASE convention for a file without events) are skipped. Raises
    :class:`EventFileError` naming the file and line on any malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"event file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFileError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        return _from_json(path, text)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    delimiter = _delimiter(path, lines)
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [c.strip().lower() for c in rows[0]]
    if all(c in header for c in _DAILYTALK):  # KWS-DailyTalk annotation CSV (SPEC section 8)
        header = [_DAILYTALK.get(c, c) for c in header]
    if all(c in header for c in _COLUMNS):
        cols = [header.index(c) for c in _COLUMNS]
        cost_col = header.index("cost") if "cost" in header else None
        body, first_line = rows[1:], 2
    elif any(c in header for c in ("onset", "offset", "event_label", "filename")):
        missing = [c for c in _COLUMNS if c not in header]
        raise EventFileError(f"{path}: header lacks column(s) {', '.join(missing)}")
    else:
        cols, cost_col, body, first_line = [0, 1, 2, 3], None, rows, 1
    events = []
    for i, row in enumerate(body, start=first_line):
        if len(row) == 1 and row[0].strip():
            if not row[0].strip().lower().endswith(_AUDIO_SUFFIXES):
                raise EventFileError(
                    f"{path}:{i}: not an event row (expected filename,onset,offset,event_label, "
                    f"or an audio file name alone for a file without events), got {row[0]!r}"
                )
            continue  # a file with no events
        if len(row) <= max(cols):
            raise EventFileError(
                f"{path}:{i}: expected columns filename,onset,offset,event_label, got {len(row)} field(s)"
            )
        filename, onset_s, offset_s, label = (row[c].strip() for c in cols)
        cost = row[cost_col] if cost_col is not None and cost_col < len(row) else None
        events.append(_make_event(path, i, filename, onset_s, offset_s, label, cost))
    return events


def _make_event(
    path: Path, line: int, filename: str, onset: Any, offset: Any, label: Any, cost: Any = None
) -> Event:
    try:
        on, off = float(onset), float(offset)
        c = float(cost) if cost not in (None, "") else None
    except (TypeError, ValueError):
        raise EventFileError(
            f"{path}:{line}: onset/offset must be numbers, got {onset!r}, {offset!r}"
        ) from None
    if not filename:
        raise EventFileError(f"{path}:{line}: empty filename")
    if not label or not str(label).strip():
        raise EventFileError(f"{path}:{line}: empty event_label")
    if not (0 <= on < off < math.inf):  # also rejects NaN
        raise EventFileError(f"{path}:{line}: need 0 <= onset < offset, got {on} and {off}")
    return Event(filename, on, off, str(label).strip(), c)


def _delimiter(path: Path, lines: list[str]) -> str:
    """The field separator of a CSV/TSV file: tab, comma or semicolon, from its first line.
    A line that has none of them is one field (a file name without events)."""
    first = lines[0]
    for sep in ("\t", ",", ";"):
        if sep in first:
            return sep
    return ","


def _from_json(path: Path, text: str) -> list[Event]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict):
        data = data.get("events", data)
    if not isinstance(data, list):
        raise EventFileError(f"{path}: expected a JSON list of events")
    out = []
    for i, d in enumerate(data, start=1):
        if not isinstance(d, dict) or any(k not in d for k in _COLUMNS):
            raise EventFileError(f"{path}: event {i} needs keys {', '.join(_COLUMNS)}")
        out.append(
            _make_event(
                path, i, d["filename"], d["onset"], d["offset"], d["event_label"], d.get("cost")
            )
        )
    return out


def format_events(events: Sequence[Event], fmt: str, *, header: bool = True) -> str:
    """Render events as ``csv``, ``json`` or ``audacity`` text (the table format is the CLI's).
    ``header=False``: csv rows only (to append to a file already started)."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow([*_COLUMNS, "cost"])
        for e in events:
            d = e.to_dict()
            w.writerow(
                [
                    d["filename"],
                    f"{d['onset']:.3f}",
                    f"{d['offset']:.3f}",
                    d["event_label"],
                    "" if e.cost is None else f"{d['cost']:.4f}",
                ]
            )
        return buf.getvalue()
    if fmt == "json":
        return json.dumps([e.to_dict() for e in events], indent=2) + "\n"
    if fmt == "audacity":
        return "".join(f"{e.onset:.3f}\t{e.offset:.3f}\t{e.label}\n" for e in events)
    raise ValueError(f"unknown format {fmt!r}; choose one of csv, json, audacity")


def events_by_file(events: Iterable[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.filename, []).append(e)
    return out
