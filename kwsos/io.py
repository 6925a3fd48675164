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
    "csv_text",
    "read_csv_rows",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    The temporary name keeps the suffix, so writers that pick a format by suffix still work.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
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
