"""File input/output shared by every task: atomic writes and validated CSV reading.

Nothing a user saved is ever left half-written: every writer goes through
:func:`atomic_output` (a temporary file beside the target, renamed into place on success).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kwsos.errors import KwsosError

__all__ = [
    "atomic_output",
    "check_output_path",
    "umask_mode",
    "csv_text",
    "read_csv_rows",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def _reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def umask_mode(mode: int) -> int:
    """``mode`` with the process's umask applied (what a plain ``open``/``mkdir`` would give)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def check_output_path(
    path: str | Path, *, inputs: Iterable[str | Path] = (), what: str = "output file"
) -> Path:
    """Check, before any work starts, that ``path`` can be written as a file.

    The folder must exist and be writable, ``path`` must not be a folder, and it must not be
    one of the command's ``inputs`` (``kwsos detect rec.wav -o rec.wav`` would otherwise
    replace the recording with the detections).

    Raises
    ------
    KwsosError
        One line naming the path and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise KwsosError(f"{what} {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise KwsosError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KwsosError(f"cannot write {what} {path}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise KwsosError(f"cannot write {what} {path}: the file is read-only")
    for source in inputs:
        source = Path(source)
        try:
            same = path.exists() and source.exists() and os.path.samefile(path, source)
        except OSError:
            same = False
        if same or path.resolve() == source.resolve():
            raise KwsosError(f"{what} {path} is also an input; refusing to overwrite it")
    return path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    The temporary name keeps the suffix, so writers that pick a format by suffix still work.
    The file gets the permissions a plain ``open()`` would give (``0666 & ~umask``).
    A folder that does not exist or cannot be written is a :class:`KwsosError` (one line).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise KwsosError(f"cannot write {path}: {_reason(exc)}") from None
    os.close(fd)
    os.chmod(tmp, umask_mode(0o666))  # mkstemp creates 0600
    try:
        yield Path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise KwsosError(f"cannot write {path}: {_reason(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any, *, indent: int = 2) -> None:
    """Write ``data`` as JSON (with a final newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def csv_text(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """CSV text (``\\n`` line ends, as sed_eval and the DCASE tools read) of ``rows``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_csv_atomic(
    path: str | Path, rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None
) -> None:
    """Write ``rows`` (after an optional ``header``) as CSV to ``path`` atomically."""
    write_text_atomic(path, csv_text(rows, header))


def read_csv_rows(
    path: str | Path, need: Sequence[str] = (), *, what: str = "CSV file"
) -> list[dict[str, str]]:
    """Rows of a CSV file with a header line that must name the columns ``need``.

    Raises
    ------
    KwsosError
        The file is missing or unreadable, or a column of ``need`` is missing (one line naming
        the file and the columns).
    """
    path = Path(path)
    if not path.is_file():
        raise KwsosError(f"missing {what} {path}")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise KwsosError(f"{path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise KwsosError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
