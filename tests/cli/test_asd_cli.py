"""``kwsos asd fit / score / evaluate`` on a tiny DCASE2023-layout data set of tones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from asd_data import make_dcase2023
from typer.testing import CliRunner

from kwsos.cli import app

runner = CliRunner()

TINY = {
    "model": {"name": "two_branch", "dim": 24, "channels": [4, 8]},
    "training": {"epochs": 2, "batch_size": 8},
    "backend": {"name": "kmeans", "n_clusters": 4},
}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Training and embedding on one torch thread: with a 2-epoch network and 3 test clips per
    cell, the float reductions of another thread count move the official score by 10+ points."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWSOS_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("asd")
    make_dcase2023(root / "data")
    conf = root / "tiny.json"
    conf.write_text(json.dumps(TINY))
    return {"root": root, "data": root / "data", "conf": conf}


@pytest.fixture(scope="module")
def fitted(data) -> Path:
    model = data["root"] / "m.asd"
    res = run("asd", "fit", data["data"], "--model", model, "--config", data["conf"])
    assert res.exit_code == 0, res.output
    assert "ToyPump, my_fan" in res.output
    return model


def test_fit_score_evaluate(data, fitted, tmp_path):
    out = tmp_path / "sub"
    res = run("asd", "score", data["data"], "--model", fitted, "--output", out)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "anomaly_score_ToyPump_section_00_test.csv",
        "anomaly_score_my_fan_section_00_test.csv",
        "decision_result_ToyPump_section_00_test.csv",
        "decision_result_my_fan_section_00_test.csv",
    ]
    rows = (out / "anomaly_score_my_fan_section_00_test.csv").read_text().splitlines()
    assert len(rows) == 12 and rows[0].startswith("section_00_") and "," in rows[0]
    decisions = (out / "decision_result_my_fan_section_00_test.csv").read_text().splitlines()
    assert {r.rsplit(",", 1)[1] for r in decisions} <= {"0", "1"}
    res = run("asd", "evaluate", out, "--dataset", data["data"])
    assert res.exit_code == 0, res.output
    assert "official score" in res.output and "my_fan" in res.output
    res = run("asd", "evaluate", out, "--dataset", data["data"], "--format", "json")
    report = json.loads(res.output)
    # the tones with clicks and a whine are easy: the tiny network ranks them well above chance
    assert report["summary"]["official_score"] > 0.6


def test_one_machine(data, tmp_path):
    model = tmp_path / "fan.asd"
    res = run(
        "asd",
        "fit",
        data["data"],
        "--model",
        model,
        "--config",
        data["conf"],
        "--machine",
        "my_fan",
    )
    assert res.exit_code == 0, res.output
    res = run("asd", "score", data["data"], "--model", model, "--output", tmp_path / "s")
    assert "'ToyPump' is not in the model" in one_error_line(res)
    res = run(
        "asd", "score", data["data"], "--model", model, "--output", tmp_path / "s",
        "--machine", "my_fan",
    )  # fmt: skip
    assert res.exit_code == 0, res.output


def test_bad_inputs(data, fitted, tmp_path):
    # wrong layout: a folder of audio that is not a DCASE data set
    odd = tmp_path / "odd"
    odd.mkdir()
    sf.write(odd / "x.wav", np.ones(1600, np.float32) * 0.1, 16000)
    model = tmp_path / "new.asd"
    assert "odd" in one_error_line(run("asd", "fit", odd, "--model", model))
    assert not model.exists()
    assert "not found" in one_error_line(run("asd", "fit", tmp_path / "nope", "--model", model))
    # unknown machine
    line = one_error_line(
        run(
            "asd",
            "fit",
            data["data"],
            "--model",
            model,
            "--machine",
            "valve",
            "--config",
            data["conf"],
        )
    )
    assert "valve" in line and not model.exists()
    # no normal training clips: a copy without train folders
    no_train = tmp_path / "no_train"
    shutil.copytree(data["data"], no_train)
    for d in no_train.glob("dev_data/raw/*/train"):
        shutil.rmtree(d)
    assert "train" in one_error_line(run("asd", "fit", no_train, "--model", model))
    assert not model.exists()
    # a config with an unknown key
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"nam": "x"}}))
    assert "nam" in one_error_line(
        run("asd", "fit", data["data"], "--model", model, "--config", bad)
    )
    # missing model, damaged model
    line = one_error_line(
        run(
            "asd",
            "score",
            data["data"],
            "--model",
            tmp_path / "none.asd",
            "--output",
            tmp_path / "o",
        )
    )
    assert "model file not found" in line
    broken = tmp_path / "broken.asd"
    broken.write_bytes(b"garbage")
    line = one_error_line(
        run("asd", "score", data["data"], "--model", broken, "--output", tmp_path / "o")
    )
    assert "cannot read" in line
    # evaluate: no dataset, empty submission folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "--dataset" in one_error_line(run("asd", "evaluate", empty))
    assert "anomaly_score" in one_error_line(
        run("asd", "evaluate", empty, "--dataset", data["data"])
    )


def test_failed_fit_leaves_old_model(data, fitted, tmp_path):
    model = tmp_path / "keep.asd"
    shutil.copy(fitted, model)
    before = model.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"training": {"epochs": 0}}))
    one_error_line(run("asd", "fit", data["data"], "--model", model, "--config", bad))
    assert model.read_bytes() == before


def test_evaluate_eval_set_needs_ground_truth(tmp_path):
    from test_dcase import EVAL_2023, make_2023_eval

    from kwsos.dcase import read_dataset, write_submission

    root, gt = make_2023_eval(tmp_path)
    clips = read_dataset(root, split="test")
    assert all(c.label is None for c in clips)
    # a perfect ranking: anomalies score 1, normals 0
    truth = {f"section_00_{n:04d}.wav": lab for n, (lab, _) in enumerate(EVAL_2023)}
    scores = [float(truth[c.name] == "anomaly") for c in clips]
    write_submission(tmp_path / "sub", clips, scores, [int(s) for s in scores], layout="dcase2023")
    line = one_error_line(run("asd", "evaluate", tmp_path / "sub", "--dataset", root))
    assert "--ground-truth" in line
    res = run(
        "asd", "evaluate", tmp_path / "sub", "--dataset", root, "--ground-truth", gt,
        "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["summary"]["official_score"] == pytest.approx(1.0)


def _scores(folder: Path) -> dict[str, float]:
    out = {}
    for f in sorted(folder.glob("anomaly_score_*.csv")):
        for line in f.read_text().splitlines():
            name, score = line.rsplit(",", 1)
            out[f"{f.name}:{name}"] = float(score)  # sections of machines share clip names
    return out


def test_score_survives_a_corrupt_clip_and_resumes(data, fitted, tmp_path):
    """A clip that cannot be read is reported and the others are written; the journal beside
    the output keeps the scored clips, so the rerun after the fix scores only that clip."""
    ref = tmp_path / "ref"
    assert run("asd", "score", data["data"], "--model", fitted, "--output", ref).exit_code == 0
    copy = tmp_path / "data"
    shutil.copytree(data["data"], copy)
    bad = sorted((copy / "dev_data/raw/my_fan/test").glob("*.wav"))[4]
    good = bad.read_bytes()
    bad.write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "sub"
    res = run("asd", "score", copy, "--model", fitted, "--output", out)
    assert res.exit_code == 1
    assert f"failed: {bad}" in res.stderr and "1 of 24 file(s) failed" in res.stderr
    errors = (tmp_path / "sub.errors.csv").read_text().splitlines()
    assert len(errors) == 2 and errors[1].startswith(f"{bad},")
    expected = _scores(ref)
    partial = _scores(out)
    assert set(partial) == set(expected) - {f"anomaly_score_my_fan_section_00_test.csv:{bad.name}"}
    for name, s in partial.items():
        assert s == pytest.approx(expected[name], rel=1e-5, abs=1e-6)
    assert (tmp_path / "sub.journal").is_file()
    bad.write_bytes(good)
    res = run("-v", "asd", "score", copy, "--model", fitted, "--output", out)
    assert res.exit_code == 0, res.output
    assert "23 of 24 file(s) were done by an earlier run" in res.stderr
    assert _scores(out) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "ref", "sub"]


def test_score_on_a_local_cluster(data, fitted, tmp_path):
    pytest.importorskip("distributed")
    ref, out = tmp_path / "ref", tmp_path / "sub"
    assert run("asd", "score", data["data"], "--model", fitted, "--output", ref).exit_code == 0
    res = run("asd", "score", data["data"], "--model", fitted, "--output", out, "--workers", "2")
    assert res.exit_code == 0, res.output
    assert _scores(out) == pytest.approx(_scores(ref), rel=1e-5, abs=1e-6)
    for f in ref.glob("decision_result_*.csv"):
        assert (out / f.name).read_text() == f.read_text()
