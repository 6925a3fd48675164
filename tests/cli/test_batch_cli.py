"""Many files through the command line: --manifest, a Dask cluster (--workers, --scheduler),
runs killed at any point and restarted, failing files, Parquet, and the option errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import plain_config
from typer.testing import CliRunner

from kwsos.cli import app
from kwsos.tasks.kws import KeywordSpotter

runner = CliRunner()
HEADER = "filename,onset,offset,event_label,cost"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def archive(audio_set, tmp_path_factory):
    """A bank of the two test keywords and 24 recordings (pieces of the test recording, some
    repeated to make them longer), listed in a manifest; ``reference``: the detections of an
    ordinary in-process run."""
    root = tmp_path_factory.mktemp("archive")
    bank = root / "bank"
    spotter = KeywordSpotter(plain_config())
    for name, shots in audio_set["shots"].items():
        spotter.enroll(name, shots)
    spotter.save(bank)
    x, sr = sf.read(str(audio_set["recording"]), dtype="float32")
    rng = np.random.default_rng(3)
    files = []
    for k in range(24):
        a, b = sorted(rng.uniform(0, 1, 2))
        piece = x[int(a * len(x)) : max(int(b * len(x)), int(a * len(x)) + sr)]
        files.append(root / "audio" / f"r{k:02d}.wav")
        files[-1].parent.mkdir(exist_ok=True)
        sf.write(str(files[-1]), np.tile(piece, 1 + k % 3), sr)
    manifest = root / "files.txt"
    manifest.write_text("".join(f"{f}\n" for f in files))
    ref = root / "reference.csv"
    r = run("detect", *files, "--bank", bank, "-f", "csv", "-o", ref, "-j", "1")
    assert r.exit_code == 0, r.output
    lines = ref.read_text().splitlines()
    assert lines[0] == HEADER and len(lines) > 30
    assert not (root / "reference.csv.journal").exists()  # removed once all files succeeded
    return {"root": root, "bank": bank, "files": files, "manifest": manifest, "reference": lines}


def test_manifest_text_and_csv_give_the_same_detections(archive, tmp_path):
    out = tmp_path / "a.csv"
    r = run("detect", "--manifest", archive["manifest"], "--bank", archive["bank"], "-f", "csv",
            "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines() == archive["reference"]
    m = tmp_path / "m.csv"
    m.write_text("speaker,path\n" + "".join(f"s,{f}\n" for f in archive["files"]))
    # a first file on the command line, the rest in the manifest
    r = run("detect", archive["files"][0], "--manifest", m, "--bank", archive["bank"], "-f", "csv")
    assert r.exit_code == 0, r.output
    first = [ln for ln in archive["reference"][1:] if ln.startswith("r00.wav,")]
    assert r.stdout.splitlines() == [HEADER, *first, *archive["reference"][1:]]


def test_parquet_holds_the_csv_columns(archive, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "d.parquet"
    r = run("detect", "--manifest", archive["manifest"], "--bank", archive["bank"], "-f",
            "parquet", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    table = pq.read_table(out).to_pylist()
    rows = list(csv.DictReader(io.StringIO("\n".join(archive["reference"]))))
    assert len(table) == len(rows)
    for t, c in zip(table, rows, strict=True):
        assert t["filename"] == c["filename"] and t["event_label"] == c["event_label"]
        assert f"{t['onset']:.3f},{t['offset']:.3f},{t['cost']:.4f}" == ",".join(
            (c["onset"], c["offset"], c["cost"])
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_local_dask_cluster_gives_identical_detections(archive, tmp_path, workers):
    pytest.importorskip("distributed")
    out = tmp_path / "w.csv"
    r = run("detect", "--manifest", archive["manifest"], "--bank", archive["bank"], "-f", "csv",
            "-o", out, "--workers", workers)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines() == archive["reference"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv"]


def test_the_dashboard_is_served_when_asked_or_in_a_terminal(archive, tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("bokeh")
    args = ["detect", *archive["files"][:2], "--bank", archive["bank"], "-f", "csv"]
    # stderr is not a terminal here: no dashboard by default, and a word on how to get one
    r = run("--verbose", *args, "--workers", "1")
    assert r.exit_code == 0, r.output
    assert "--dashboard serves Dask's dashboard" in r.stderr and "dashboard http" not in r.stderr
    r = run("--verbose", *args, "--workers", "1", "--dashboard")
    assert r.exit_code == 0, r.output
    line = r"Dask local cluster of 1 worker\(s\): 1 thread\(s\); dashboard http://\S+/status"
    assert re.search(line, r.stderr), r.stderr


def test_an_existing_scheduler_gives_identical_detections(archive, tmp_path):
    distributed = pytest.importorskip("distributed")
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "s.csv"
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster:
            r = run("detect", "--manifest", archive["manifest"], "--bank", archive["bank"],
                    "-f", "csv", "-o", out, "--scheduler", cluster.scheduler_address)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines() == archive["reference"]


def _records(journal: Path) -> set[int]:
    """Indices of the intact records of a journal (what a rerun may skip)."""
    done = set()
    for line in journal.read_bytes().splitlines(keepends=True)[1:]:
        if not line.endswith(b"\n") or int(line[:8], 16) != zlib.crc32(line[9:-1]):
            break
        done.add(json.loads(line[9:-1])["i"])
    return done


def _kill_when(cmd: list[str], journal: Path, n_records: int, cwd: Path) -> set[int]:
    """Start ``cmd``, SIGKILL it once its journal holds ``n_records`` records (0: as soon as the
    journal exists), return the records it left."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(_records(journal)) >= n_records:
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    return _records(journal)


@pytest.mark.parametrize("when", [0, 3, 14])
def test_a_killed_run_restarted_finishes_with_the_same_output(archive, tmp_path, when):
    """Killed at some point (SIGKILL: nothing is cleaned up), the same command again skips
    what the journal holds, searches only the rest, and writes what an uninterrupted run
    writes; no file is searched twice beyond those in flight at the kill."""
    out = tmp_path / "det.csv"
    journal = tmp_path / "det.csv.journal"
    cmd = [sys.executable, "-m", "kwsos.cli", "-v", "detect", "--manifest",
           str(archive["manifest"]), "--bank", str(archive["bank"]), "-f", "csv", "-o",
           str(out), "-j", "1"]  # fmt: skip
    done = _kill_when(cmd, journal, when, tmp_path)
    assert len(done) >= when and not out.exists()
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == archive["reference"]
    if done:
        assert f"{len(done)} of 24 file(s) were done by an earlier run" in r.stderr
    else:
        assert "done by an earlier run" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.csv"]


def test_a_journal_of_other_options_is_refused_then_restart(archive, tmp_path):
    out = tmp_path / "d.csv"
    files = archive["files"][:4]
    corrupt = tmp_path / "bad.wav"
    corrupt.write_bytes(b"not audio")
    r = run("detect", *files, corrupt, "--bank", archive["bank"], "-f", "csv", "-o", out)
    assert r.exit_code == 1  # the journal stays: one file failed
    r = run("detect", *files, corrupt, "--bank", archive["bank"], "-f", "csv", "-o", out,
            "--threshold", "0.2")  # fmt: skip
    assert r.exit_code == 2
    assert "is from another run: it was written with other settings (threshold differ)" in r.output
    assert "--restart" in r.output
    r = run("detect", *files[:3], corrupt, "--bank", archive["bank"], "-f", "csv", "-o", out)
    assert r.exit_code == 2 and "it was written for other files" in r.output
    r = run("detect", *files, corrupt, "--bank", archive["bank"], "-f", "csv", "-o", out,
            "--threshold", "0.2", "--restart")  # fmt: skip
    assert r.exit_code == 1 and "1 of 5 file(s) failed" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restart"], "--restart discards the journal beside --output; give --output"),
        (["--workers", "2", "--scheduler", "tcp://h:1"], "cannot be combined"),
        (["--scheduler", "h:1"], "'local' or a scheduler address"),
        (["--manifest", "missing.txt"], "manifest not found: missing.txt"),
        (["-f", "parquet"], "--format parquet needs --output FILE"),
        (["--worker-threads", "2"], "--worker-threads is for a Dask cluster"),
        (["--dashboard"], "--dashboard is for a local cluster (give --workers)"),
    ],
)
def test_option_errors_are_one_line(archive, tmp_path, args, message):
    r = run("detect", *archive["files"][:2], "--bank", archive["bank"], *args)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.output


def test_a_manifest_names_a_missing_file(archive, tmp_path):
    m = tmp_path / "m.txt"
    m.write_text(f"{archive['files'][0]}\n{tmp_path / 'gone.wav'}\n")
    r = run("detect", "--manifest", m, "--bank", archive["bank"], "-f", "csv")
    assert r.exit_code == 1
    assert f"failed: {tmp_path / 'gone.wav'}: audio file not found" in r.stderr
    first = [ln for ln in archive["reference"][1:] if ln.startswith("r00.wav,")]
    assert r.stdout.splitlines() == [HEADER, *first]
