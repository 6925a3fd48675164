"""Smoke run of recipes/dcase2023_task2/run.sh on a tiny DCASE2023-layout set of tones: every
stage (fit, score, evaluate, report) with the tiny smoke configuration, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from asd_data import make_dcase2023

ROOT = Path(__file__).resolve().parents[2]


def test_dcase2023_run_sh_smoke(tmp_path: Path):
    data = make_dcase2023(tmp_path / "data")
    exp = tmp_path / "exp"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "recipes" / "dcase2023_task2" / "run.sh"), "--dataset", str(data),
           "--exp", str(exp), "--systems", "smoke,logmel_stats_knn"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    sub = exp / "smoke" / "submission"
    assert (sub / "anomaly_score_ToyPump_section_00_test.csv").is_file()
    assert (sub / "decision_result_my_fan_section_00_test.csv").is_file()
    result = json.loads((exp / "smoke" / "result.json").read_text())
    assert 0.0 <= result["summary"]["official_score"] <= 1.0
    table = (exp / "results.md").read_text()
    assert "| smoke |" in table and "| logmel_stats_knn |" in table
    assert "| gamma |" in table and "F1-EV" in table


def test_unknown_system_is_one_line(tmp_path: Path):
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", str(ROOT / "recipes" / "dcase2020_task2" / "run.sh"), "--dataset",
           str(tmp_path), "--exp", str(tmp_path / "exp"), "--systems", "nope"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "no system 'nope'" in res.stderr
