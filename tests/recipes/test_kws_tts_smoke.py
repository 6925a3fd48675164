"""Smoke run of recipes/kws_tts/run.sh (stages 1-2) on a tiny dataset in the KWS-DailyTalk
layout built from the bundled demo: 2 keywords x 3 shots, validation.flac for tuning,
long.flac for testing; HFCC, TACos and sliding window with 2 training steps; stage 2 analysis and stage 3 table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from kwsos.events import read_events

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "kws_tts"
DEMO = ROOT / "kwsos" / "data" / "demo"
KEYWORDS = ["banana", "weather"]


def tiny_dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    with open(root / "train_manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event_label", "shot", "file"])
        for kw in KEYWORDS:
            for i, shot in enumerate(sorted((DEMO / "shots" / kw).glob("*.wav"))[:3]):
                w.writerow([kw, i + 1, str(shot)])  # absolute paths are fine
    for split, name in (("validation", "validation"), ("test", "long")):
        (root / f"{split}_manifest.csv").write_text(f"file\n{DEMO / (name + '.flac')}\n")
        with open(root / f"{split}_reference.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "onset", "offset", "event_label"])
            for e in read_events(DEMO / f"{name}.csv"):
                if e.label in KEYWORDS:
                    w.writerow([e.filename, e.onset, e.offset, e.label])
    return root


@pytest.mark.filterwarnings("ignore")
def test_run_sh_smoke(tmp_path: Path):
    data, exp = tiny_dataset(tmp_path / "data"), tmp_path / "exp"
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable))}
    cmd = [
        str(RECIPE / "run.sh"),
        "--stage",
        "1",
        "--data",
        str(data),
        "--exp",
        str(exp),
        "--conf",
        str(RECIPE / "conf" / "smoke.json"),
        "--jobs",
        "1",
        "--threads",
        "1",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = {}
    for system in ("hfcc", "tacos", "sliding"):
        r = json.loads((exp / system / "result.json").read_text())
        results[system] = r
        assert r["n_keywords"] == 2 and r["n_shots"] == 6
        for split in ("validation", "test"):
            for kind in ("global", "per_keyword"):
                s = r[split][kind]
                assert 0 <= s["f1"] <= 100 and set(s["per_label_f1"]) <= set(KEYWORDS)
        # per-keyword thresholds never lose validation F1 against the global one
        assert r["validation"]["per_keyword"]["f1"] >= r["validation"]["global"]["f1"]
        assert set(r["keyword_thresholds"]) == set(KEYWORDS)
        assert r["realtime_factor"] > 0 and r["test_audio_s"] == pytest.approx(85, abs=3)
        analysis = json.loads((exp / system / "analysis.json").read_text())
        assert 0 <= analysis["auc"] <= 1 and analysis["n_target"] == r["test"]["global"]["n_ref"]
        for png in ("timeline.png", "keyword_f1.png", "separation.png"):
            assert (exp / system / png).read_bytes()[:4] == b"\x89PNG"
        assert (exp / system / "bank" / "bank.json").is_file()
        det = read_events(exp / system / "test_detections_global.csv")
        assert r["test"]["global"]["n_est"] == len(det)
    # learned systems really trained the requested 2 steps; HFCC really detects the keywords
    assert results["tacos"]["training"]["steps"] == 2
    assert results["hfcc"]["test"]["global"]["f1"] > 20
    table = (exp / "RESULTS.md").read_text()
    assert (
        table.count("| HFCC-DTW (`hfcc`)") == 2
        and "TACos + DTW (`tacos`) | yes | per keyword" in table
    )
    # a second run resumes: nothing to do
    res = subprocess.run(
        cmd[:3] + ["--stop_stage", "1"] + cmd[3:],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and res.stdout.count("done already") == 3


def test_run_systems_bad_dataset_is_one_error_line(tmp_path: Path):
    data = tiny_dataset(tmp_path / "data")
    (data / "test_manifest.csv").write_text("path\nx.wav\n")  # wrong column
    cmd = [
        os.sys.executable,
        str(RECIPE / "local" / "run_systems.py"),
        "--data",
        str(data),
        "--exp",
        str(tmp_path / "exp"),
        "--conf",
        str(RECIPE / "conf" / "smoke.json"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: {data / 'test_manifest.csv'}: missing column(s) file"
    ]
    assert not (tmp_path / "exp").exists()


def test_systems_from_conf_merges_learned_options(monkeypatch):
    """The recipe conf's training and learned_feature_options reach the learned systems (a
    system's own values win) and leave HFCC alone; extra systems are looked up by name."""
    monkeypatch.syspath_prepend(str(RECIPE / "local"))  # run_systems imports experiment lazily
    from run_systems import systems_from_conf

    conf = {
        "systems": ["hfcc", "tacos"],
        "training": {"train": {"max_steps": 7, "precision": "fp32"}},
        "learned_feature_options": {"precision": "fp32", "mode": "conv"},
        "extra_systems": {
            "t16": {
                "features": "tacos",
                "feature_options": {"precision": "bf16"},
                "training": {"train": {"precision": "bf16"}},
            }
        },
    }
    hfcc, tacos = systems_from_conf(conf)
    assert hfcc.feature_options == {} and hfcc.training == {}
    assert tacos.feature_options == {"precision": "fp32", "mode": "conv"}
    assert tacos.training["train"] == {"max_steps": 7, "precision": "fp32"}
    (t16,) = systems_from_conf(conf, "t16")
    assert t16.feature_options == {"precision": "bf16", "mode": "conv"}
    assert t16.training["train"] == {"max_steps": 7, "precision": "bf16"}
    # the shipped recipe pins float32 for every learned row of the table
    shipped = json.loads((RECIPE / "conf" / "kws_tts.json").read_text())
    for s in systems_from_conf(shipped):
        if s.features in ("tacos", "lkw", "sliding"):
            assert s.feature_options["precision"] == "fp32"
            assert s.training["train"]["precision"] == "fp32"
        elif s.features == "whisper-tacos":  # the head's own defaults, fp32 pinned
            assert s.training["train"] == {"max_minutes": None, "seed": 0, "precision": "fp32"}
            assert "precision" not in s.feature_options
        else:
            assert s.features in ("hfcc", "whisper") and s.training == {}
