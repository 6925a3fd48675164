"""``kwsos osc fit`` / ``kwsos osc classify`` with typer's CliRunner on generated tone alarms."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from osc_alarms import SR, TINY, alarm
from typer.testing import CliRunner

from kwsos.cli import app
from kwsos.tasks.openset import OpenSetClassifier

runner = CliRunner()


@pytest.fixture(autouse=True)
def tiny_defaults(monkeypatch):
    """The CLI builds ``OpenSetClassifier(**options)``: give it the tiny test network."""
    original = OpenSetClassifier.__init__

    def init(self, config=None, **options):
        from kwsos.tasks.openset import OpenSetConfig

        original(self, config or OpenSetConfig.from_flat({**TINY, "epochs": 40}), **options)

    monkeypatch.setattr(OpenSetClassifier, "__init__", init)


def write_clips(folder: Path, kind: str, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"{kind}_{i}.wav"
        sf.write(p, alarm(kind, rng), SR)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("osc")
    for i, kind in enumerate(("fast_beeps", "slow_beeps", "warble")):
        write_clips(root / "shots" / kind, kind, 2, i)
    write_clips(root / "unknown" / "noise", "noise", 2, 9)
    tests = write_clips(root / "tests", "slow_beeps", 2, 30) + write_clips(
        root / "tests", "warble", 2, 31
    )
    return {"root": root, "shots": root / "shots", "unknown": root / "unknown", "tests": tests}


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_fit_and_classify(data: dict, tmp_path: Path):
    model = tmp_path / "alarms.osc"
    r = run("osc", "fit", data["shots"], "--model", model, "--seed", "1", "--threshold", "0.3",
            "--unknown", data["unknown"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert model.is_file() and "wrote" in r.output
    clf = OpenSetClassifier.load(model)
    assert clf.classes_ == ["fast_beeps", "slow_beeps", "warble"]
    assert clf.unknown_classes_ == ["noise"] and clf.threshold_ == pytest.approx(0.3)

    r = run("osc", "classify", *data["tests"], "--model", model, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["label"] for row in rows] == ["slow_beeps"] * 2 + ["warble"] * 2
    assert set(rows[0]) == {"filename", "label", "top_class", "score"}

    r = run("osc", "classify", data["root"] / "tests", "--model", model, "--format", "json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert len(res) == 4 and set(res[0]["similarities"]) == set(clf.classes_)

    r = run("osc", "classify", data["tests"][0], "--model", model, "--threshold", "1.0")
    assert r.exit_code == 0 and "unknown" in r.stdout  # table output; nothing passes 1.0

    out = tmp_path / "res.csv"
    r = run("osc", "classify", *data["tests"], "-m", model, "-f", "csv", "-o", out)
    assert r.exit_code == 0 and out.read_text().startswith("filename,label")


def one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "Traceback" not in r.output
    return lines[0]


def test_user_errors(data: dict, tmp_path: Path):
    model = tmp_path / "m.osc"
    empty = tmp_path / "shots_empty"
    (empty / "doorbell").mkdir(parents=True)
    write_clips(empty / "smoke", "fast_beeps", 1, 0)
    assert "doorbell" in one_error_line(run("osc", "fit", empty, "--model", model))

    single = tmp_path / "single"
    write_clips(single / "smoke", "fast_beeps", 2, 0)
    assert "only one class" in one_error_line(run("osc", "fit", single, "--model", model))

    assert "not found" in one_error_line(run("osc", "fit", tmp_path / "nope", "--model", model))
    flat = tmp_path / "flat"
    write_clips(flat, "warble", 1, 0)
    assert "no class folders" in one_error_line(run("osc", "fit", flat, "--model", model))

    broken = tmp_path / "broken"
    write_clips(broken / "a", "warble", 1, 0)
    (broken / "b").mkdir()
    (broken / "b" / "x.wav").write_bytes(b"RIFF garbage")
    assert "x.wav" in one_error_line(run("osc", "fit", broken, "--model", model))

    line = one_error_line(run("osc", "classify", data["tests"][0], "--model", tmp_path / "no.osc"))
    assert "model file not found" in line

    good = tmp_path / "good.osc"
    assert run("osc", "fit", data["shots"], "--model", good, "--epochs", "2").exit_code == 0
    bad_clip = tmp_path / "bad.wav"
    bad_clip.write_bytes(b"not a wav")
    assert "bad.wav" in one_error_line(run("osc", "classify", bad_clip, "--model", good))
    assert "not found" in one_error_line(run("osc", "classify", tmp_path / "x.wav", "-m", good))
    line = one_error_line(
        run("osc", "classify", data["tests"][0], "-m", good, "-o", tmp_path / "o")
    )
    assert "--format" in line
    assert "open-set model" in one_error_line(
        run("osc", "classify", data["tests"][0], "-m", bad_clip)
    )
    line = one_error_line(
        run(
            "osc",
            "fit",
            data["shots"],
            "-m",
            model,
            "--threshold",
            "0.5",
            "--estimate-threshold",
            "sd",
        )  # fmt: skip
    )
    assert "either" in line
    line = one_error_line(
        run("osc", "fit", data["shots"], "-m", model, "--estimate-threshold", "nonsense")
    )
    assert "nonsense" in line
    line = one_error_line(
        run("osc", "fit", data["shots"], "-m", model, "--pretrained", tmp_path / "none.pt")
    )
    assert "--pretrained" in line and "not found" in line
    line = one_error_line(
        run("osc", "fit", data["shots"], "-m", model, "--pretrained", "none", "--epochs", "0")
    )
    assert "needs a pretrained" in line


def test_fit_pretrained_or_from_scratch(data: dict, tmp_path: Path):
    """The default starts from the shipped real-recording network and keeps it; 'synthetic'
    (alias 'bundled') is the other shipped one; --pretrained none starts from scratch."""
    from kwsos.embeddings.clip import BUNDLED_PRETRAINED, REAL_PRETRAINED, load_pretrained
    from kwsos.tasks.openset import PRETRAINED_SYSTEM

    for name, path in [("synthetic", BUNDLED_PRETRAINED), ("real", REAL_PRETRAINED)]:
        model = tmp_path / f"{name}.osc"
        extra = [] if name == "real" else ["--pretrained", name]
        r = run("osc", "fit", data["shots"], "--model", model, "--epochs", "0", *extra)
        assert r.exit_code == 0, r.output
        clf = OpenSetClassifier.load(model)
        assert clf.config.model.init == name
        assert clf.threshold_ == PRETRAINED_SYSTEM["threshold"] == 0.47
        assert len(clf.models_) == 1  # --epochs 0: the shipped network alone, unchanged
        ref = load_pretrained(path)
        for a, b in zip(ref.parameters(), clf.models_[0].parameters(), strict=True):
            assert a.equal(b)
    assert load_pretrained("bundled").state_dict().keys() == ref.state_dict().keys()
    bundled = tmp_path / "synthetic.osc"
    # 5 references per shot: the shot and the 4 speeds of PRETRAINED_SYSTEM
    assert len(clf.shot_classes_) == 5 * 6
    r = run("osc", "classify", *data["tests"], "--model", bundled, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["top_class"] for row in rows] == ["slow_beeps"] * 2 + ["warble"] * 2

    scratch = tmp_path / "scratch.osc"
    r = run("osc", "fit", data["shots"], "-m", scratch, "--pretrained", "none", "--epochs", "2")
    assert r.exit_code == 0, r.output
    clf = OpenSetClassifier.load(scratch)
    assert clf.config.model.init is None and len(clf.models_) == 1 and clf.threshold_ == 0.65


def test_fit_with_two_pretrained_networks(data: dict, tmp_path: Path):
    """--pretrained twice: both networks are members; mixing with 'none', naming one twice or
    networks trained on different features is one error line."""
    import torch

    from kwsos.embeddings.clip import (
        ClipFrontendConfig,
        load_pretrained,
        pretrained_frontend,
        save_pretrained,
    )

    net = load_pretrained("bundled")
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.9)
    other = save_pretrained(net, tmp_path / "other.pt", frontend=pretrained_frontend("bundled"))
    model = tmp_path / "two.osc"
    r = run("osc", "fit", data["shots"], "-m", model, "--epochs", "0",
            "--pretrained", "bundled", "--pretrained", other)  # fmt: skip
    assert r.exit_code == 0, r.output
    clf = OpenSetClassifier.load(model)
    assert clf.config.model.inits == ("bundled", str(other)) and len(clf.models_) == 2
    for a, b in zip(net.parameters(), clf.models_[1].parameters(), strict=True):
        assert a.equal(b)
    r = run("osc", "classify", *data["tests"], "--model", model, "--format", "csv")
    assert r.exit_code == 0, r.output

    for args, words in (
        (["--pretrained", "none", "--pretrained", "bundled"], "cannot be combined"),
        (["--pretrained", "bundled", "--pretrained", "bundled"], "twice"),
    ):
        line = one_error_line(run("osc", "fit", data["shots"], "-m", model, *args))
        assert words in line
    wide = ClipFrontendConfig.from_dict({**pretrained_frontend("bundled").to_dict(), "n_mels": 32})
    odd = save_pretrained(net, tmp_path / "odd.pt", frontend=wide)
    line = one_error_line(
        run(
            "osc", "fit", data["shots"], "-m", model, "--pretrained", "bundled", "--pretrained", odd
        )  # fmt: skip
    )
    assert "different features" in line


def test_loose_unknown_files_are_one_class_each(data: dict, tmp_path: Path):
    unknown = tmp_path / "unknown"
    write_clips(unknown / "noise", "noise", 2, 19)
    write_clips(unknown, "warble", 2, 20)  # two loose files: two kinds, not one pooled class
    model = tmp_path / "m.osc"
    r = run("osc", "fit", data["shots"], "--model", model, "--epochs", "2", "--threshold", "0.3",
            "--unknown", unknown, "--pretrained", "none")  # fmt: skip
    assert r.exit_code == 0, r.output
    clf = OpenSetClassifier.load(model)
    assert clf.unknown_classes_ == ["noise", "warble_0 (unknown)", "warble_1 (unknown)"]


def test_classify_many_files_as_one_at_a_time(data: dict, tmp_path: Path, monkeypatch):
    """One classify of many files (batched, read ahead by threads) prints what one classify per
    file prints."""
    import kwsos.embeddings.clip as clip_module

    monkeypatch.setattr(clip_module, "_EMBED_BATCH", 3)  # 7 clips: batches of 3, 3 and 1
    model = tmp_path / "alarms.osc"
    assert run("osc", "fit", data["shots"], "--model", model, "--seed", "1").exit_code == 0
    files = data["tests"] + write_clips(tmp_path / "more", "fast_beeps", 3, 40)
    r = run("osc", "classify", *files, "--model", model, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["filename"] for row in rows] == [str(f) for f in files]
    for f, row in zip(files, rows, strict=True):
        r = run("osc", "classify", f, "--model", model, "--format", "csv")
        (one,) = csv.DictReader(io.StringIO(r.stdout))
        assert (one["label"], one["top_class"]) == (row["label"], row["top_class"])
        assert float(one["score"]) == pytest.approx(float(row["score"]), abs=1e-5)


def test_classify_an_archive_with_a_corrupt_clip_resumes_and_runs_on_a_cluster(
    data: dict, tmp_path: Path
):
    model = tmp_path / "alarms.osc"
    assert run("osc", "fit", data["shots"], "--model", model, "--seed", "1").exit_code == 0
    files = data["tests"] + write_clips(tmp_path / "more", "fast_beeps", 3, 40)
    r = run("osc", "classify", *files, "--model", model, "--format", "csv")
    assert r.exit_code == 0, r.output
    reference = r.stdout.splitlines()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    manifest = tmp_path / "clips.txt"
    manifest.write_text("".join(f"{f}\n" for f in [*files[:3], bad, *files[3:]]))
    out = tmp_path / "res.csv"
    r = run("osc", "classify", "--manifest", manifest, "-m", model, "-f", "csv", "-o", out)
    assert r.exit_code == 1
    assert f"failed: {bad}: cannot read audio file" in r.stderr
    assert out.read_text().splitlines() == reference
    assert (tmp_path / "res.csv.errors.csv").read_text().startswith(f"filename,error\n{bad},")
    bad.write_bytes(files[0].read_bytes())
    r = run("-v", "osc", "classify", "--manifest", manifest, "-m", model, "-f", "csv", "-o", out)
    assert r.exit_code == 0, r.output
    assert "7 of 8 file(s) were done by an earlier run" in r.stderr
    rows = out.read_text().splitlines()
    assert rows[:4] + rows[5:] == reference and rows[4].startswith(f"{bad},")
    assert not (tmp_path / "res.csv.journal").exists()
    assert not (tmp_path / "res.csv.errors.csv").exists()

    pytest.importorskip("distributed")
    r = run("osc", "classify", *files, "-m", model, "-f", "csv", "--workers", "2")
    assert r.exit_code == 0, r.output
    for got, want in zip(r.stdout.splitlines()[1:], reference[1:], strict=True):
        g, w = got.rsplit(",", 1), want.rsplit(",", 1)
        assert g[0] == w[0] and float(g[1]) == pytest.approx(float(w[1]), abs=1e-5)
