"""The default features of a new bank (whisper-tacos) through the command line."""

import json
import sys

from conftest import needs_whisper_encoder
from typer.testing import CliRunner

from kwsos.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@needs_whisper_encoder
def test_new_bank_defaults_to_whisper_tacos_and_detects(audio_set, tmp_path):
    bank = tmp_path / "bank"
    (a, shots_a), (b, shots_b) = audio_set["shots"].items()
    r = run("enroll", a, *shots_a, "--bank", bank, "--no-train")
    assert r.exit_code == 0, r.output
    assert "whisper-tacos features" in r.stderr and "not trained yet" in r.stderr
    r = run("enroll", b, *shots_b, "--bank", bank, "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert "(2 keyword(s), whisper-tacos features" in r.stderr
    meta = json.loads((bank / "bank.json").read_text())
    feats = meta["config"]["features"]
    assert feats["name"] == "whisper_tacos" and "model_dir" not in feats
    assert feats["head"]["name"] == "WhisperHead"
    assert meta["config"]["training"]["n_centers"] == 4  # the head's defaults, not log-Mel's
    assert feats["training"]["keywords"] == {a: 3, b: 3}  # trained on both keywords
    assert (bank / "whisper_head.npz").is_file()
    r = run("detect", audio_set["recording"], "--bank", bank, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("filename,onset,offset,event_label,cost")


@needs_whisper_encoder
def test_whisper_model_option(audio_set, tmp_path):
    from kwsos.features.whisper import find_model

    bank = tmp_path / "bank"
    shots = audio_set["shots"]["alpha"]
    r = run("enroll", "alpha", *shots, "--bank", bank, "--whisper-model", tmp_path)
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "not a CTranslate2 Whisper model folder" in r.output
    assert not bank.exists()
    model = find_model()
    r = run(
        "enroll",
        "alpha",
        *shots,
        "--bank",
        bank,
        "--features",
        "whisper",
        "--whisper-model",
        model,
    )
    assert r.exit_code == 0, r.output
    feats = json.loads((bank / "bank.json").read_text())["config"]["features"]
    assert feats["name"] == "whisper" and feats["model_dir"] == str(model.resolve())
    hf = tmp_path / "hf"
    r = run("enroll", "alpha", *shots, "--bank", hf, "--features", "hfcc", "--whisper-model", model)
    assert r.exit_code == 2 and "applies to whisper features" in r.output


def test_missing_ctranslate2_is_one_line(audio_set, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import fails
    r = run(
        "enroll",
        "alpha",
        *audio_set["shots"]["alpha"],
        "--bank",
        tmp_path / "b",
        "--features",
        "whisper",
    )
    assert r.exit_code == 2
    assert r.output == "error: whisper features need ctranslate2: pip install 'kwsos[whisper]'\n"
    assert not (tmp_path / "b").exists()


def test_enroll_folder_enrolls_every_subfolder_once(audio_set, tmp_path):
    bank = tmp_path / "bank"
    shots_dir = audio_set["root"] / "shots"  # alpha/, beta/
    r = run("enroll-folder", shots_dir, "--bank", bank, "--features", "hfcc")
    assert r.exit_code == 0, r.output
    assert "enrolled 2 keyword(s)" in r.stderr and "hfcc features" in r.stderr
    meta = json.loads((bank / "bank.json").read_text())
    assert sorted(meta["keywords"]) == ["alpha", "beta"]
    assert all(len(k["shots"]) == 3 and len(k["templates"]) == 3 for k in meta["keywords"].values())
    empty = tmp_path / "empty"
    (empty / "kw").mkdir(parents=True)
    r = run("enroll-folder", empty, "--bank", tmp_path / "b2")
    assert (
        r.exit_code == 2
        and r.output == f"error: no keyword sub-folders with audio files in {empty}\n"
    )
    assert not (tmp_path / "b2").exists()
