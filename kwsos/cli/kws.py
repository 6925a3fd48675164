"""Keyword-spotting commands: enroll, keywords, detect, tune, evaluate, demo."""

from __future__ import annotations

import functools
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kwsos._atomic import atomic_output
from kwsos.errors import KwsosError

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
BankOpt = Annotated[
    Path, typer.Option("--bank", "-b", help="Keyword bank directory (created by enroll).")
]


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    audacity = "audacity"


class Features(str, Enum):
    hfcc = "hfcc"
    mfcc = "mfcc"


class Templates(str, Enum):
    shots = "shots"
    dba = "dba"


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


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise KwsosError(f"{what} not found: {path}")
    if not path.is_file():
        raise KwsosError(f"{what} is not a file: {path}")


@contextmanager
def progress_hook(description: str) -> Iterator[Callable[..., None]]:
    """A ``hook(step, completed=, total=)`` that drives a rich progress bar on stderr (TTY only)."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task(description, total=None)

    def hook(step: str, completed: int | None = None, total: int | None = None) -> None:
        progress.update(task, completed=completed, total=total)

    with progress:
        yield hook


def _load_bank(bank: Path):
    from kwsos.kws import KeywordSpotter

    return KeywordSpotter.load(bank)


def enroll(
    keyword: Annotated[
        str, typer.Argument(help="The keyword's label, e.g. weather or 'good morning'.")
    ],
    shots: Annotated[
        list[Path],
        typer.Argument(
            help="Recordings of the keyword alone (any format, rate, channels); 3-5 are typical.",
            show_default=False,
        ),
    ],
    bank: BankOpt = Path("kwsos_bank"),
    features: Annotated[
        Features | None,
        typer.Option(
            help="Frame features; fixed when the bank is created, changing it re-extracts every keyword's templates."
        ),
    ] = None,
    templates: Annotated[
        Templates | None,
        typer.Option(
            help="'shots': each shot is a DTW template (paper; the default); 'dba': one DTW-barycenter average per keyword. Changing it re-extracts every keyword's templates."
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace the keyword's existing shots instead of adding to them."
        ),
    ] = False,
) -> None:
    """Enroll KEYWORD from its SHOTS into the keyword bank (created if needed).

    Each shot is converted to 16 kHz mono, high-passed at 50 Hz, peak-normalised and trimmed to
    its voiced part; its feature sequence becomes a template for subsequence DTW.
    Example: kwsos enroll weather shots/weather_*.wav --bank my_bank
    """
    from kwsos.features import get_extractor
    from kwsos.kws import BANK_FILE, KeywordSpotter, SpotterConfig

    start = time.perf_counter()
    for s in shots:
        _require_file(s, "shot")
    if (bank / BANK_FILE).is_file():
        spotter = KeywordSpotter.load(bank)
    else:
        spotter = KeywordSpotter(SpotterConfig())
    if features is not None and features.value != spotter.extractor.name:
        spotter.set_extractor(get_extractor(features.value))
    if templates is not None and templates.value != spotter.config.templates:
        spotter.set_templates(templates.value)
    spotter.enroll(keyword, shots, replace_shots=replace)
    spotter.fit()
    spotter.save(bank)
    name = " ".join(keyword.split())
    err.print(
        f"enrolled {name!r}: {spotter.n_shots(name)} shot(s) in {bank} "
        f"({len(spotter.keywords)} keyword(s), {spotter.extractor.name} features, "
        f"{time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


def keywords(
    bank: BankOpt = Path("kwsos_bank"),
    remove: Annotated[
        list[str] | None, typer.Option("--remove", "-r", help="Remove this keyword (repeatable).")
    ] = None,
) -> None:
    """List the keywords of a bank (shots, durations, threshold) or remove some."""
    spotter = _load_bank(bank)
    if remove:
        for kw in remove:
            spotter.remove(kw)
        spotter.save(bank)
        err.print(f"removed {', '.join(remove)} from {bank}", highlight=False)
    table = Table(
        title=f"{bank} - {spotter.extractor.name} features, threshold {spotter.config.threshold:.4f}"
    )
    table.add_column("keyword")
    table.add_column("shots", justify="right")
    table.add_column("durations (s)")
    for kw in spotter.keywords:
        durs = spotter.shot_durations_s(kw)
        table.add_row(kw, str(len(durs)), " ".join(f"{d:.2f}" for d in durs))
    out.print(table)


def _detect_all(spotter, recordings: list[Path], threshold: float | None):
    events = []
    for rec in recordings:
        with progress_hook(f"detecting in {rec.name}") as hook:
            events += spotter.detect(rec, threshold=threshold, hook=hook)
    return events


def _print_events(events, fmt: Format, output: Path | None) -> None:
    from kwsos.events import format_events, write_text_atomic

    if fmt is Format.table:
        if output is not None:
            raise KwsosError("--output needs --format csv, json or audacity")
        table = Table(title=f"{len(events)} detection(s)")
        for col in ("file", "onset (s)", "offset (s)", "keyword", "cost"):
            table.add_column(col, justify="right" if "(" in col or col == "cost" else "left")
        for e in events:
            table.add_row(e.filename, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label, f"{e.cost:.4f}")
        out.print(table)
        return
    if fmt is Format.audacity and len({e.filename for e in events}) > 1:
        raise KwsosError("the audacity format holds one recording; detect one file at a time")
    text = format_events(events, fmt.value)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        err.print(f"wrote {len(events)} detection(s) to {output}", highlight=False)


def detect(
    recordings: Annotated[
        list[Path],
        typer.Argument(help="Recordings to search (any length, format, rate).", show_default=False),
    ],
    bank: BankOpt = Path("kwsos_bank"),
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Maximum normalised DTW path cost (cosine distance; lower = stricter). Default: the bank's (tuned) threshold."
        ),
    ] = None,
    keyword: Annotated[
        list[str] | None,
        typer.Option("--keyword", "-k", help="Only search for this keyword (repeatable)."),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="table (human), csv (sed_eval/DCASE: filename,onset,offset,event_label,cost), json, audacity (label track).",
        ),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Find every enrolled keyword in RECORDINGS, with onset and offset in seconds.

    Example: kwsos detect meeting.flac --bank my_bank --format csv -o detections.csv
    """
    for r in recordings:
        _require_file(r, "recording")
    spotter = _load_bank(bank)
    if keyword:
        for kw in keyword:
            spotter.n_shots(kw)  # raises on an unknown keyword
        for kw in set(spotter.keywords) - set(keyword):
            spotter.remove(kw)
    spotter.fit()
    _print_events(_detect_all(spotter, recordings, threshold), fmt, output)


def _print_scores(scores, title: str) -> None:
    table = Table(title=title)
    for col in ("label", "F1", "precision", "recall", "ref", "est"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, s in scores.per_label.items():
        table.add_row(
            label,
            f"{100 * s.f1:.2f}",
            f"{100 * s.precision:.2f}",
            f"{100 * s.recall:.2f}",
            str(s.n_ref),
            str(s.n_est),
        )
    table.add_section()
    table.add_row(
        "[bold]micro[/]",
        f"[bold]{100 * scores.f1:.2f}[/]",
        f"{100 * scores.precision:.2f}",
        f"{100 * scores.recall:.2f}",
        str(scores.n_ref),
        str(scores.n_est),
    )
    out.print(table)


def evaluate(
    reference: Annotated[
        Path,
        typer.Option(
            "--reference",
            "-r",
            help="Ground truth CSV: filename,onset,offset,event_label (header optional, comma or tab).",
        ),
    ],
    estimate: Annotated[
        Path,
        typer.Option("--estimate", "-e", help="Detections (CSV or JSON written by kwsos detect)."),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Event-based micro F1 / precision / recall (sed_eval; 0.2 s onset collar, offset within 50 % of the length).

    Files are matched by base name, so paths in the two files may differ.
    """
    import json

    from kwsos.events import read_events
    from kwsos.metrics import event_based_scores

    _require_file(reference, "reference file")
    _require_file(estimate, "estimate file")
    ref, est = read_events(reference), read_events(estimate)
    files = sorted({e.filename for e in ref} | {e.filename for e in est})
    scores = event_based_scores(ref, est, files=files)
    if json_out:
        sys.stdout.write(json.dumps(scores.to_dict(), indent=2) + "\n")
    else:
        _print_scores(scores, f"event-based scores ({len(files)} file(s))")


def tune(
    recordings: Annotated[
        list[Path],
        typer.Argument(help="Validation recordings (not your test data).", show_default=False),
    ],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Their ground truth CSV.")],
    bank: BankOpt = Path("kwsos_bank"),
    plot: Annotated[
        Path | None, typer.Option(help="Save the F1/precision/recall-vs-threshold curve as a PNG.")
    ] = None,
) -> None:
    """Pick the global threshold that maximises F1 on validation recordings and store it in the bank."""
    from kwsos.events import read_events

    for r in recordings:
        _require_file(r, "recording")
    _require_file(reference, "reference file")
    ref = read_events(reference)
    spotter = _load_bank(bank)
    with progress_hook("tuning") as hook:
        result = spotter.tune(recordings, ref, hook=hook)
    spotter.save(bank)
    _print_scores(result.scores, f"validation scores at threshold {result.threshold:.4f}")
    if plot is not None:
        _plot_tuning(result, plot)
        err.print(f"wrote {plot}", highlight=False)
    err.print(f"stored threshold {result.threshold:.4f} in {bank}", highlight=False)


def _plot_tuning(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.thresholds, 100 * result.f1, label="F1")
    ax.plot(result.thresholds, 100 * result.precision, label="precision", alpha=0.7)
    ax.plot(result.thresholds, 100 * result.recall, label="recall", alpha=0.7)
    ax.axvline(result.threshold, color="k", ls="--", lw=1, label=f"chosen {result.threshold:.3f}")
    ax.set_xlabel("threshold (normalised DTW path cost)")
    ax.set_ylabel("%")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def demo(
    data: Annotated[
        Path | None, typer.Option(help="Demo folder (default: the one shipped with kwsos).")
    ] = None,
    bank: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's keyword bank here (default: a temporary folder)."),
    ] = None,
    features: Annotated[Features, typer.Option(help="Frame features.")] = Features.hfcc,
) -> None:
    """Run the bundled demo: enroll its keywords from 5 shots each, tune the threshold on the
    validation recording, detect in the long test recording, print detections and F1."""
    from kwsos.events import read_events
    from kwsos.features import get_extractor
    from kwsos.kws import KeywordSpotter, SpotterConfig
    from kwsos.metrics import event_based_scores

    data = data or DEMO_DIR
    if not (data / "shots").is_dir():
        raise KwsosError(f"no demo data at {data} (expected shots/, validation.flac, long.flac)")
    with tempfile.TemporaryDirectory() as tmp:
        bank = bank or Path(tmp) / "bank"
        start = time.perf_counter()
        spotter = KeywordSpotter(SpotterConfig(features=get_extractor(features.value).to_dict()))
        for kw_dir in sorted(p for p in (data / "shots").iterdir() if p.is_dir()):
            shots = sorted(kw_dir.glob("*.wav"))
            spotter.enroll(kw_dir.name.replace("_", " "), shots)
        spotter.fit().save(bank)
        err.print(
            f"enrolled {len(spotter.keywords)} keywords ({', '.join(spotter.keywords)}) "
            f"from 5 shots each in {time.perf_counter() - start:.1f} s -> {bank}",
            highlight=False,
        )
        with progress_hook("tuning on validation.flac") as hook:
            tuned = spotter.tune(
                [data / "validation.flac"], read_events(data / "validation.csv"), hook=hook
            )
        spotter.save(bank)
        err.print(
            f"threshold tuned on validation.flac: {tuned.threshold:.4f} "
            f"(validation F1 {100 * tuned.scores.f1:.2f} %)",
            highlight=False,
        )
        test = data / "long.flac"
        start = time.perf_counter()
        events = _detect_all(spotter, [test], None)
        elapsed = time.perf_counter() - start
        _print_events(events, Format.table, None)
        from kwsos.audio import audio_info

        duration = audio_info(test).duration_s
        scores = event_based_scores(read_events(data / "long.csv"), events, files=[test.name])
        _print_scores(
            scores,
            f"demo test scores ({test.name}, {duration:.0f} s, "
            f"detected in {elapsed:.1f} s = {duration / elapsed:.0f}x real time)",
        )


def register(app: typer.Typer) -> None:
    for fn in (enroll, keywords, detect, tune, evaluate, demo):
        app.command()(user_errors(fn))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
