"""data_prep.make_matched_shots: shots cut from validation sentences, on a hand-made dataset."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.make_matched_shots import choose_shots, derive, main
from kwsos.errors import KwsosError

ROOT = Path(__file__).resolve().parents[2]
# the KWS recipe's loader reads the derived dataset (recipes/kws_tts/local/experiment.py)
sys.path.insert(0, str(ROOT / "recipes" / "kws_tts" / "local"))
from experiment import load_dataset  # noqa: E402 - recipe module, found through the path above

SR = 16000


def _write(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _dataset(root: Path) -> Path:
    """Two keywords; validation: 4 sentences (voices a, b, a, c), test: 1 sentence.

    Every sentence is a ramp with its own offset, so a cut shot tells where it came from."""
    for d in ("train/kw", "validation", "test"):
        (root / d).mkdir(parents=True, exist_ok=True)
    sf.write(str(root / "train/kw/1.wav"), np.zeros(SR, np.float32), SR)
    _write(
        root / "train_manifest.csv",
        [["event_label", "file"], ["yes", "train/kw/1.wav"], ["no", "train/kw/1.wav"]],
    )
    voices, snrs = ["a", "b", "a", "c"], [10, 5, 20, 15]
    man = [["file", "scene_label", "snr_db", "rt60_s", "speed"]]
    for i, (v, s) in enumerate(zip(voices, snrs, strict=True)):
        wave = ((np.arange(2 * SR) + i * 100000) % 32768 / 32768).astype(np.float32) * 0.5
        sf.write(str(root / f"validation/v{i}.wav"), wave, SR, subtype="FLOAT")
        man.append([f"validation/v{i}.wav", v, s, 0.0, 1.0])
    _write(root / "validation_manifest.csv", man)
    _write(
        root / "validation_reference.csv",
        [
            ["filename", "onset", "offset", "event_label"],
            ["validation/v0.wav", 0.5, 0.8, "yes"],
            ["validation/v1.wav", 0.2, 0.4, "yes"],
            ["validation/v2.wav", 1.0, 1.5, "yes"],
            ["validation/v3.wav", 0.3, 0.6, "no"],
            ["validation/v2.wav", 0.1, 0.4, "no"],
        ],
    )
    sf.write(str(root / "test/t0.wav"), np.zeros(SR, np.float32), SR)
    _write(root / "test_manifest.csv", [["file"], ["test/t0.wav"]])
    _write(
        root / "test_reference.csv",
        [["filename", "onset", "offset", "event_label"], ["test/t0.wav", 0.1, 0.3, "yes"]],
    )
    return root


def _occ(file, voice, snr, rt60=0.0, speed=1.0):
    return {"file": file, "voice": voice, "snr_db": snr, "rt60_s": rt60, "speed": speed, "onset": 0}


def test_choose_shots_prefers_distinct_voices_then_clean_ones_and_one_per_file():
    occ = [
        _occ("f1", "a", 20),
        _occ("f2", "a", 19),
        _occ("f3", "b", 5),
        _occ("f4", "c", 10),
        _occ("f4", "c", 30),
        _occ("f5", "b", 5, rt60=0.3),
    ]
    got = [o["file"] for o in choose_shots(occ, 4)]
    # distinct voices first (c's cleanest is f4 at 30 dB, then a's f1, then b's f3 - no reverb),
    # then the cleanest left from a sentence not yet used (f2)
    assert got == ["f4", "f1", "f3", "f2"]
    assert len(choose_shots(occ, 10)) == 5  # f4 gives one shot only


def test_derive_cuts_the_shots_and_drops_their_sentences_from_validation(tmp_path):
    data = _dataset(tmp_path / "src")
    out = tmp_path / "matched"
    summary = derive(data, out, n_shots=2, margin_s=0.05)
    ds = load_dataset(out)
    assert sorted(ds.shots) == ["no", "yes"] and all(len(v) == 2 for v in ds.shots.values())
    # "yes": voices a (v2, 20 dB, cleaner than v0) and b (v1); the shot is v2's 0.95-1.55 s
    shot, sr = sf.read(str(out / "train/yes/1.wav"), dtype="float32")
    src, _ = sf.read(str(data / "validation/v2.wav"), dtype="float32")
    assert sr == SR
    np.testing.assert_allclose(shot, src[int(0.95 * SR) : int(1.55 * SR)], atol=1e-4)
    # sentences v1, v2 (yes) and v2, v3 (no) gave shots: only v0 is left for tuning
    assert [p.name for p in ds.files["validation"]] == ["v0.wav"]
    assert ds.scenes == {"validation": {"v0.wav": "a"}, "test": {}}  # the manifests' voices
    assert [(Path(e.filename).name, e.label) for e in ds.reference["validation"]] == [
        ("v0.wav", "yes")
    ]
    assert [p.name for p in ds.files["test"]] == ["t0.wav"] and ds.files["test"][0].is_file()
    assert len(ds.reference["test"]) == 1
    assert summary["validation_files_dropped"] == 3 and (out / "README.md").is_file()
    assert not (tmp_path / "matched.tmp").exists()


def test_too_few_occurrences_is_a_one_line_error(tmp_path, capsys):
    data = _dataset(tmp_path / "src")
    with pytest.raises(KwsosError, match="'no': 2 validation occurrences"):
        derive(data, tmp_path / "m", n_shots=3)
    assert main(["--data", str(data), "--out", str(tmp_path / "m"), "--shots", "3"]) == 1
    assert capsys.readouterr().err.startswith("error: keyword 'no'")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp").exists()
