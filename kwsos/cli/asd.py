"""``kwsos asd``: anomalous sound detection for machines (DCASE 2020/2022/2023 Task 2).

``kwsos asd fit DATASET_DIR --model FILE`` trains on the normal training clips of a DCASE
directory as downloaded (every machine type found, or ``--machine``); ``kwsos asd score
DATASET_DIR --model FILE --output DIR`` writes the official submission files for its test clips;
``kwsos asd evaluate DIR --dataset DATASET_DIR`` prints the official table. Everything happens
in :class:`kwsos.tasks.anomaly.AnomalyDetector` and :mod:`kwsos.dcase`.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kwsos.cli._batch import (
    DashboardOpt,
    RestartOpt,
    SchedulerOpt,
    WorkersOpt,
    WorkerThreadsOpt,
    batch_run,
    check_batch_options,
    prestart_workers,
)
from kwsos.cli._common import done, emit_text, info, out, progress_hook, user_errors
from kwsos.errors import KwsosError
from kwsos.io import check_output_path, check_writable_dir_target

app = typer.Typer(
    name="asd",
    help=(
        "Anomalous sound detection for machines (DCASE Task 2): train on recordings of "
        "normally running machines, then score new recordings (higher = more anomalous).\n\n"
        "  kwsos asd fit dev_data/ --model machines.asd\n\n"
        "  kwsos asd score dev_data/ --model machines.asd --output submission/\n\n"
        "  kwsos asd evaluate submission/ --dataset dev_data/\n\n"
        "DATASET_DIR is a DCASE 2020, 2022 or 2023 Task 2 folder as downloaded (the layout is "
        "detected; machine types are the folder names)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Layout(str, Enum):
    auto = "auto"
    dcase2020 = "dcase2020"
    dcase2022 = "dcase2022"
    dcase2023 = "dcase2023"


DatasetArg = Annotated[
    Path,
    typer.Argument(
        help="DCASE Task 2 folder: the download root, dev_data, dev_data/raw, eval_data or one "
        "machine folder.",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    Path,
    typer.Option(
        "--model", "-m", help="Model file (written by fit, read by score).", show_default=False
    ),
]
MachineOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--machine",
        help="Only this machine type (folder name); repeat for several. Default: all found.",
    ),
]
LayoutOpt = Annotated[
    Layout, typer.Option(help="Data set layout (default: detected from the file names).")
]


def _layout(layout: Layout) -> str | None:
    return None if layout is Layout.auto else layout.value


def _read(
    root: Path,
    *,
    split: str,
    layout: Layout,
    machines: list[str] | None,
    ground_truth: Path | None = None,
) -> tuple[list[Any], str]:
    from kwsos.dcase import detect_layout, read_dataset

    if not root.exists():
        raise KwsosError(f"data set folder not found: {root}")
    if not root.is_dir():
        raise KwsosError(f"the data set must be a folder (DCASE layout): {root}")
    lay = _layout(layout) or detect_layout(root)
    clips = read_dataset(
        root, layout=lay, split=split, machines=machines or None, ground_truth=ground_truth
    )
    if not clips:
        raise KwsosError(f"no {split} clips in {root}")
    return clips, lay


def _load_config(config: Path | None, overrides: dict[str, Any]) -> Any:
    from kwsos.tasks.anomaly import AnomalyConfig

    base: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise KwsosError(f"config file not found: {config}")
        try:
            base = json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KwsosError(f"{config} is not valid JSON: {exc}") from None
        if not isinstance(base, dict):
            raise KwsosError(f"{config} must hold a JSON object of config sections")
    try:
        cfg = AnomalyConfig.from_dict(base)
        return cfg.replace_flat(**overrides) if overrides else cfg
    except (KwsosError, ValueError, TypeError) as exc:
        raise KwsosError(f"{config or 'config'}: {exc}") from None


def fit(
    dataset: DatasetArg,
    model: ModelOpt,
    config: Annotated[
        Path | None,
        typer.Option(
            help="JSON file with config sections (frontend, model, training, backend, "
            "decision; see recipes/dcase2023_task2/conf/). Default: the DCASE2023 system "
            "(two-branch network, sub-cluster AdaCos, k-means backend).",
        ),
    ] = None,
    machine: MachineOpt = None,
    layout: LayoutOpt = Layout.auto,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.", min=1)] = None,
    ensemble: Annotated[
        int | None, typer.Option(help="Networks trained with successive seeds.", min=1)
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Training device: auto, cpu, cuda, cuda:1 ...")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
) -> None:
    """Train an anomaly detector on the normal training clips of DATASET_DIR.

    Example: kwsos asd fit dev_data/ --model machines.asd --machine fan
    """
    from kwsos.tasks.anomaly import AnomalyDetector

    overrides = {
        k: v
        for k, v in {"epochs": epochs, "ensemble": ensemble, "device": device, "seed": seed}.items()
        if v is not None
    }
    cfg = _load_config(config, overrides)
    if model.is_dir():
        raise KwsosError(f"--model must be a file name, {model} is a folder")
    check_output_path(model, inputs=[p for p in (config,) if p is not None], what="model file")
    clips, lay = _read(dataset, split="train", layout=layout, machines=machine)
    normal = [c for c in clips if c.label in ("normal", None)]
    if not normal:
        raise KwsosError(f"no normal training clips in {dataset}")
    machines = sorted({c.machine for c in normal})
    info(f"{lay}: training on {len(normal)} normal clips of {len(machines)} machine type(s)")
    det = AnomalyDetector(cfg)
    with progress_hook("training") as hook:
        det.fit(normal, hook=hook)
    det.save(model)
    secs = sum(float(t.get("seconds", 0.0)) for t in det.train_logs_)
    done(
        f"wrote {model}: {', '.join(machines)}; {len(det.groups_)} section(s); "
        f"training {secs:.0f} s"
    )


def score(
    dataset: DatasetArg,
    model: ModelOpt,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for the official files anomaly_score_<machine>_section_<XX>_test.csv "
            "and decision_result_<machine>_section_<XX>_test.csv (DCASE2020: "
            "anomaly_score_<machine>_id_<XX>.csv).",
            show_default=False,
        ),
    ],
    machine: MachineOpt = None,
    layout: LayoutOpt = Layout.auto,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    worker_threads: WorkerThreadsOpt = None,
    restart: RestartOpt = False,
    dashboard: DashboardOpt = None,
) -> None:
    """Score the test clips of DATASET_DIR and write the DCASE submission files.

    Finished clips are recorded in OUTPUT.journal (beside the folder): a rerun continues
    where a killed run stopped. A clip that cannot be read is reported (stderr and
    OUTPUT.errors.csv), the others are scored and written, and the exit code is 1.

    Example: kwsos asd score dev_data/ --model machines.asd --output submission/
    """
    from kwsos.tasks.jobs import ScoreJob

    # a local cluster's workers: their fork server imports while we check and load
    prestart_workers(ScoreJob, workers=workers, scheduler=scheduler)
    import numpy as np

    from kwsos.dcase import write_submission

    if not model.is_file():
        raise KwsosError(f"model file not found: {model} (create it with kwsos asd fit)")
    check_writable_dir_target(output, what="output folder")
    check_batch_options(
        output,
        workers=workers,
        scheduler=scheduler,
        restart=restart,
        dashboard=dashboard,
        worker_threads=worker_threads,
    )
    cluster = workers is not None or scheduler is not None
    # a cluster's workers do not share our current folder
    job = ScoreJob(os.path.abspath(model) if cluster else str(model))
    det = job.load()
    clips, lay = _read(dataset, split="test", layout=layout, machines=machine)
    unknown = sorted({c.machine for c in clips} - set(det.machines_))
    if unknown:
        raise KwsosError(
            f"machine type {unknown[0]!r} is not in the model (trained on "
            f"{', '.join(det.machines_)}); use --machine to choose"
        )
    det.threshold_of(clips)  # raises on a section the model does not know, before any work
    with batch_run(
        job,
        clips,
        output=output,
        description="scoring",
        model=det,
        unit_size=CLUSTER_UNIT_CLIPS if cluster else UNIT_CLIPS,
        jobs=1,  # one call at a time: the detector uses the cores itself
        workers=workers,
        scheduler=scheduler,
        worker_threads=worker_threads,
        restart=restart,
        dashboard=dashboard,
    ) as run:
        scored = [(clips[o.index], o.value) for o in run.outcomes if o.ok]
        if scored:
            ok = [c for c, _ in scored]
            scores = np.asarray([s for _, s in scored], dtype=np.float64)
            decisions = (scores > det.threshold_of(ok)).astype(int)
            files = write_submission(output, ok, scores, decisions, layout=lay)
            done(f"wrote {len(files)} file(s) for {len(ok)} test clips to {output}")


#: Clips per call of the detector (and per journal record); smaller on a cluster, to spread a
#: section's clips over the workers.
UNIT_CLIPS, CLUSTER_UNIT_CLIPS = 256, 32


class ReportFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def evaluate(
    submission: Annotated[
        Path,
        typer.Argument(help="Folder with the anomaly_score_*.csv files.", show_default=False),
    ],
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="The DCASE folder the files score (labels and domains from its file names)."
        ),
    ] = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            help="Ground truth of an evaluation set: the evaluator's folder with "
            "ground_truth_*.csv files (or a single CSV); needs --dataset for the clip list.",
        ),
    ] = None,
    machine: MachineOpt = None,
    layout: LayoutOpt = Layout.auto,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="table (human), csv (official result table), json."),
    ] = ReportFormat.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Evaluate DCASE submission files: AUC (source/target), pAUC, F1 and the official score.

    Example: kwsos asd evaluate submission/ --dataset dev_data/
    """
    from kwsos.dcase import evaluate_submission

    if dataset is None:
        raise KwsosError("give --dataset (the DCASE folder the submission scores)")
    if not submission.is_dir():
        raise KwsosError(f"submission folder not found: {submission}")
    if ground_truth is not None and not ground_truth.exists():
        raise KwsosError(f"ground truth not found: {ground_truth}")
    if output is not None:
        check_output_path(output, inputs=[], what="output file")
    clips, lay = _read(
        dataset, split="test", layout=layout, machines=machine, ground_truth=ground_truth
    )
    missing = [c for c in clips if c.label is None]
    if missing:
        raise KwsosError(
            f"no label for {missing[0].name} ({len(missing)} clip(s)): an evaluation set needs "
            "--ground-truth"
        )
    report = evaluate_submission(submission, clips, layout=lay)
    if fmt is ReportFormat.table:
        text = report.format_table() + "\n"
    elif fmt is ReportFormat.csv:
        from kwsos.io import csv_text

        text = csv_text(report.csv_rows())
    else:
        text = json.dumps(report.to_dict(), indent=1) + "\n"
    if fmt is ReportFormat.table and output is None:
        out.print(text, end="", markup=False, highlight=False)
    else:
        emit_text(text, output, "the evaluation")


app.command()(user_errors(fit))
app.command()(user_errors(score))
app.command()(user_errors(evaluate))
