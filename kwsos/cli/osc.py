"""``kwsos osc``: few-shot open-set sound classification (Diss. 6.2) from the command line.

``kwsos osc fit SHOTS_DIR --model FILE`` trains a classifier on a few recordings of each of your
sounds (one sub-folder per class); ``kwsos osc classify CLIP... --model FILE`` names the class
of every clip, or says ``unknown``. The commands stay thin: everything happens in
:class:`kwsos.tasks.openset.OpenSetClassifier`.
"""

from __future__ import annotations

import json
import os
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
    info,
    out,
    progress_hook,
    user_errors,
)
from kwsos.errors import KwsosError
from kwsos.io import check_output_path

app = typer.Typer(
    name="osc",
    help=(
        "Few-shot open-set classification: teach kwsos a few recordings of each of your sounds "
        "(smoke alarm, doorbell, washing machine ...), then ask which of them a clip is, or "
        "whether it is none of them ('unknown').\n\n"
        "  kwsos osc fit my_sounds/ --model sounds.osc\n\n"
        "  kwsos osc classify clip1.wav clip2.flac --model sounds.osc"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = Annotated[
    Path,
    typer.Option(
        "--model", "-m", help="Model file (written by fit, read by classify).", show_default=False
    ),
]


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _audio_files(folder: Path) -> list[Path]:
    from kwsos.audio import AUDIO_SUFFIXES  # lazy: scipy is slow to import at CLI start-up

    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES
    )


def _class_folders(root: Path, what: str) -> dict[str, list[Path]]:
    """``{sub-folder name: audio files}``; an empty class folder is an error."""
    if not root.exists():
        raise KwsosError(f"{what} folder not found: {root}")
    if not root.is_dir():
        raise KwsosError(f"{what} must be a folder with one sub-folder per class: {root}")
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _audio_files(sub)
        if not files:
            raise KwsosError(f"class folder {sub} is empty (no .wav, .flac, .ogg, .mp3 ... files)")
        classes[sub.name] = files
    return classes


def _expand_clips(clips: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for c in clips:
        if c.is_dir():
            files = _audio_files(c)
            if not files:
                raise KwsosError(f"folder {c} has no audio files")
            paths += files
        elif not c.exists():
            raise KwsosError(f"clip not found: {c}")
        else:
            paths.append(c)
    return paths


def fit(
    shots_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder with one sub-folder of recordings (shots) per class; the folder name is "
            "the class name.",
            show_default=False,
        ),
    ],
    model: ModelOpt,
    unknown: Annotated[
        Path | None,
        typer.Option(
            help="Optional folder of sounds that are none of the classes (sub-folders per kind "
            "of sound, or files: each loose file is a kind of its own): trained as 'known "
            "unknowns', clips close to them are classified unknown.",
        ),
    ] = None,
    pretrained: Annotated[
        list[str] | None,
        typer.Option(
            help="Network to start from (it is fine-tuned on your shots and also kept as it "
            "is): 'real' (shipped with kwsos, pretrained on 1794 real recordings under ever "
            "new real backgrounds and device colourings), 'synthetic' (shipped, pretrained on "
            "generated alarm-like sounds; also called 'bundled'), 'none' (a random start: the "
            "paper's directly trained system) or a file written by "
            "recipes/alarm_osc/local/pretrain.py. Give it twice or more to combine networks "
            "(e.g. --pretrained real --pretrained synthetic): each is fine-tuned and kept, and "
            "a clip's similarity is the mean over all of them. [default: real]",
            show_default=False,
            metavar="NETWORK",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Minimum cosine similarity (-1..1) to the closest class's shots; below it a clip "
            "is unknown. Higher = stricter. Default 0.6 with a pretrained network, 0.65 without "
            "(Diss. 6.2.2: 0.6-0.75).",
        ),
    ] = None,
    estimate_threshold: Annotated[
        str | None,
        typer.Option(
            help="Estimate the threshold from leave-one-out similarities of the shots with this "
            "estimator (sd, mad, iqr, gamma, ...; needs 2+ shots of a class) instead.",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Training epochs (default: 100 / shots per class when fine-tuning a pretrained "
            "network, 100 x shots from scratch; 0 with a pretrained network: no training).",
            min=0,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="Training device: auto, cpu, cuda, cuda:1 ... (default auto)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
) -> None:
    """Train an open-set classifier on SHOTS_DIR (one sub-folder of shots per class).

    Example: kwsos osc fit my_sounds/ --model sounds.osc
    """
    from kwsos.embeddings.clip import SHIPPED_PRETRAINED, pretrained_frontend
    from kwsos.tasks.openset import PRETRAINED_SYSTEM, OpenSetClassifier

    check_number(threshold, "--threshold", -1.0, 1.0, what="a cosine similarity")
    if threshold is not None and estimate_threshold is not None:
        raise KwsosError("give either --threshold or --estimate-threshold, not both")
    if model.is_dir():
        raise KwsosError(f"--model must be a file name, {model} is a folder")
    shots = _class_folders(shots_dir, "shots")
    if not shots:
        raise KwsosError(
            f"no class folders in {shots_dir}: put the shots of each class in a sub-folder "
            "named after the class"
        )
    unknown_shots: dict[str, list[Path]] = {}
    if unknown is not None:
        unknown_shots = _class_folders(unknown, "--unknown")
        loose = _audio_files(unknown) if unknown.is_dir() else []
        # One class per loose file: pooled into one class, unrelated sounds pull the network
        # and the known clips towards "unknown" (recipes/alarm_osc/RESULTS_real.md: 4 shots at
        # low openness 76.9 % pooled vs 87.6 % one class per kind of sound).
        for f in loose:
            unknown_shots[f"{f.stem} (unknown)"] = [f]
        if not unknown_shots:
            raise KwsosError(f"--unknown folder {unknown} has no audio files")
    if len(shots) < 2 and not unknown_shots:
        only = next(iter(shots))
        raise KwsosError(
            f"only one class ({only!r}) in {shots_dir}: give at least two classes, or add "
            "--unknown with sounds that are none of them"
        )
    inputs = [f for files in (*shots.values(), *unknown_shots.values()) for f in files]
    priors = pretrained or ["real"]
    inputs += [Path(p) for p in priors if p not in SHIPPED_PRETRAINED and p.lower() != "none"]
    check_output_path(model, inputs=inputs, what="model file")
    from kwsos.audio import audio_info

    for files in (*shots.values(), *unknown_shots.values()):
        for f in files:
            audio_info(f)  # unreadable files fail here, before any work
    options: dict[str, Any] = {}
    if any(p.lower() == "none" for p in priors) and len(priors) > 1:
        raise KwsosError("--pretrained none cannot be combined with other networks")
    if len(set(priors)) != len(priors):
        raise KwsosError(f"--pretrained names a network twice: {', '.join(priors)}")
    if priors[0].lower() != "none":
        frontends = []
        for p in priors:
            if p not in SHIPPED_PRETRAINED and not Path(p).is_file():
                raise KwsosError(f"--pretrained: file not found: {p}")
            frontends.append(pretrained_frontend(p))  # the features it was trained on
        if any(f != frontends[0] for f in frontends[1:]):
            raise KwsosError(
                "--pretrained: the networks were trained on different features "
                "(frontend settings differ); they cannot be combined"
            )
        options.update(PRETRAINED_SYSTEM)
        options["init"] = priors[0] if len(priors) == 1 else priors
        options.update(frontends[0].to_dict())
    elif epochs == 0:
        raise KwsosError("--epochs 0 needs a pretrained network (--pretrained)")
    if threshold is not None:
        options["threshold"] = threshold
    if estimate_threshold is not None:
        options["threshold"] = None
        options["threshold_estimator"] = estimate_threshold
    if epochs is not None:
        options["epochs"] = epochs
    if device is not None:
        options["device"] = device
    if seed is not None:
        options["seed"] = seed
    try:
        clf = OpenSetClassifier(**options)
    except ValueError as exc:  # e.g. an unknown estimator name
        raise KwsosError(str(exc)) from None
    n = sum(map(len, shots.values())) + sum(map(len, unknown_shots.values()))
    info(
        f"training on {n} shots of {len(shots)} class(es)"
        + (f" and {len(unknown_shots)} unknown sound(s)" if unknown_shots else "")
    )
    with progress_hook("training") as hook:
        try:
            clf.fit(shots, unknown_shots, hook=hook)
        except KwsosError:
            raise
        except ValueError as exc:  # threshold estimator problems
            raise KwsosError(str(exc)) from None
    clf.save(model)
    log = clf.train_log_
    done(
        f"wrote {model}: classes {', '.join(clf.classes_)}; threshold {clf.threshold_:.3f}; "
        f"{log['epochs_run']} epochs in {log['seconds']:.0f} s"
    )


#: Clips per call of the classifier (and per journal record): big enough for its pipeline
#: (read the next batch while the network embeds one) to pay, small enough that a killed run
#: has little to redo. On a cluster, smaller units spread a few hundred clips over the workers.
UNIT_CLIPS, CLUSTER_UNIT_CLIPS = 256, 32


def classify(
    model: ModelOpt,
    clips: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Clips to classify (any format; folders are expanded to their audio files). "
            "Each clip's first 4 s are used.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (human), csv (filename,label,top_class,score), json (with the "
            "similarity to every class).",
        ),
    ] = OutputFormat.table,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Override the model's similarity threshold (a cosine similarity, -1..1)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (atomically) instead of stdout. Finished clips are "
            "recorded in OUTPUT.journal: a rerun continues where a killed run stopped.",
        ),
    ] = None,
    manifest: ManifestOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    worker_threads: WorkerThreadsOpt = None,
    restart: RestartOpt = False,
    dashboard: DashboardOpt = None,
) -> None:
    """Name the class of every CLIP, or 'unknown'.

    A clip that cannot be read is reported (on stderr and in OUTPUT.errors.csv) and the others
    are classified; the exit code is then 1.

    Example: kwsos osc classify kitchen.wav hall.flac --model sounds.osc --format csv
    """
    from kwsos.tasks.jobs import ClassifyJob

    # a local cluster's workers: their fork server imports while we check and load
    prestart_workers(ClassifyJob, workers=workers, scheduler=scheduler)

    check_number(threshold, "--threshold", -1.0, 1.0, what="a cosine similarity")
    if fmt is OutputFormat.table and output is not None:
        raise KwsosError("--output needs --format csv or json")
    if not model.exists():
        raise KwsosError(f"model file not found: {model} (create it with kwsos osc fit)")
    names = [str(p) for p in _expand_clips(clips or [])] + gather_inputs(None, manifest)
    if not names:
        raise KwsosError("give the clips to classify, or --manifest FILE")
    batch = wants_batch(len(names), manifest=manifest, workers=workers, scheduler=scheduler)
    if output is not None:
        inputs = [*names, model, *([manifest] if manifest is not None else [])]
        check_output_path(output, inputs=inputs, what="output file")
    check_batch_options(
        output if batch else None,
        workers=workers,
        scheduler=scheduler,
        restart=restart,
        dashboard=dashboard,
        worker_threads=worker_threads,
    )
    cluster = workers is not None or scheduler is not None
    # a cluster's workers do not share our current folder
    job = ClassifyJob(os.path.abspath(model) if cluster else str(model), threshold)
    clf = job.load()
    thr = clf.threshold_ if threshold is None else threshold
    if not batch:  # one clip: errors are fatal (exit 2)
        value = job.run(clf, names)[0]
        _print_rows([_row(names[0], value)], fmt, output, thr)
        return
    with batch_run(
        job,
        names,
        output=output,
        description="classifying",
        model=clf,
        unit_size=CLUSTER_UNIT_CLIPS if cluster else UNIT_CLIPS,
        jobs=1,  # one call at a time: the classifier uses the cores itself
        workers=workers,
        scheduler=scheduler,
        worker_threads=worker_threads,
        restart=restart,
        dashboard=dashboard,
    ) as run:
        rows = [_row(o.name, o.value) for o in run.outcomes if o.ok]
        _print_rows(rows, fmt, output, thr)


def _row(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": name,
        "label": value["label"],
        "top_class": value["top_class"],
        "score": value["score"],
        "similarities": {c: round(float(s), 6) for c, s in value["similarities"].items()},
    }


def _print_rows(
    rows: list[dict[str, Any]], fmt: OutputFormat, output: Path | None, threshold: float
) -> None:
    from kwsos.io import csv_text

    if fmt is OutputFormat.table:
        if output is not None:
            raise KwsosError("--output needs --format csv or json")
        table = Table(title=f"{len(rows)} clip(s), threshold {threshold:.3f}")
        for col in ("file", "label", "closest class", "similarity"):
            table.add_column(col, justify="right" if col == "similarity" else "left")
        for r in rows:
            table.add_row(r["file"], r["label"], r["top_class"], f"{r['score']:.4f}")
        out.print(table)
        return
    if fmt is OutputFormat.csv:
        text = csv_text(
            ([r["file"], r["label"], r["top_class"], f"{r['score']:.6f}"] for r in rows),
            ["filename", "label", "top_class", "score"],
        )
    else:
        text = json.dumps(rows, indent=1) + "\n"
    emit_text(text, output, f"{len(rows)} result(s)")


app.command()(user_errors(fit))
app.command()(user_errors(classify))
