"""The command line, driven through typer's CliRunner: happy paths and every bad input."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import plain_config
from typer.testing import CliRunner

from kwsos.cli import app
from kwsos.tasks.kws import KeywordSpotter

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bank(audio_set, tmp_path_factory):
    bank = tmp_path_factory.mktemp("cli") / "bank"
    KeywordSpotter(plain_config()).save(bank)  # an empty bank with the test features
    for name, shots in audio_set["shots"].items():
        r = run("enroll", name, *shots, "--bank", bank)
        assert r.exit_code == 0, r.output
        assert f"enrolled '{name}'" in r.output
    r = run(
        "tune",
        audio_set["recording"],
        "--reference",
        audio_set["reference"],
        "--bank",
        bank,
        "--plot",
        bank.parent / "tune.png",
    )
    assert r.exit_code == 0, r.output
    assert (bank.parent / "tune.png").stat().st_size > 1000
    return bank


def test_keywords_lists(bank):
    r = run("keywords", "--bank", bank)
    assert r.exit_code == 0
    assert "alpha" in r.output and "beta" in r.output


def test_detect_formats_and_evaluate(bank, audio_set, tmp_path):
    est = tmp_path / "est.csv"
    r = run("detect", audio_set["recording"], "--bank", bank, "--format", "csv", "--output", est)
    assert r.exit_code == 0, r.output
    lines = est.read_text().splitlines()
    assert lines[0] == "filename,onset,offset,event_label,cost"
    assert len(lines) - 1 == len(audio_set["events"])
    r = run("evaluate", "--reference", audio_set["reference"], "--estimate", est, "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.output)
    assert scores["f1"] == 1.0 and scores["per_label"]["alpha"]["n_ref"] == 3
    r = run("evaluate", "--reference", audio_set["reference"], "--estimate", est)
    assert "micro" in r.output and "100.00" in r.output
    r = run("detect", audio_set["recording"], "--bank", bank, "--format", "json")
    assert [e["event_label"] for e in json.loads(r.output)] == [
        lab for *_, lab in audio_set["events"]
    ]
    r = run("detect", audio_set["recording"], "--bank", bank, "-f", "audacity", "-k", "beta")
    assert "alpha" not in r.output
    onsets = [float(line.split("\t")[0]) for line in r.output.splitlines()]
    for on, _, lab in audio_set["events"]:
        if lab == "beta":  # (without alpha competing, an alpha may also match beta loosely)
            assert min(abs(o - on) for o in onsets) < 0.06
    r = run("detect", audio_set["recording"], "--bank", bank)
    assert "detection(s)" in r.output


def test_detect_many_files_streams_csv_in_input_order(bank, audio_set, tmp_path):
    x, sr = sf.read(str(audio_set["recording"]), dtype="float32")
    files = [audio_set["recording"]]
    for i, (a, b) in enumerate([(0.5, 1.0), (0.0, 0.5), (0.2, 0.7)]):
        files.append(tmp_path / f"piece{i}.wav")
        sf.write(str(files[-1]), x[int(a * len(x)) : int(b * len(x))], sr)
    one_by_one = ["filename,onset,offset,event_label,cost"]
    for f in files:
        r = run("detect", f, "--bank", bank, "-f", "csv")
        assert r.exit_code == 0, r.output
        one_by_one += r.stdout.splitlines()[1:]
    assert len(one_by_one) > len(files) + 1
    for jobs in ("1", "3"):
        r = run("detect", *files, "--bank", bank, "-f", "csv", "--jobs", jobs)
        assert r.exit_code == 0, r.output
        assert r.stdout.splitlines() == one_by_one
        out = tmp_path / f"det{jobs}.csv"
        r = run("detect", *files, "--bank", bank, "-f", "csv", "-o", out, "-j", jobs)
        assert r.exit_code == 0, r.output
        assert out.read_text().splitlines() == one_by_one
    r = run("detect", *files, "--bank", bank, "-f", "json")
    assert [e["filename"] for e in json.loads(r.output)] == [
        line.split(",")[0] for line in one_by_one[1:]
    ]
    import shutil

    copy = shutil.copytree(bank, tmp_path / "bank_copy")  # tune rewrites the bank's threshold
    r = run("tune", *files, "-r", audio_set["reference"], "--bank", copy, "-j", "2")
    assert r.exit_code == 0, r.output
    assert "100.00" in r.output


def test_a_corrupt_file_among_many_is_reported_and_the_others_searched(bank, audio_set, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage")
    rec, out = audio_set["recording"], tmp_path / "det.csv"
    r = run("detect", rec, "--bank", bank, "-f", "csv")
    one = r.stdout.splitlines()[1:]
    assert len(one) == len(audio_set["events"])
    r = run("detect", rec, rec, corrupt, rec, "--bank", bank, "-f", "csv", "-o", out, "-j", "2")
    assert r.exit_code == 1  # some files failed
    assert out.read_text().splitlines() == ["filename,onset,offset,event_label,cost", *one * 3]
    errors = (tmp_path / "det.csv.errors.csv").read_text().splitlines()
    assert errors[0] == "filename,error" and len(errors) == 2
    assert errors[1].startswith(f"{corrupt},") and "cannot read" in errors[1]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("failed:") and "corrupt.wav" in lines[0]
    assert lines[-1] == f"error: 1 of 4 file(s) failed; the list is in {out}.errors.csv"
    # the journal stays, so that a rerun searches the corrupt file only; once it is fixed, the
    # output is complete and the journal and the errors file are gone
    assert (tmp_path / "det.csv.journal").is_file()
    corrupt.write_bytes(rec.read_bytes())
    r = run("detect", rec, rec, corrupt, rec, "--bank", bank, "-f", "csv", "-o", out, "-j", "2")
    assert r.exit_code == 0, r.output
    fixed = [line.replace("rec.wav", "corrupt.wav", 1) for line in one]
    assert out.read_text().splitlines() == [
        "filename,onset,offset,event_label,cost",
        *one * 2,
        *fixed,
        *one,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.wav", "det.csv"]
    # one file given on the command line: a one-line error, exit 2, nothing written
    r = run("detect", tmp_path / "x.wav", "--bank", bank, "-f", "csv", "-o", out)
    assert r.exit_code == 2


def test_remove_keyword(bank, tmp_path):
    import shutil

    copy = tmp_path / "b2"
    shutil.copytree(bank, copy)
    r = run("keywords", "--bank", copy, "--remove", "beta")
    assert r.exit_code == 0 and "beta" not in r.stdout
    assert "beta" not in json.loads((copy / "bank.json").read_text())["keywords"]


def _bad_inputs(audio_set, tmp_path, bank):
    rec, ref, shot = audio_set["recording"], audio_set["reference"], audio_set["shots"]["alpha"][0]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(16000), 16000)
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), 0.5 * np.sin(np.arange(800) * 0.3), 16000)  # 0.05 s
    short_rec = tmp_path / "short_rec.wav"
    sf.write(str(short_rec), 0.5 * np.sin(np.arange(1600) * 0.3), 16000)  # 0.1 s < shortest shot
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("filename,onset,offset,event_label\nrec.wav,abc,1.0,alpha\n")
    empty_bank = tmp_path / "empty_bank"
    empty_bank.mkdir()
    no_keywords = tmp_path / "no_keywords"
    KeywordSpotter().save(no_keywords)
    return [
        (["enroll", "alpha", tmp_path / "missing.wav", "--bank", bank], "not found"),
        (["enroll", "alpha", corrupt, "--bank", bank], "cannot read"),
        (["enroll", "alpha", shot, empty, "--bank", bank], "empty"),
        (["enroll", "alpha", shot, silent, "--bank", bank], "silent"),
        (["enroll", "alpha", tiny, "--bank", bank], "too short"),
        (["enroll", "a,b", shot, "--bank", bank], "commas"),
        (["detect", tmp_path / "missing.wav", "--bank", bank], "not found"),
        (["detect", corrupt, "--bank", bank], "cannot read"),
        (["detect", silent, "--bank", bank], "silent"),
        (["detect", short_rec, "--bank", bank], "shorter than the shortest"),
        (["detect", rec, "--bank", bank, "-k", "gamma"], "unknown keyword 'gamma'"),
        (["detect", rec, "--bank", empty_bank], "no keyword bank"),
        (["detect", rec, "--bank", no_keywords], "no keywords enrolled"),
        (["tune", rec, "--reference", ref, "--bank", no_keywords], "no keywords enrolled"),
        (["detect", rec, "--bank", bank, "--output", tmp_path / "x.txt"], "--output needs"),
        (["keywords", "--bank", bank, "--remove", "gamma"], "unknown keyword"),
        (["tune", rec, "--reference", bad_csv, "--bank", bank], "must be numbers"),
        (["evaluate", "--reference", bad_csv, "--estimate", ref], "must be numbers"),
        (["evaluate", "--reference", tmp_path / "nope.csv", "--estimate", ref], "not found"),
    ]


def test_bad_input_one_line_exit_2_bank_unchanged(bank, audio_set, tmp_path):
    before = tree_digest(bank)
    for args, message in _bad_inputs(audio_set, tmp_path, bank):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, r.stderr)
        assert message in lines[0], (args, lines[0])
        assert "Traceback" not in r.output
        assert tree_digest(bank) == before, args
    assert not any(p.name.startswith(".") for p in bank.parent.iterdir())  # no temp leftovers


def test_enroll_refuses_non_bank_directory(audio_set, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"meow")
    r = run("enroll", "alpha", *audio_set["shots"]["alpha"], "--bank", folder)
    assert r.exit_code == 2 and "refusing" in r.stderr
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]


def test_help_teaches():
    r = run("--help")
    assert r.exit_code == 0 and "kwsos enroll" in r.output
    for cmd in ("enroll", "train", "detect", "tune", "evaluate", "keywords", "demo"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "Usage" in r.output


def test_enroll_switches_templates_and_features(bank, audio_set, tmp_path):
    import shutil

    copy = tmp_path / "b3"
    shutil.copytree(bank, copy)
    r = run(
        "enroll",
        "alpha",
        audio_set["shots"]["alpha"][0],
        "--bank",
        copy,
        "--templates",
        "dba",
        "--features",
        "mfcc",
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((copy / "bank.json").read_text())
    assert meta["config"]["backend"]["templates"] == "dba"
    assert meta["config"]["features"]["name"] == "mfcc"
    assert len(meta["keywords"]["alpha"]["shots"]) == 4
    assert all(len(k["templates"]) == 1 for k in meta["keywords"].values())
    assert "mfcc features" in r.stderr


def test_tacos_enroll_no_train_then_train(audio_set, tmp_path):
    """TACos features: --no-train stores shots only, detect refuses a stale network,
    kwsos train trains once and reports the time."""
    bank = tmp_path / "tacos"
    for name, shots in audio_set["shots"].items():
        r = run("enroll", name, *shots, "--bank", bank, "--no-train", "--features", "tacos")
        assert r.exit_code == 0, r.output
        assert "not trained yet" in r.stderr
    r = run("detect", audio_set["recording"], "--bank", bank)
    assert r.exit_code == 2 and "kwsos train --bank" in r.stderr
    r = run("train", "--bank", bank, "--epochs", "1", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "trained the tacos embedding network on 2 keyword(s)" in r.stderr
    meta = json.loads((bank / "bank.json").read_text())
    assert meta["config"]["training"]["train"]["epochs"] == 1
    assert meta["config"]["features"]["training"]["keywords"] == {"alpha": 3, "beta": 3}
    assert (bank / "model.pt").is_file()
    r = run("detect", audio_set["recording"], "--bank", bank, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("filename,onset,offset,event_label,cost")

    # fusion with HFCC: the weight with the best validation F1 is stored with its threshold
    def tune_fused(*weights):
        flags = [a for w in weights for a in ("--hfcc-weight", w)]
        return run(
            "tune", audio_set["recording"], "-r", audio_set["reference"], "--bank", bank, *flags
        )

    r = tune_fused("0", "1")
    assert r.exit_code == 0, r.output
    assert "validation F1 per HFCC weight" in r.stdout and "chosen" in r.stdout
    meta = json.loads((bank / "bank.json").read_text())
    assert meta["config"]["features"]["hfcc_weight"] in (0.0, 1.0)
    r = tune_fused("1.5")
    assert (
        r.exit_code == 2
        and r.output == "error: --hfcc-weight must be a number in [0, 1], got 1.5\n"
    )


def test_train_rejects_hand_crafted_features_and_bad_device(bank, audio_set, tmp_path):
    r = run("train", "--bank", bank)
    assert r.exit_code == 2 and "not trained" in r.stderr
    b = tmp_path / "t"
    r = run(
        "enroll",
        "alpha",
        *audio_set["shots"]["alpha"],
        "--bank",
        b,
        "--features",
        "tacos",
        "--device",
        "cuda:7",
        "--epochs",
        "1",
    )
    assert r.exit_code == 2
    assert not b.exists()


def test_tune_per_keyword_stores_and_lists_thresholds(bank, audio_set, tmp_path):
    import shutil

    copy = tmp_path / "b3"
    shutil.copytree(bank, copy)
    rec, ref = audio_set["recording"], audio_set["reference"]
    r = run("tune", rec, "--reference", ref, "--bank", copy, "--per-keyword")
    assert r.exit_code == 0, r.output
    assert "per-keyword thresholds" in r.output and "global and per-keyword" in r.output
    stored = json.loads((copy / "bank.json").read_text())["config"]["decision"][
        "keyword_thresholds"
    ]
    assert set(stored) == {"alpha", "beta"}
    r = run("keywords", "--bank", copy)
    assert f"{stored['alpha']:.4f}" in r.output
    # a plain (global) tune clears them again
    r = run("tune", rec, "--reference", ref, "--bank", copy)
    assert (
        json.loads((copy / "bank.json").read_text())["config"]["decision"]["keyword_thresholds"]
        == {}
    )
