"""What the many-file commands share (``detect``, ``osc classify``, ``asd score``): the
``--manifest``, ``--workers``, ``--scheduler`` and ``--restart`` options, the journal beside
the output, the errors CSV, the progress bar (files, hours of audio per hour, ETA) and the exit
codes. The machinery itself is :mod:`kwsos.batch`.

Exit codes: 0 every file done; 1 some files failed (the others' results are written, the
failures listed in ``OUTPUT.errors.csv`` and on stderr); 2 a user error before any work (one
line); 130 interrupted (what finished is in the journal: rerun the same command to continue).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from kwsos.cli._common import _stderr_is_terminal, err, info
from kwsos.errors import KwsosError

__all__ = [
    "EXIT_FAILED_FILES",
    "EXIT_INTERRUPTED",
    "BatchRun",
    "DashboardOpt",
    "ManifestOpt",
    "RestartOpt",
    "SchedulerOpt",
    "WorkerThreadsOpt",
    "WorkersOpt",
    "batch_run",
    "check_batch_options",
    "errors_path",
    "gather_inputs",
    "journal_path",
    "prestart_workers",
    "wants_batch",
]

EXIT_FAILED_FILES = 1
EXIT_INTERRUPTED = 130
#: Failed files named one per line on stderr; the rest are only in the errors CSV.
MAX_ERROR_LINES = 10

ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help="A file listing the inputs: one path per line, or a CSV with a 'path' (or "
        "'filename') column; relative paths are read from the current folder. Adds to the "
        "paths given as arguments. Unreadable files in it are reported, not fatal.",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Start a local Dask cluster of N worker processes (one file at a time each, "
        "cores / N threads each) and spread the files over them. Needs kwsos[cluster].",
        min=1,
        show_default=False,
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="local|tcp://HOST:PORT",
        help="Where to run: 'local' (a local Dask cluster; --workers sets its size, default "
        "1) or the address of a running Dask scheduler (its workers must see the model and "
        "the files under the same paths). Default: threads of this process (--jobs).",
        show_default=False,
    ),
]
WorkerThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--worker-threads",
        help="Threads each file gets on a Dask worker (numba, torch). Default: cores / "
        "--workers on a local cluster, the worker machine's cores / its worker threads on an "
        "existing one.",
        min=1,
        show_default=False,
    ),
]
DashboardOpt = Annotated[
    bool | None,
    typer.Option(
        "--dashboard/--no-dashboard",
        help="Serve Dask's dashboard for a local cluster (needs bokeh) and print its link. "
        "Default: when stderr is a terminal, i.e. when someone is there to open it (starting "
        "it costs ~0.3 s).",
        show_default=False,
    ),
]
RestartOpt = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Discard the journal (OUTPUT.journal) of an earlier, unfinished run and start "
        "over. Without it a rerun of the same command skips the files already done.",
    ),
]


def journal_path(output: Path) -> Path:
    """The journal beside ``output``: ``OUTPUT.journal``."""
    return output.with_name(output.name + ".journal")


def errors_path(output: Path) -> Path:
    """The failed files' report beside ``output``: ``OUTPUT.errors.csv``."""
    return output.with_name(output.name + ".errors.csv")


def gather_inputs(paths: Sequence[Path] | None, manifest: Path | None) -> list[str]:
    """The inputs in order: the command line's paths, then the manifest's."""
    from kwsos.batch import read_manifest

    names = [str(p) for p in paths or ()]
    if manifest is not None:
        names += read_manifest(manifest)
    return names


def wants_batch(
    n_inputs: int, *, manifest: Path | None, workers: int | None, scheduler: str | None
) -> bool:
    """Whether a command runs through :func:`batch_run` (several inputs, a manifest, or a
    cluster) rather than its one-file path."""
    return n_inputs > 1 or manifest is not None or workers is not None or scheduler is not None


def check_batch_options(
    output: Path | None,
    *,
    workers: int | None,
    scheduler: str | None,
    restart: bool,
    worker_threads: int | None = None,
    dashboard: bool | None = None,
) -> None:
    """One-line errors for option combinations that cannot work, before any work."""
    from kwsos.io import check_output_path

    if worker_threads is not None and workers is None and scheduler is None:
        raise KwsosError("--worker-threads is for a Dask cluster: give --workers or --scheduler")
    if dashboard is not None and workers is None and scheduler != "local":
        raise KwsosError(
            "--dashboard is for a local cluster (give --workers); a running scheduler serves "
            "its own"
        )
    if restart and output is None:
        raise KwsosError("--restart discards the journal beside --output; give --output")
    if scheduler not in (None, "local") and workers is not None:
        raise KwsosError("--workers starts a local cluster; it cannot be combined with an address")
    if output is not None:
        check_output_path(journal_path(output), what="journal")
        check_output_path(errors_path(output), what="errors file")


def prestart_workers(job_class: type, *, workers: int | None, scheduler: str | None) -> None:
    """For a local cluster: start the server its workers are forked from now, so that it
    imports what they need (:func:`kwsos.batch.worker_preload`) while this process checks the
    options and loads the model (:func:`kwsos.batch.start_worker_server`)."""
    import importlib.util

    if workers is None or scheduler not in (None, "local"):
        return
    if importlib.util.find_spec("distributed") is None:
        return  # batch_run says what to install
    from kwsos.batch import start_worker_server, worker_preload

    start_worker_server(worker_preload(job_class))


@dataclass
class BatchRun:
    """A run in progress: iterate :attr:`outcomes` (in input order) to drive it."""

    n: int
    outcomes: Iterator[Any] = field(default=iter(()))
    failed: list[Any] = field(default_factory=list)
    resumed: int = 0
    done: int = 0


class _FilesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed)}/{int(task.total or 0)} files")


class _RateColumn(ProgressColumn):
    """Hours of audio per hour of wall time (= times real time), over this run's files."""

    def render(self, task: Task) -> Text:
        elapsed = time.monotonic() - task.fields.get("t0", time.monotonic())
        audio = task.fields.get("audio_s", 0.0)
        if elapsed <= 0 or audio <= 0:
            return Text("-- h audio/h")
        return Text(f"{audio / elapsed:,.0f} h audio/h")


class _EtaColumn(ProgressColumn):
    """Remaining files at this run's pace (files taken from the journal do not count)."""

    def render(self, task: Task) -> Text:
        ran = task.completed - task.fields.get("resumed", 0)
        elapsed = time.monotonic() - task.fields.get("t0", time.monotonic())
        if ran <= 0 or task.total is None:
            return Text("ETA --:--")
        left = int((task.total - task.completed) * elapsed / ran)
        return Text(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _FilesColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        _EtaColumn(),
        console=err,
        transient=True,
        disable=not (enabled and err.is_terminal),
    )


@contextmanager
def batch_run(
    job: Any,
    items: Sequence[Any],
    *,
    output: Path | None,
    description: str,
    model: Any = None,
    unit_size: int = 1,
    unit_bytes: int | None = None,
    jobs: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    worker_threads: int | None = None,
    restart: bool = False,
    progress: bool = True,
    dashboard: bool | None = None,
) -> Iterator[BatchRun]:
    """Run ``job`` over ``items`` for a command: yields a :class:`BatchRun` whose ``outcomes``
    the command consumes in input order to write its output (inside the ``with`` block).

    With ``output``, finished files are recorded in ``OUTPUT.journal`` (a rerun skips them;
    the journal is removed once every file succeeded and the block wrote the output) and failed
    files in ``OUTPUT.errors.csv``. After the block: a failed file makes the command exit 1, an
    interruption exits 130 with a line saying how to continue. ``dashboard``: whether a local
    cluster serves Dask's dashboard (None: when stderr is a terminal).
    """
    from kwsos.batch import DaskPool, Journal, journal_header, run_batch, worker_preload

    n = len(items)
    run = BatchRun(n=n)
    journal = None
    with ExitStack() as stack:
        pool = None
        if workers is not None or scheduler is not None:
            pool = stack.enter_context(
                DaskPool(
                    scheduler=scheduler,
                    workers=workers,
                    worker_threads=worker_threads,
                    preload=worker_preload(job),
                    dashboard=_stderr_is_terminal() if dashboard is None else dashboard,
                )
            )
            link = pool.dashboard_link
            where = (
                f"local cluster of {workers or 1} worker(s)"
                if pool.scheduler is None
                else pool.scheduler
            )
            if link:
                board = f"; dashboard {link}"
            elif pool.scheduler is None and not pool.dashboard:
                board = "; --dashboard serves Dask's dashboard"
            else:
                board = "; pip install bokeh for the dashboard"
            info(f"Dask {where}: {pool.n_threads} thread(s)" + board)
        resumed: dict[int, dict[str, Any]] = {}
        if output is not None:
            from kwsos.io import remove_stale_temporaries

            journal, resumed = Journal.open(
                journal_path(output), journal_header(job, items), restart=restart
            )
            # what a killed run was writing (we hold the journal's lock: no one else writes it)
            for target in (output, errors_path(output)):
                remove_stale_temporaries(target)
        bar = stack.enter_context(_progress(progress))
        task = bar.add_task(description, total=n, t0=time.monotonic(), audio_s=0.0, resumed=0)

        def hook(step: str, completed: int = 0, total: int = 0, **extra: Any) -> None:
            bar.update(task, completed=completed, audio_s=extra.get("audio_s", 0.0))

        def outcomes() -> Iterator[Any]:
            for o in run_batch(
                job,
                items,
                unit_size=unit_size,
                unit_bytes=unit_bytes,
                jobs=jobs,
                pool=pool,
                journal=journal,
                resumed=resumed,
                model=model,
                hook=hook,
            ):
                run.done += 1
                if o.resumed:
                    run.resumed += 1
                    bar.update(task, resumed=run.resumed)
                if not o.ok:
                    run.failed.append(o)
                    if len(run.failed) <= MAX_ERROR_LINES:
                        err.print(
                            f"[yellow]failed:[/] {escape(o.name)}: {escape(o.error or '')}",
                            highlight=False,
                            soft_wrap=True,
                        )
                yield o

        run.outcomes = outcomes()
        try:
            yield run
        except KeyboardInterrupt:
            run.outcomes.close()
            if journal is not None:
                journal.close()
                err.print(
                    f"interrupted: {run.done} of {n} file(s) done; the finished ones are recorded "
                    f"in {journal.path}: run the same command again to continue",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                err.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BaseException:
            run.outcomes.close()
            if journal is not None:
                journal.close()
            raise
        if run.done != n:  # the command stopped reading early (a bug): keep the journal
            if journal is not None:
                journal.close()
            raise RuntimeError(f"the command consumed {run.done} of {n} outcomes")
        _finish(run, output, journal)


def _finish(run: BatchRun, output: Path | None, journal: Any) -> None:
    from kwsos.io import write_csv_atomic

    if output is not None:
        report = errors_path(output)
        if run.failed:
            write_csv_atomic(report, ([o.name, o.error] for o in run.failed), ["filename", "error"])
        else:
            report.unlink(missing_ok=True)  # from an earlier run of this command
    if journal is not None:
        # kept while files failed, so that a rerun redoes only those
        journal.close(remove=not run.failed)
    if run.resumed:
        info(f"{run.resumed} of {run.n} file(s) were done by an earlier run (from {journal.path})")
    if run.failed:
        where = f"; the list is in {errors_path(output)}" if output is not None else ""
        err.print(
            f"[bold red]error:[/] {len(run.failed)} of {run.n} file(s) failed{escape(where)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED_FILES)
