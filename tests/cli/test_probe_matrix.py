"""The probe matrix of issue 17 (outputs, bank targets, CLI numbers, error lines) as tests.

Every case runs one command that must fail before it changes anything: exit code 2, exactly
one line on stderr starting with ``error:``, and the whole workspace (recordings, shots, the
keyword bank, existing outputs, the open-set model) byte-identical, with no file added.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf
from conftest import plain_config
from osc_alarms import SR, TINY, alarm
from typer.testing import CliRunner

from kwsos.cli import app

runner = CliRunner()


def _permissions_enforced() -> bool:
    """False for root (with CAP_DAC_OVERRIDE), who may write anywhere and whom os.access
    tells so: then a read-only folder or bank cannot be probed."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o555)
        try:
            return not os.access(d, os.W_OK)
        finally:
            os.chmod(d, 0o755)


NOT_AS_ROOT = pytest.mark.skipif(
    not _permissions_enforced(),
    reason="runs as root, which ignores permissions: read-only paths cannot be probed "
    "(the missing-folder and folder-as-target cases still run)",
)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def tree_digest(folder: Path) -> str:
    """Names and contents of everything under ``folder`` (a new or changed file changes it)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def error_line(r) -> str:
    """The one stderr line of a failed command (exit 2, ``error: ...``, no traceback)."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


@pytest.fixture(scope="module")
def base(audio_set, tmp_path_factory) -> Path:
    """A workspace: a recording and its reference, shots, a tuned bank, existing outputs, a
    folder, an open-set model with its shots and clips."""
    import numpy as np

    from kwsos.tasks.kws import KeywordSpotter
    from kwsos.tasks.openset import OpenSetClassifier, OpenSetConfig

    root = tmp_path_factory.mktemp("probe")
    shutil.copy(audio_set["recording"], root / "rec.wav")
    shutil.copy(audio_set["reference"], root / "rec.csv")
    (root / "link.wav").symlink_to("rec.wav")
    spotter = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        (root / "shots" / name).mkdir(parents=True)
        for s in shots:
            shutil.copy(s, root / "shots" / name / s.name)
        spotter.enroll(name, sorted((root / "shots" / name).iterdir()))
    spotter.save(root / "bank")
    (root / "plot.png").write_bytes(b"an earlier plot")
    (root / "out.csv").write_text("an earlier output\n")
    (root / "folder").mkdir()
    (root / "folder" / "keep.txt").write_text("keep\n")
    (root / "ro").mkdir()
    (root / "ro" / "keep.txt").write_text("keep\n")

    osc = root / "osc"
    rng = np.random.default_rng(0)
    shots: dict[str, list[Path]] = {}
    for kind in ("fast_beeps", "warble"):
        (osc / "shots" / kind).mkdir(parents=True)
        shots[kind] = []
        for i in range(2):
            shots[kind].append(osc / "shots" / kind / f"{kind}_{i}.wav")
            sf.write(shots[kind][-1], alarm(kind, rng), SR)
    (osc / "clips").mkdir()
    sf.write(osc / "clips" / "clip.wav", alarm("warble", rng), SR)
    clf = OpenSetClassifier(OpenSetConfig.from_flat({**TINY, "epochs": 2}))
    clf.fit(shots).save(osc / "model.osc")
    # a class folder called like the label of rejected clips: fit fails after its info line
    named_unknown = osc / "shots_named_unknown"
    shutil.copytree(osc / "shots" / "warble", named_unknown / "warble")
    shutil.copytree(osc / "shots" / "fast_beeps", named_unknown / "unknown")
    return root


@pytest.fixture
def ws(base, tmp_path) -> Path:
    work = tmp_path / "ws"
    shutil.copytree(base, work, symlinks=True)
    yield work
    for p in [work, *work.rglob("*")]:  # undo the read-only cases, so that tmp is cleaned up
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Path], list]
    message: str
    read_only: tuple[str, ...] = ()  # workspace paths made read-only first (not as root)


def _detect(extra: Callable[[Path], list]):
    return lambda w: ["detect", w / "rec.wav", "--bank", w / "bank", "-f", "csv", *extra(w)]


def _tune(extra: Callable[[Path], list]):
    return lambda w: ["tune", w / "rec.wav", "-r", w / "rec.csv", "--bank", w / "bank", *extra(w)]


def _enroll(bank: Callable[[Path], Path]):
    return lambda w: ["enroll", "gamma", *sorted((w / "shots" / "alpha").iterdir()), "--bank",
                      bank(w)]  # fmt: skip


def _osc_fit(model: Callable[[Path], Path], extra: Callable[[Path], list] = lambda w: []):
    return lambda w: ["osc", "fit", w / "osc" / "shots", "--model", model(w), "--epochs", "0",
                      *extra(w)]  # fmt: skip


def _classify(extra: Callable[[Path], list]):
    return lambda w: ["osc", "classify", w / "osc" / "clips" / "clip.wav", "-m",
                      w / "osc" / "model.osc", *extra(w)]  # fmt: skip


CASES = [
    # data loss: an output that is one of the command's inputs
    Case("detect-o-is-the-recording", _detect(lambda w: ["-o", w / "rec.wav"]), "also an input"),
    Case("detect-o-is-the-recording-respelled",
         _detect(lambda w: ["-o", w / "folder" / ".." / "rec.wav"]), "also an input"),
    Case("detect-o-links-to-the-recording", _detect(lambda w: ["-o", w / "link.wav"]),
         "also an input"),
    Case("detect-o-inside-the-bank", _detect(lambda w: ["-o", w / "bank" / "bank.json"]),
         "inside the input folder"),
    Case("tune-plot-is-the-recording", _tune(lambda w: ["--plot", w / "rec.wav"]),
         "also an input"),
    Case("tune-plot-is-the-reference", _tune(lambda w: ["--plot", w / "rec.csv"]),
         "also an input"),
    Case("tune-plot-inside-the-bank", _tune(lambda w: ["--plot", w / "bank" / "t.png"]),
         "inside the input folder"),
    Case("osc-fit-model-is-a-shot",
         _osc_fit(lambda w: w / "osc" / "shots" / "warble" / "warble_0.wav"), "also an input"),
    Case("osc-classify-o-is-the-clip", _classify(lambda w: ["-f", "csv", "-o",
         w / "osc" / "clips" / "clip.wav"]), "also an input"),  # fmt: skip
    Case("osc-classify-o-is-the-model",
         _classify(lambda w: ["-f", "csv", "-o", w / "osc" / "model.osc"]), "also an input"),
    # a missing folder for every output option and for bank creation
    Case("detect-o-missing-folder", _detect(lambda w: ["-o", w / "missing" / "d.csv"]),
         "does not exist"),
    Case("tune-plot-missing-folder", _tune(lambda w: ["--plot", w / "missing" / "t.png"]),
         "does not exist"),
    Case("enroll-bank-in-missing-folder", _enroll(lambda w: w / "missing" / "bank"),
         "does not exist"),
    Case("osc-fit-model-missing-folder", _osc_fit(lambda w: w / "missing" / "m.osc"),
         "does not exist"),
    Case("osc-classify-o-missing-folder",
         _classify(lambda w: ["-f", "csv", "-o", w / "missing" / "c.csv"]), "does not exist"),
    # an existing folder as the target
    Case("detect-o-is-a-folder", _detect(lambda w: ["-o", w / "folder"]), "is a folder"),
    Case("tune-plot-is-a-folder", _tune(lambda w: ["--plot", w / "folder"]), "is a folder"),
    Case("osc-fit-model-is-a-folder", _osc_fit(lambda w: w / "folder"), "is a folder"),
    Case("osc-classify-o-is-a-folder", _classify(lambda w: ["-f", "csv", "-o", w / "folder"]),
         "is a folder"),
    Case("enroll-bank-is-a-file", _enroll(lambda w: w / "out.csv"), "not a keyword bank"),
    Case("enroll-bank-is-another-folder", _enroll(lambda w: w / "folder"), "refusing"),
    # read-only folders, files and banks
    Case("detect-o-read-only-folder", _detect(lambda w: ["-o", w / "ro" / "d.csv"]),
         "not writable", ("ro",)),
    Case("detect-o-read-only-file", _detect(lambda w: ["-o", w / "out.csv"]), "read-only",
         ("out.csv",)),
    Case("tune-plot-read-only-folder", _tune(lambda w: ["--plot", w / "ro" / "t.png"]),
         "not writable", ("ro",)),
    Case("osc-fit-model-read-only-folder", _osc_fit(lambda w: w / "ro" / "m.osc"),
         "not writable", ("ro",)),
    Case("osc-classify-o-read-only-folder",
         _classify(lambda w: ["-f", "csv", "-o", w / "ro" / "c.csv"]), "not writable", ("ro",)),
    Case("enroll-bank-in-read-only-folder", _enroll(lambda w: w / "ro" / "bank"),
         "not writable", ("ro",)),
    Case("enroll-read-only-bank", _enroll(lambda w: w / "bank"), "read-only", ("bank",)),
    Case("tune-read-only-bank", _tune(lambda w: []), "read-only", ("bank",)),
    Case("remove-from-read-only-bank",
         lambda w: ["keywords", "--bank", w / "bank", "--remove", "beta"], "read-only", ("bank",)),
    Case("train-read-only-bank", lambda w: ["train", "--bank", w / "bank"], "read-only",
         ("bank",)),
    # bad numbers on the command line (silent wrong answers before)
    *[Case(f"detect-threshold-{v}", _detect(lambda w, v=v: ["--threshold", v]),
           "--threshold must be a number in [0, 2]") for v in ("-1", "nan", "inf", "-inf", "2.5")],
    *[Case(f"tune-hfcc-weight-{v}", _tune(lambda w, v=v: ["--hfcc-weight", v]),
           "--hfcc-weight must be a number in [0, 1]") for v in ("nan", "-0.5", "1.5")],
    *[Case(f"osc-fit-threshold-{v}",
           _osc_fit(lambda w: w / "m.osc", lambda w, v=v: ["--threshold", v]),
           "--threshold must be a number in [-1, 1]") for v in ("nan", "1.5", "-inf")],
    *[Case(f"osc-classify-threshold-{v}", _classify(lambda w, v=v: ["--threshold", v]),
           "--threshold must be a number in [-1, 1]") for v in ("nan", "-2")],
    # errors that came after an info line ("training on N shots ...") were two lines
    Case("osc-fit-class-named-unknown",
         lambda w: ["osc", "fit", w / "osc" / "shots_named_unknown", "-m", w / "m.osc",
                    "--epochs", "0"], "may not be called 'unknown'"),  # fmt: skip
    Case("osc-fit-class-known-and-unknown",
         _osc_fit(lambda w: w / "m.osc", lambda w: ["--unknown", w / "osc" / "shots"]),
         "both known and unknown"),
]  # fmt: skip


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=[NOT_AS_ROOT] if c.read_only else []) for c in CASES]
)
def test_fails_with_one_line_and_changes_nothing(case: Case, ws: Path):
    for rel in case.read_only:
        (ws / rel).chmod(0o555 if (ws / rel).is_dir() else 0o444)
    before = tree_digest(ws)
    line = error_line(run(*case.args(ws)))
    assert case.message in line, line
    assert tree_digest(ws) == before


def test_the_recording_survives_detect_o_itself(ws: Path):
    """The reported data loss: ``kwsos detect rec.wav -o rec.wav`` replaced the recording."""
    rec = ws / "rec.wav"
    data = rec.read_bytes()
    for fmt in ("csv", "json", "audacity"):
        error_line(run("detect", rec, "--bank", ws / "bank", "-f", fmt, "-o", rec))
        assert rec.read_bytes() == data


def _failing_save(self, bank_dir):
    raise PermissionError(errno.EACCES, "Permission denied", str(bank_dir))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(_enroll(lambda w: w / "bank"), id="enroll"),
        pytest.param(_tune(lambda w: []), id="tune"),
        pytest.param(_tune(lambda w: ["--plot", w / "plot.png"]), id="tune-plot"),
        pytest.param(_tune(lambda w: ["--plot", w / "new.png"]), id="tune-new-plot"),
        pytest.param(lambda w: ["keywords", "--bank", w / "bank", "-r", "beta"], id="remove"),
    ],
)
def test_an_oserror_while_saving_the_bank_is_one_line(args, ws: Path, monkeypatch):
    """A raw OSError out of the bank save (a full disk, a permission) is one line, and the
    plot of ``tune --plot`` (written before the bank) is not put in place either."""
    from kwsos.tasks.kws import KeywordSpotter

    monkeypatch.setattr(KeywordSpotter, "save", _failing_save)
    before = tree_digest(ws)
    line = error_line(run(*args(ws)))
    assert "Permission denied" in line and "bank" in line, line
    assert tree_digest(ws) == before


def test_a_failing_plot_leaves_the_bank_unchanged(ws: Path, monkeypatch):
    """``tune --plot``: the threshold is stored only after the plot was drawn."""
    import kwsos.cli.kws as cli_kws

    def no_space(result, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli_kws, "_plot_tuning", no_space)
    before = tree_digest(ws)
    line = error_line(run(*_tune(lambda w: ["--plot", w / "plot.png"])(ws)))
    assert "No space left on device" in line
    assert tree_digest(ws) == before


def test_tune_plot_into_a_missing_folder_keeps_the_bank(ws: Path):
    """The reported case: the threshold was stored before the plot failed."""
    bank_json = (ws / "bank" / "bank.json").read_bytes()
    error_line(run(*_tune(lambda w: ["--plot", w / "missing" / "t.png"])(ws)))
    assert (ws / "bank" / "bank.json").read_bytes() == bank_json
    r = run(*_tune(lambda w: ["--plot", w / "plot.png"])(ws))  # and it works with a good path
    assert r.exit_code == 0, r.output
    assert (ws / "plot.png").read_bytes().startswith(b"\x89PNG")
    assert (ws / "bank" / "bank.json").read_bytes() != bank_json


@pytest.fixture
def restore_logging():
    """``--verbose`` sets the root logger to INFO for the rest of the process; undo it."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_info_lines_only_with_verbose(ws: Path, restore_logging):
    """Off a terminal, info lines ("training on N shots ...") need --verbose; the error line
    stays one line either way."""
    args = next(c for c in CASES if c.id == "osc-fit-class-named-unknown").args(ws)
    assert "may not be called" in error_line(run(*args))
    r = run("--verbose", *args)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and lines[0].startswith("training on 4 shots")
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
