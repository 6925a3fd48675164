"""Smoke run of recipes/alarm_osc/run.sh: a tiny benchmark (3 synthetic alarms, 2 unknown classes
from fake package audio, 4 clips each; no network, no apt), 1 setting, 1 seed, a tiny network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep import make_alarm_bench as mab

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "alarm_osc"
KNOWN = ["smoke_alarm_t3", "co_alarm_t4", "siren_wail"]
UNKNOWN = ["cough", "clapping"]


def fake_sources(root: Path) -> Path:
    """Short generated sounds where the unknown classes expect their Debian package files."""
    rng = np.random.default_rng(0)
    for name in UNKNOWN:
        for src in mab.CLASSES[name].sources:
            for rel in src.paths:
                path = root / src.package / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                n = int(0.5 * 22050)
                x = rng.standard_normal(n) * np.exp(-np.arange(n) / 2000)
                sf.write(path, 0.5 * x / np.abs(x).max(), 22050, format="WAV")
    return root


def test_run_sh_smoke(tmp_path: Path):
    sources = fake_sources(tmp_path / "sources")
    bench, exp = tmp_path / "bench", tmp_path / "exp"
    opts = (f"--classes {','.join(KNOWN + UNKNOWN)} --clips-per-class 4 --sources {sources} "
            "--no-download")  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(RECIPE / "run.sh"), "--bench", str(bench), "--bench_opts", opts,
           "--exp", str(exp), "--seeds", "0", "--settings", "1shot_middle",
           "--config", str(RECIPE / "conf" / "smoke.json")]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    runs = [json.loads(line) for line in (exp / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 1
    r = runs[0]
    assert (r["setting"], r["seed"], r["shots"], r["openness"]) == ("1shot_middle", 0, 1, "middle")
    assert r["n_train"] == 3 + 1 and 0.0 <= r["wa"] <= 1.0  # 3 alarms + 1 seen unknown class
    assert r["threshold"] == 0.65  # the paper's middle-openness threshold
    table = (exp / "table.md").read_text()
    assert "| middle | 1 | 1 |" in table and "arithmetic mean" in table
    # a second run resumes: nothing left to do
    res = subprocess.run(cmd + ["--stage", "1"], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "0 runs to do" in res.stderr
