"""File input/output shared by every task: output checks, atomic writes, locks and validated
CSV reading.

Nothing a user saved is ever left half-written: every writer goes through
:func:`atomic_output` (a temporary file beside the target, renamed into place on success).
Commands check every target before any work starts (:func:`check_output_path`,
:func:`check_writable_dir_target`), and a command that rewrites a shared directory (a keyword
bank) holds :func:`file_lock` on a lock file beside it from before it reads it until after it
saved it, so that two such commands never lose each other's changes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kwsos.errors import KwsosError

try:
    import fcntl
except ImportError:  # not POSIX: file_lock does not lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S",
    "LOCK_TIMEOUT_ENV",
    "atomic_output",
    "check_output_path",
    "check_writable_dir_target",
    "file_lock",
    "lock_path",
    "lock_timeout_s",
    "umask_mode",
    "csv_text",
    "read_csv_rows",
    "read_model_file",
    "remove_stale_temporaries",
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


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def check_output_path(
    path: str | Path, *, inputs: Iterable[str | Path] = (), what: str = "output file"
) -> Path:
    """Check, before any work starts, that ``path`` can be written as a file.

    The folder must exist and be writable, ``path`` must not be a folder or a read-only file,
    and it must not be one of the command's ``inputs`` (``kwsos detect rec.wav -o rec.wav``
    would otherwise replace the recording with the detections), nor lie inside an input that
    is a folder (a keyword bank is replaced as a whole when it is saved).

    Raises
    ------
    KwsosError
        One line naming the path and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise KwsosError(f"{what} {path} is a folder; give a file name")
    parent = _parent(path)
    if not parent.is_dir():
        raise KwsosError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KwsosError(f"cannot write {what} {path}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise KwsosError(f"cannot write {what} {path}: the file is read-only")
    target = path.resolve()
    for source in inputs:
        source = Path(source)
        try:
            same = path.exists() and source.exists() and os.path.samefile(path, source)
        except OSError:
            same = False
        if same or target == source.resolve():
            raise KwsosError(f"{what} {path} is also an input; refusing to overwrite it")
        if source.is_dir() and target.is_relative_to(source.resolve()):
            raise KwsosError(f"{what} {path} is inside the input folder {source}; choose another")
    return path


def check_writable_dir_target(path: str | Path, *, what: str = "folder") -> Path:
    """Check, before any work starts, that directory ``path`` can be created or replaced.

    A directory written by renaming a complete new copy into place (a keyword bank) needs an
    existing, writable parent folder; an existing ``path`` must be a writable directory (a
    read-only one is the user's "do not change this").

    Raises
    ------
    KwsosError
        One line naming the path and the problem.
    """
    path = Path(path)
    parent = _parent(path)
    if not parent.is_dir():
        raise KwsosError(f"cannot create {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KwsosError(f"cannot write {what} {path}: folder {parent} is not writable")
    if path.exists():
        if not path.is_dir():
            raise KwsosError(f"{what} {path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise KwsosError(f"cannot write {what} {path}: it is read-only")
    return path


#: How long a command waits for another one that holds the same lock (seconds).
DEFAULT_LOCK_TIMEOUT_S = 600.0
#: Environment variable that overrides :data:`DEFAULT_LOCK_TIMEOUT_S`.
LOCK_TIMEOUT_ENV = "KWSOS_LOCK_TIMEOUT_S"


def lock_timeout_s() -> float:
    """The lock timeout: ``$KWSOS_LOCK_TIMEOUT_S`` if set, else :data:`DEFAULT_LOCK_TIMEOUT_S`."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise KwsosError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` beside it (never inside: a keyword bank
    directory is swapped by a rename when it is saved). Every spelling of ``target``
    (relative, absolute, ``.``) gives the same file."""
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}.lock"


@contextmanager
def file_lock(
    path: str | Path,
    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    *,
    what: str | None = None,
    poll_s: float = 0.05,
) -> Iterator[Path]:
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` for the ``with`` block.

    The file is created if needed and removed on release (while still locked; an acquirer
    that then holds the lock of a removed file tries again on the new one), so no lock file
    outlives a command; one left by a killed process is reused. The lock is released on any
    exit, including an exception, and by the kernel when the process dies.

    Parameters
    ----------
    path
        The lock file (see :func:`lock_path`).
    timeout_s
        Wait at most this long for another holder (0: try once).
    what
        Names the locked thing in the error, e.g. ``"bank my_bank"``.

    Raises
    ------
    KwsosError
        Still held by another process after ``timeout_s`` ("... is in use by another kwsos
        command"), or the lock file cannot be created.
    """
    path = Path(path)
    if fcntl is None:  # pragma: no cover - no flock on this platform
        yield path
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, umask_mode(0o666))
        except OSError as exc:
            raise KwsosError(f"cannot create the lock file {path}: {_reason(exc)}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise KwsosError(
                            f"{what or path} is in use by another kwsos command (waited "
                            f"{timeout_s:g} s; set {LOCK_TIMEOUT_ENV} to wait longer)"
                        ) from None
                    time.sleep(poll_s)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)  # the previous holder removed this file on release: lock the new one
    try:
        yield path
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)


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


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    """Names :func:`atomic_output` gives the temporaries of ``path`` (``mkstemp``: prefix,
    8 random characters, suffix)."""
    return re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}{re.escape(path.suffix)}")


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporaries :func:`atomic_output` left behind for ``target`` when a process
    writing it was killed: those of the file ``target``, or, for a folder the command writes
    (a DCASE submission), those of every file in it. Returns what was removed.

    Only for a caller that knows no other process writes ``target`` (it holds the lock of the
    journal that owns it): a live writer's temporary would go too.
    """
    target = Path(target)
    if target.is_dir():
        folder, pattern = target, _ANY_TEMPORARY
    else:
        folder, pattern = _parent(target), _temporary_pattern(target)
    try:
        stale = [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    except OSError:
        return []
    removed = []
    for p in stale:
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


#: Any temporary of :func:`atomic_output` for a file with a suffix.
_ANY_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+")


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


def read_model_file(
    path: str | Path, *, what: str, current: str, old: Sequence[str] = ()
) -> tuple[dict[str, Any], str]:
    """``(state, format)`` of a model file written with ``torch.save`` (read with
    ``weights_only=True``), checked to carry the format tag ``current`` or one of ``old``.

    ``what`` names the kind of model in the one-line errors ("open-set model"): a missing file, a
    file torch cannot read, another format, or a newer version of this format (then the message
    says to upgrade kwsos).
    """
    import torch

    from kwsos import __version__

    path = Path(path)
    if not path.is_file():
        raise KwsosError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of every kind
        reason = " ".join(str(exc).split())[:200]
        raise KwsosError(f"cannot read {path} as a kwsos {what}: {reason}") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    prefix = current.rsplit("/", 1)[0] + "/"
    if isinstance(fmt, str) and fmt.startswith(prefix) and fmt not in (current, *old):
        tail = fmt.removeprefix(prefix)
        if tail.isdigit() and int(tail) > int(current.rsplit("/", 1)[1]):
            raise KwsosError(
                f"{path} was written by a newer kwsos (format {fmt}); this kwsos "
                f"{__version__} reads up to {current}: upgrade kwsos"
            )
    if fmt != current and fmt not in old:
        raise KwsosError(f"{path} is not a kwsos {what} (format {fmt!r})")
    return state, fmt
