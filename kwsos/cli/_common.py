"""What every command group shares: consoles, the one-line error wrapper, progress bars,
logging set-up and writing text output (stdout or an atomically written file)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from kwsos.errors import KwsosError

__all__ = [
    "emit_text",
    "err",
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


def setup_logging(verbose: bool = False) -> None:
    """Library log records (warnings; with ``verbose`` info too) as one line each on stderr."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        force=True,
    )


def user_errors(fn: F) -> F:
    """Turn a :class:`KwsosError` into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KwsosError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


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
    err.print(f"wrote {what} to {output}", highlight=False)
