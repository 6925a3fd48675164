"""Keyword-spotting commands: enroll, train, keywords, detect, tune, evaluate, demo."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kwsos.cli._batch import (
    DashboardOpt,
    ManifestOpt,
    RestartOpt,
    SchedulerOpt,
    WorkersOpt,
    WorkerThreadsOpt,
    batch_run,
    check_batch_options,
    gather_inputs,
    prestart_workers,
    wants_batch,
)
from kwsos.cli._common import (
    check_number,
    done,
    emit_text,
    err,
    info,
    out,
    progress_hook,
    require_file,
    torch_threads,
    user_errors,
)
from kwsos.errors import KwsosError
from kwsos.io import (
    atomic_output,
    check_output_path,
    check_writable_dir_target,
    file_lock,
    lock_path,
    lock_timeout_s,
)

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
BankOpt = Annotated[
    Path, typer.Option("--bank", "-b", help="Keyword bank directory (created by enroll).")
]


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    audacity = "audacity"
    parquet = "parquet"


class Features(str, Enum):
    tacos = "tacos"
    lkw = "lkw"
    sliding = "sliding"
    hfcc = "hfcc"
    mfcc = "mfcc"
    whisper = "whisper"
    whisper_tacos = "whisper-tacos"


class Inference(str, Enum):
    exact = "exact"
    hop = "hop"
    conv = "conv"


FEATURES_HELP = (
    "whisper-tacos (default for a new bank; the best F1 we measured, also across speakers): "
    "frames of Whisper's speech encoder (trained on 680k hours of real speech) through a small "
    "head trained on your shots with the TACos loss in seconds. whisper: the encoder frames "
    "alone, no training. hfcc or mfcc: hand-crafted cepstra, no training. tacos: a log-Mel "
    "network trained on your shots with the TACos loss (the dissertation's system; minutes of "
    "training); lkw: same network, keyword loss only; sliding: sliding-window baseline (one "
    "vector per 0.25 s segment, no DTW). Changing it re-extracts every keyword's templates."
)
WhisperModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--whisper-model",
        help="A CTranslate2 Whisper model folder for the whisper features (default: the "
        "bundled tiny.en of kwsos[whisper], or $KWSOS_WHISPER_MODEL); stored in the bank.",
    ),
]
INFERENCE_HELP = (
    "How learned embeddings are computed: conv = one convolutional pass (fast, default); "
    "exact = the paper's 16 overlapping segments per frame (~16x slower); hop = segments every "
    "--hop-frames frames. Re-tune the threshold after changing it."
)
EpochsOpt = Annotated[
    int | None,
    typer.Option(
        help="Train exactly this many epochs (default: a budget of steps, cut at --max-minutes: "
        "500 for whisper-tacos, ~15 s on 2 CPU cores; 2000 for tacos/lkw/sliding, ~9-12 min).",
        min=1,
    ),
]
MinutesOpt = Annotated[
    float | None,
    typer.Option(
        "--max-minutes", help="Stop training after this many minutes (default 10).", min=0.1
    ),
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="Training device: auto, cpu, cuda, cuda:1 ... (default auto).")
]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for training (default 0).")]
ReversedOpt = Annotated[
    bool | None,
    typer.Option(
        "--reversed/--no-reversed",
        help="Train with a time-reversed class per keyword (default on; the paper found it helps every system).",
    ),
]
BackgroundOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of recordings of your environment without the keywords (any format), used as "
        "extra 'no speech' training material next to the built-in generated noise.",
    ),
]


JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        help="Recordings searched at once by threads of this process (default: the number of "
        "CPU cores, at most 4; 1 = one after the other). The results keep the input order.",
        min=1,
        show_default=False,
    ),
]


class Templates(str, Enum):
    shots = "shots"
    dba = "dba"


def _check_bank_writable(bank: Path) -> None:
    """Before any work: ``bank`` is a bank (or nothing yet) that can be created or replaced."""
    from kwsos.tasks.kws import check_bank_target

    check_bank_target(bank)
    check_writable_dir_target(bank, what="keyword bank")


@contextmanager
def _bank_lock(bank: Path) -> Iterator[None]:
    """Held by every command that rewrites ``bank``, from before it reads the bank until after
    it saved it: a second one waits (``$KWSOS_LOCK_TIMEOUT_S``, default 600 s), so neither
    loses the other's change. Readers need no lock: a bank is swapped in by renames."""
    with file_lock(lock_path(bank), lock_timeout_s(), what=f"bank {bank}"):
        yield


def _save_bank(spotter, bank: Path) -> None:
    try:
        spotter.save(bank)
    except OSError as exc:  # anything save() does not report itself
        reason = exc.strerror or " ".join(str(exc).split())
        raise KwsosError(f"cannot write keyword bank {bank}: {reason}") from None


def _load_bank(bank: Path, *, trained: bool = False):
    from kwsos.tasks.kws import KeywordSpotter

    spotter = KeywordSpotter.load(bank)
    torch_threads()
    if trained and spotter.needs_training:
        raise KwsosError(
            f"the embedding network of {bank} is out of date (keywords were enrolled with "
            f"--no-train); run: kwsos train --bank {bank}"
        )
    return spotter


def _read_backgrounds(folder: Path | None) -> list:
    from kwsos.audio import AUDIO_SUFFIXES, load_audio

    if folder is None:
        return []
    if not folder.is_dir():
        raise KwsosError(f"background folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise KwsosError(f"no audio files in background folder {folder}")
    return [load_audio(f) for f in files]


def _apply_training_options(
    spotter, *, epochs, max_minutes, device, seed, reversed_segments=None
) -> None:
    given = {"epochs": epochs, "max_minutes": max_minutes, "device": device, "seed": seed}
    train: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if epochs is not None:
        train["max_steps"] = None  # an explicit epoch count replaces the default step budget
    changes: dict[str, Any] = {"train": train} if train else {}
    if reversed_segments is not None:
        changes["reversed_segments"] = reversed_segments
    if changes:
        spotter.set_training(**changes)


def _open_bank_for_enroll(bank: Path, features, whisper_model: Path | None):
    """The bank's spotter (a new one with the default features when there is none yet), switched
    to ``--features`` / ``--whisper-model`` when given. Call it holding the bank's lock."""
    from kwsos.tasks.kws import BANK_FILE, DEFAULT_FEATURES, KeywordSpotter, SpotterConfig

    if (bank / BANK_FILE).is_file():
        spotter = KeywordSpotter.load(bank)
    else:
        spotter = KeywordSpotter(SpotterConfig.for_features(DEFAULT_FEATURES))
    if features is not None and features.value != spotter.feature_name:
        spotter.use_features(features.value)
    if whisper_model is not None:
        _use_whisper_model(spotter, whisper_model)
    return spotter


def _use_whisper_model(spotter, folder: Path) -> None:
    """Point the bank's whisper features at a CTranslate2 model folder (checked now)."""
    from kwsos.features.whisper import find_model

    if not spotter.feature_name.startswith("whisper"):
        raise KwsosError(
            f"--whisper-model applies to whisper features; this bank uses {spotter.feature_name}"
        )
    find_model(str(folder))
    spotter.use_features(spotter.feature_name, model_dir=str(folder.resolve()))


def _train(spotter, backgrounds: list, *, warm_start: bool = True) -> str:
    """Train the bank's embedding network; returns the one-line summary."""
    n_kw = len(spotter.keywords)
    with progress_hook(f"training {spotter.feature_name} embeddings ({n_kw} keywords)") as hook:
        tlog = spotter.train_features(backgrounds=backgrounds, warm_start=warm_start, hook=hook)
    stats = spotter.extractor.training
    return (
        f"trained the {spotter.feature_name} embedding network on {n_kw} keyword(s) "
        f"({len(stats['classes'])} classes, {stats['n_segments']} segments) in "
        f"{tlog.seconds:.1f} s: {tlog.epochs_run} epoch(s) on {tlog.device}, final loss "
        f"{tlog.losses[-1]:.3f}, stopped by {tlog.stopped}"
    )


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
    features: Annotated[Features | None, typer.Option(help=FEATURES_HELP)] = None,
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
    train: Annotated[
        bool,
        typer.Option(
            help="Train the embedding network now (learned features). With --no-train only the "
            "shots are stored: enroll several keywords, then train once with `kwsos train`."
        ),
    ] = True,
    inference: Annotated[Inference | None, typer.Option(help=INFERENCE_HELP)] = None,
    whisper_model: WhisperModelOpt = None,
    epochs: EpochsOpt = None,
    max_minutes: MinutesOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    background: BackgroundOpt = None,
    reversed_segments: ReversedOpt = None,
) -> None:
    """Enroll KEYWORD from its SHOTS into the keyword bank (created if needed).

    Each shot is converted to 16 kHz mono, high-passed at 50 Hz, peak-normalised and trimmed to
    its voiced part. With the default whisper-tacos features, the head on Whisper's encoder is
    then (re)trained on the shots of all keywords in the bank (seconds on a laptop CPU); every
    shot's embedding sequence becomes a template for subsequence DTW. Enrolling many keywords:
    use --no-train for all but the last (or run kwsos train once at the end).

    Examples:

      kwsos enroll weather shots/weather_*.wav --bank my_bank

      kwsos enroll banana shots/banana_*.wav --bank my_bank --no-train   (then: kwsos train)
    """
    start = time.perf_counter()
    for s in shots:
        require_file(s, "shot")
    _check_bank_writable(bank)  # fail before a long training, not after it
    backgrounds = _read_backgrounds(background)
    with _bank_lock(bank):
        spotter = _open_bank_for_enroll(bank, features, whisper_model)
        if templates is not None and templates.value != spotter.config.backend.templates:
            spotter.set_templates(templates.value)
        if inference is not None:
            spotter.set_inference(inference.value)
        _apply_training_options(
            spotter,
            epochs=epochs,
            max_minutes=max_minutes,
            device=device,
            seed=seed,
            reversed_segments=reversed_segments,
        )
        spotter.enroll(keyword, shots, replace_shots=replace)
        if train and spotter.needs_training:
            info(_train(spotter, backgrounds))
        if not spotter.needs_training:
            spotter.fit()
        _save_bank(spotter, bank)
    name = " ".join(keyword.split())
    note = " (network not trained yet: run kwsos train)" if spotter.needs_training else ""
    done(
        f"enrolled {name!r}: {spotter.n_shots(name)} shot(s) in {bank} "
        f"({len(spotter.keywords)} keyword(s), {spotter.feature_name} features, "
        f"{time.perf_counter() - start:.1f} s){note}"
    )


def enroll_folder(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A folder with one sub-folder per keyword (its name is the label, _ for a "
            "space), each holding that keyword's shots (any audio format).",
            show_default=False,
        ),
    ],
    bank: BankOpt = Path("kwsos_bank"),
    features: Annotated[Features | None, typer.Option(help=FEATURES_HELP)] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace keywords' existing shots instead of adding."),
    ] = False,
    whisper_model: WhisperModelOpt = None,
    epochs: EpochsOpt = None,
    max_minutes: MinutesOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    background: BackgroundOpt = None,
) -> None:
    """Enroll every keyword of FOLDER at once and train the features once.

    The same as one `kwsos enroll --no-train` per sub-folder followed by `kwsos train`, in one
    process: 15 keywords x 5 shots take ~26 s with the default features on 2 CPU cores.

    Example: kwsos enroll-folder shots/ --bank my_bank   (shots/weather/*.wav, shots/good_morning/*.wav)
    """
    from kwsos.audio import AUDIO_SUFFIXES

    start = time.perf_counter()
    if not folder.is_dir():
        raise KwsosError(f"shots folder not found: {folder}")
    keywords = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in sub.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES
        )  # fmt: skip
        if files:
            keywords[sub.name.replace("_", " ")] = files
    if not keywords:
        raise KwsosError(f"no keyword sub-folders with audio files in {folder}")
    _check_bank_writable(bank)
    backgrounds = _read_backgrounds(background)
    with _bank_lock(bank):
        spotter = _open_bank_for_enroll(bank, features, whisper_model)
        _apply_training_options(
            spotter, epochs=epochs, max_minutes=max_minutes, device=device, seed=seed
        )
        for keyword, files in keywords.items():
            spotter.enroll(keyword, files, replace_shots=replace)
        if spotter.needs_training:
            info(_train(spotter, backgrounds))
        spotter.fit()
        _save_bank(spotter, bank)
    done(
        f"enrolled {len(keywords)} keyword(s) from {folder} in {bank} "
        f"({len(spotter.keywords)} keyword(s), {spotter.feature_name} features, "
        f"{time.perf_counter() - start:.1f} s)"
    )


def train(
    bank: BankOpt = Path("kwsos_bank"),
    epochs: EpochsOpt = None,
    max_minutes: MinutesOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    background: BackgroundOpt = None,
    reversed_segments: ReversedOpt = None,
    inference: Annotated[Inference | None, typer.Option(help=INFERENCE_HELP)] = None,
    scratch: Annotated[
        bool,
        typer.Option("--from-scratch", help="Do not warm-start from the bank's current network."),
    ] = False,
) -> None:
    """(Re)train the bank's embedding network on the shots of all its keywords.

    Needed after `kwsos enroll --no-train`; also to train longer or on another device.
    The settings given here are stored in the bank. Re-tune the threshold afterwards.
    Example: kwsos train --bank my_bank --epochs 60 --device cuda
    """
    _check_bank_writable(bank)
    backgrounds = _read_backgrounds(background)
    with _bank_lock(bank):
        spotter = _load_bank(bank)
        if not spotter.learned:
            raise KwsosError(f"{bank} uses {spotter.feature_name} features, which are not trained")
        if inference is not None:
            spotter.set_inference(inference.value)
        _apply_training_options(
            spotter,
            epochs=epochs,
            max_minutes=max_minutes,
            device=device,
            seed=seed,
            reversed_segments=reversed_segments,
        )
        summary = _train(spotter, backgrounds, warm_start=not scratch)
        spotter.fit()
        _save_bank(spotter, bank)
    done(f"{summary}; saved {bank}")


def keywords(
    bank: BankOpt = Path("kwsos_bank"),
    remove: Annotated[
        list[str] | None, typer.Option("--remove", "-r", help="Remove this keyword (repeatable).")
    ] = None,
) -> None:
    """List the keywords of a bank (shots, durations, threshold) or remove some."""
    if remove:
        _check_bank_writable(bank)
        with _bank_lock(bank):
            spotter = _load_bank(bank)
            for kw in remove:
                spotter.remove(kw)
            _save_bank(spotter, bank)
    else:
        spotter = _load_bank(bank)
    table = Table(
        title=f"{bank} - {spotter.feature_name} features, threshold {spotter.config.decision.threshold:.4f}"
    )
    table.add_column("keyword")
    table.add_column("shots", justify="right")
    table.add_column("durations (s)")
    kt = spotter.config.decision.keyword_thresholds
    if kt:
        table.add_column("threshold", justify="right")
    for kw in spotter.keywords:
        durs = spotter.shot_durations_s(kw)
        row = [kw, str(len(durs)), " ".join(f"{d:.2f}" for d in durs)]
        if kt:
            row.append(f"{kt.get(kw, spotter.config.decision.threshold):.4f}")
        table.add_row(*row)
    out.print(table)
    if remove:
        done(f"removed {', '.join(remove)} from {bank}")


def _detect_one_file(spotter, recording: Path, threshold: float | None, *, progress: bool = True):
    """``[(recording, events)]`` of one file, with a progress bar over its frames (several
    files go through :func:`kwsos.cli._batch.batch_run`)."""
    with progress_hook(f"detecting in {recording.name}", enabled=progress) as hook:
        return [(recording, spotter.detect(recording, threshold=threshold, hook=hook))]


def _stream_csv(results, output: Path | None) -> None:
    """CSV rows written as the files finish (stdout, or a temporary file renamed at the end)."""
    from kwsos.events import format_events

    def write_all(fh) -> int:
        fh.write(format_events([], "csv"))  # the header
        fh.flush()
        n = 0
        for _, events in results:
            if events:
                fh.write(format_events(events, "csv", header=False))
                fh.flush()
            n += len(events)
        return n

    if output is None:
        # sys.stdout now, before a progress bar (rich) may redirect it to its console
        write_all(sys.stdout)
        return
    with atomic_output(output) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        n = write_all(fh)
    done(f"wrote {n} detection(s) to {output}")


def _print_events(events, fmt: Format, output: Path | None) -> None:
    from kwsos.events import format_events

    if fmt is Format.table:
        table = Table(title=f"{len(events)} detection(s)")
        for col in ("file", "onset (s)", "offset (s)", "keyword", "cost"):
            table.add_column(col, justify="right" if "(" in col or col == "cost" else "left")
        for e in events:
            table.add_row(e.filename, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label, f"{e.cost:.4f}")
        out.print(table)
        return
    if fmt is Format.audacity and len({e.filename for e in events}) > 1:
        raise KwsosError("the audacity format holds one recording; detect one file at a time")
    emit_text(format_events(events, fmt.value), output, f"{len(events)} detection(s)")


def detect(
    recordings: Annotated[
        list[Path] | None,
        typer.Argument(help="Recordings to search (any length, format, rate).", show_default=False),
    ] = None,
    bank: BankOpt = Path("kwsos_bank"),
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Maximum normalised DTW path cost (a cosine distance in [0, 2]; lower = stricter), for every keyword. Default: the bank's (tuned) thresholds."
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
            help="table (human), csv (sed_eval/DCASE: filename,onset,offset,event_label,cost), json, audacity (label track), parquet (the csv columns; needs pyarrow and --output).",
        ),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (atomically) instead of stdout. With several files, "
            "finished ones are recorded in OUTPUT.journal: a rerun continues where a killed "
            "run stopped.",
        ),
    ] = None,
    inference: Annotated[Inference | None, typer.Option(help=INFERENCE_HELP)] = None,
    jobs: JobsOpt = None,
    manifest: ManifestOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    worker_threads: WorkerThreadsOpt = None,
    restart: RestartOpt = False,
    dashboard: DashboardOpt = None,
) -> None:
    """Find every enrolled keyword in RECORDINGS, with onset and offset in seconds.

    Several recordings are searched at once (--jobs threads, or a Dask cluster with --workers
    or --scheduler); the results come out in the order of the inputs (csv rows as soon as a
    file and all files before it are done). A file that cannot be read is reported (on stderr
    and in OUTPUT.errors.csv) and the others are searched; the exit code is then 1.

    Example: kwsos detect meeting.flac --bank my_bank --format csv -o detections.csv

    Archive: kwsos detect --manifest files.txt --bank my_bank -f csv -o all.csv --workers 2
    """
    from kwsos.tasks.jobs import DetectJob

    # a local cluster's workers: their fork server imports while we check and load
    prestart_workers(DetectJob, workers=workers, scheduler=scheduler)
    from kwsos.tasks.kws import MAX_COST, MIN_COST

    names = gather_inputs(recordings, manifest)
    if not names:
        raise KwsosError("give the recordings to search, or --manifest FILE")
    batch = wants_batch(len(names), manifest=manifest, workers=workers, scheduler=scheduler)
    if fmt is Format.table and output is not None:
        raise KwsosError("--output needs --format csv, json, audacity or parquet")
    if fmt is Format.parquet and output is None:
        raise KwsosError("--format parquet needs --output FILE")
    if fmt is Format.audacity and len(names) > 1:
        raise KwsosError("the audacity format holds one recording; detect one file at a time")
    check_number(threshold, "--threshold", MIN_COST, MAX_COST, what="a cosine-distance cost")
    for r in recordings or ():
        require_file(r, "recording")
    if output is not None:
        inputs = [*names, bank, *([manifest] if manifest is not None else [])]
        check_output_path(output, inputs=inputs, what="output file")
    if fmt is Format.parquet:
        _require_pyarrow()
    check_batch_options(
        output if batch else None,
        workers=workers,
        scheduler=scheduler,
        restart=restart,
        dashboard=dashboard,
        worker_threads=worker_threads,
    )
    cluster = workers is not None or scheduler is not None
    job = DetectJob(
        os.path.abspath(bank) if cluster else str(bank),  # workers: not in our folder
        threshold=threshold,
        keywords=tuple(keyword) if keyword else None,
        inference=None if inference is None else inference.value,
    )
    model = job.load()
    torch_threads()
    # csv rows streamed to a terminal are the progress; a bar would be drawn across them
    rows_on_tty = fmt is Format.csv and output is None and sys.stdout.isatty()
    if not batch:  # one file: a progress bar over its frames, errors are fatal (exit 2)
        results = _detect_one_file(model[0], Path(names[0]), threshold, progress=not rows_on_tty)
        _write_events(results, fmt, output)
        return
    with batch_run(
        job,
        names,
        output=output,
        description=f"detecting in {len(names)} recordings",
        model=model,
        # a cluster task costs ~10-25 ms: short files go to the workers in groups
        unit_size=CLUSTER_UNIT_FILES if cluster else 1,
        unit_bytes=CLUSTER_UNIT_BYTES if cluster else None,
        jobs=jobs,
        workers=workers,
        scheduler=scheduler,
        worker_threads=worker_threads,
        restart=restart,
        dashboard=dashboard,
        progress=not rows_on_tty,
    ) as run:
        results = ((o.name, DetectJob.events(o.name, o.value)) for o in run.outcomes if o.ok)
        _write_events(results, fmt, output)


#: Files per cluster task: consecutive files up to this many bytes (16 MiB: ~8 min of 16 kHz
#: 16-bit audio, about a second of searching with an HFCC bank) and this many files; fewer
#: towards the end of a run (kwsos.batch's guided unit sizes).
CLUSTER_UNIT_BYTES, CLUSTER_UNIT_FILES = 16 << 20, 64


def _require_pyarrow() -> None:
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None:
        raise KwsosError("--format parquet needs pyarrow: pip install pyarrow")


def _write_events(results, fmt: Format, output: Path | None) -> None:
    """Write ``(recording, events)`` pairs (an iterator, consumed to the end) as ``fmt``."""
    if fmt is Format.csv:
        _stream_csv(results, output)
    elif fmt is Format.parquet:
        assert output is not None
        _write_parquet([e for _, events in results for e in events], output)
    else:
        _print_events([e for _, events in results for e in events], fmt, output)


def _write_parquet(events, output: Path) -> None:
    """The csv columns (filename, onset, offset, event_label, cost) as a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "filename": pa.array([e.filename for e in events], pa.string()),
            "onset": pa.array([round(e.onset, 3) for e in events], pa.float64()),
            "offset": pa.array([round(e.offset, 3) for e in events], pa.float64()),
            "event_label": pa.array([e.label for e in events], pa.string()),
            "cost": pa.array(
                [None if e.cost is None else round(float(e.cost), 4) for e in events],
                pa.float64(),
            ),
        }
    )
    with atomic_output(output) as tmp:
        pq.write_table(table, tmp)
    done(f"wrote {len(events)} detection(s) to {output}")


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

    require_file(reference, "reference file")
    require_file(estimate, "estimate file")
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
    inference: Annotated[
        Inference | None,
        typer.Option(help="Switch the bank's inference mode (stored with the new threshold)."),
    ] = None,
    per_keyword: Annotated[
        bool,
        typer.Option(
            "--per-keyword/--global",
            help="Also refine one threshold per keyword (coordinate ascent on validation F1, "
            "starting from the global one). Needs several occurrences of every keyword in the "
            "validation data; the dissertation found it does not help (Table 31).",
        ),
    ] = False,
    hfcc_weight: Annotated[
        list[float] | None,
        typer.Option(
            "--hfcc-weight",
            help="Learned features (tacos, lkw): fuse HFCC into the embeddings with this weight "
            "in [0, 1] (DTW cost = (1-w) x embedding distance + w x HFCC distance; 0 = "
            "embeddings alone). Repeat it (--hfcc-weight 0 --hfcc-weight 0.5 ...) to tune the "
            "threshold for each weight and keep the one with the best validation F1. Stored in "
            "the bank; no retraining.",
        ),
    ] = None,
    jobs: JobsOpt = None,
) -> None:
    """Pick the threshold that maximises event-based F1 on validation recordings and store it in
    the bank (one global threshold, or with --per-keyword one per keyword).

    Examples:

      kwsos tune validation.wav --reference validation.csv --bank my_bank --plot tune.png

      kwsos tune val*.wav -r val.csv --bank my_bank --hfcc-weight 0 --hfcc-weight 0.5 --hfcc-weight 0.75
    """
    from kwsos.events import read_events

    for w in hfcc_weight or []:
        check_number(w, "--hfcc-weight", 0.0, 1.0)
    for r in recordings:
        require_file(r, "recording")
    require_file(reference, "reference file")
    if plot is not None:
        check_output_path(plot, inputs=[*recordings, reference, bank], what="plot")
    _check_bank_writable(bank)
    ref = read_events(reference)
    results = None
    with _bank_lock(bank):
        spotter = _load_bank(bank, trained=True)
        if inference is not None:
            spotter.set_inference(inference.value)
        if hfcc_weight:
            with progress_hook("tuning") as hook:
                best, results = spotter.tune_hfcc_weight(
                    recordings, ref, hfcc_weight, per_keyword=per_keyword, hook=hook, jobs=jobs
                )
            result = results[best]
        else:
            with progress_hook("tuning") as hook:
                result = spotter.tune(
                    recordings, ref, per_keyword=per_keyword, hook=hook, jobs=jobs
                )
        if plot is None:
            _save_bank(spotter, bank)
        else:  # the plot is drawn first and renamed into place only once the bank is saved
            with atomic_output(plot) as tmp:
                _plot_tuning(result, tmp)
                _save_bank(spotter, bank)
    if results is not None and len(results) > 1:
        _print_weight_table(results, best)
    if per_keyword:
        assert result.global_scores is not None
        _print_scores(
            result.global_scores, f"validation scores at global threshold {result.threshold:.4f}"
        )
        _print_scores(result.scores, "validation scores with per-keyword thresholds")
    else:
        _print_scores(result.scores, f"validation scores at threshold {result.threshold:.4f}")
    what = "global and per-keyword thresholds" if per_keyword else "threshold"
    wrote = f"; wrote {plot}" if plot is not None else ""
    done(f"stored {what} ({result.threshold:.4f}) in {bank}{wrote}")


def _print_weight_table(results: dict, best: float) -> None:
    table = Table(title="validation F1 per HFCC weight (tuned thresholds)")
    for col in ("HFCC weight", "threshold", "F1", "precision", "recall", ""):
        table.add_column(col, justify="right")
    for w, r in results.items():
        table.add_row(
            f"{w:g}",
            f"{r.threshold:.4f}",
            f"{100 * r.scores.f1:.2f}",
            f"{100 * r.scores.precision:.2f}",
            f"{100 * r.scores.recall:.2f}",
            "chosen" if w == best else "",
        )
    out.print(table)


def _plot_tuning(result, path: Path) -> None:
    """Draw the tuning curves as a PNG into ``path`` (written directly: the caller passes the
    temporary file of an :func:`~kwsos.io.atomic_output`)."""
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
    try:
        fig.savefig(path, dpi=120, format="png")
    finally:
        plt.close(fig)


def demo(
    data: Annotated[
        Path | None, typer.Option(help="Demo folder (default: the one shipped with kwsos).")
    ] = None,
    bank: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's keyword bank here (default: a temporary folder)."),
    ] = None,
    features: Annotated[Features, typer.Option(help=FEATURES_HELP)] = Features.whisper_tacos,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Run the bundled demo: enroll its keywords from 5 shots each, tune the threshold on the
    validation recording, detect in the long test recording, print detections and F1."""
    from kwsos.events import read_events
    from kwsos.metrics import event_based_scores
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    data = data or DEMO_DIR
    if not (data / "shots").is_dir():
        raise KwsosError(f"no demo data at {data} (expected shots/, validation.flac, long.flac)")
    if bank is not None:
        _check_bank_writable(bank)
    with tempfile.TemporaryDirectory() as tmp, _bank_lock(bank or Path(tmp) / "bank"):
        bank = bank or Path(tmp) / "bank"
        start = time.perf_counter()
        spotter = KeywordSpotter(SpotterConfig.for_features(features.value))
        _apply_training_options(spotter, epochs=epochs, max_minutes=None, device=device, seed=None)
        for kw_dir in sorted(p for p in (data / "shots").iterdir() if p.is_dir()):
            shots = sorted(kw_dir.glob("*.wav"))
            spotter.enroll(kw_dir.name.replace("_", " "), shots)
        if spotter.needs_training:
            err.print(_train(spotter, []), highlight=False)
        spotter.fit()
        _save_bank(spotter, bank)
        err.print(
            f"enrolled {len(spotter.keywords)} keywords ({', '.join(spotter.keywords)}) "
            f"from 5 shots each in {time.perf_counter() - start:.1f} s -> {bank}",
            highlight=False,
        )
        with progress_hook("tuning on validation.flac") as hook:
            tuned = spotter.tune(
                [data / "validation.flac"], read_events(data / "validation.csv"), hook=hook
            )
        _save_bank(spotter, bank)
        err.print(
            f"threshold tuned on validation.flac: {tuned.threshold:.4f} "
            f"(validation F1 {100 * tuned.scores.f1:.2f} %)",
            highlight=False,
        )
        test = data / "long.flac"
        start = time.perf_counter()
        events = [e for _, evs in _detect_one_file(spotter, test, None) for e in evs]
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
    for fn in (enroll, enroll_folder, train, keywords, detect, tune, evaluate, demo):
        app.command()(user_errors(fn))
