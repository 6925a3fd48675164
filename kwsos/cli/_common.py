"""What every command group shares: consoles, the one-line error wrapper, progress bars,
info lines, option checks, logging set-up and writing text output (stdout or an atomically
written file).

Output rules of every command: an error is exactly one line on stderr (``error: ...``) and
exit code 2, and nothing was written; progress and info lines (:func:`info`) appear on stderr
only when it is a terminal or with ``kwsos --verbose``; a command that succeeds may end with
one summary line on stderr (:func:`done`), printed after everything it wrote is in place.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kwsos.errors import KwsosError

__all__ = [
    "check_number",
    "done",
    "emit_text",
    "err",
    "info",
    "is_verbose",
    "out",
    "progress_hook",
    "require_file",
    "setup_logging",
    "torch_threads",
    "user_errors",
]

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
#: ``kwsos --verbose`` (set by the app callback through :func:`setup_logging`).
_verbose = False


def setup_logging(verbose: bool = False) -> None:
    """Library log records (warnings; with ``verbose`` info too) as one line each on stderr;
    ``verbose`` also shows the commands' :func:`info` lines when stderr is not a terminal."""
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        handlers=[_StderrHandler()],
        force=True,
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a handler bound to the stream
    of one call would write to a closed stream once a test runner swapped it back)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def is_verbose() -> bool:
    return _verbose


def info(message: str) -> None:
    """A progress or info line on stderr, shown only on a terminal or with ``--verbose`` (so
    that a script's stderr holds nothing but the error line when a command fails)."""
    if _verbose or _stderr_is_terminal():
        err.print(message, markup=False, highlight=False, soft_wrap=True)


def _stderr_is_terminal() -> bool:
    # the stream itself, not rich's is_terminal (which FORCE_COLOR turns on in CI logs)
    try:
        return err.file.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def done(message: str) -> None:
    """The one summary line of a command that succeeded (stderr; call it last)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def user_errors(fn: F) -> F:
    """Turn a :class:`KwsosError`, or an ``OSError`` (a full disk, a permission), into one line
    on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KwsosError as exc:
            message = _one_line(exc)
        except OSError as exc:
            reason = exc.strerror or _one_line(exc) or type(exc).__name__
            message = f"{exc.filename}: {reason}" if exc.filename else reason
        err.print(
            f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def check_number(
    value: float | None, option: str, low: float, high: float, *, what: str = ""
) -> None:
    """One-line error unless ``value`` (when given) is finite and in ``[low, high]``."""
    if value is None:
        return
    if not (math.isfinite(value) and low <= value <= high):
        kind = f" ({what})" if what else ""
        raise KwsosError(f"{option} must be a number in [{low:g}, {high:g}]{kind}, got {value:g}")


def require_file(path: Path, what: str) -> None:
    """One-line error unless ``path`` is an existing file."""
    if not path.exists():
        raise KwsosError(f"{what} not found: {path}")
    if not path.is_file():
        raise KwsosError(f"{what} is not a file: {path}")


@contextmanager
def progress_hook(description: str, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A ``hook(step, completed=, total=)`` (:mod:`kwsos.hooks`) that drives a rich progress bar
    on stderr (TTY only; never with ``enabled=False``)."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not (enabled and err.is_terminal),
    )
    task = progress.add_task(description, total=None)

    def hook(
        step: str, completed: int | None = None, total: int | None = None, **info: Any
    ) -> None:
        extra = "  ".join(f"{k} {v:.3f}" for k, v in info.items() if isinstance(v, float))
        desc = f"{description}  {extra}" if extra else description
        progress.update(task, completed=completed, total=total, description=desc)

    with progress:
        yield hook


def torch_threads() -> None:
    """Use the idle cores only (see kwsos.training.auto_threads); torch is loaded lazily."""
    if "torch" in sys.modules:
        from kwsos.training import auto_threads

        sys.modules["torch"].set_num_threads(auto_threads())


def emit_text(text: str, output: Path | None, what: str) -> None:
    """``text`` to stdout, or atomically to ``output`` with a note on stderr."""
    if output is None:
        sys.stdout.write(text)
        return
    from kwsos.io import write_text_atomic

    write_text_atomic(output, text)
    done(f"wrote {what} to {output}")
