"""Smoke run of recipes/kws_pretrain stage 1 (pretrain the whisper-tacos head) on a tiny
corpus in the make_kws_words layout, built from the synthetic words of conftest (no TTS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import DISTRACTOR, SR, WORDS, needs_whisper_encoder, syllable, write

ROOT = Path(__file__).resolve().parents[2]


@needs_whisper_encoder
def test_pretrain_stage_writes_a_validated_head(tmp_path: Path):
    rng = np.random.default_rng(0)
    # 8 "words": the conftest syllable patterns, shuffled and re-pitched
    base = [*WORDS.values(), DISTRACTOR]
    vocab = {
        f"w{i}": [(d, f0 * (1 + 0.1 * i), fm) for d, f0, fm in base[i % 3][:: 1 if i % 2 else -1]]
        for i in range(8)
    }
    rows = ["file,word,onset,offset,voice,split,timing"]
    for split, n_utt in (("train", 6), ("val", 2)):
        for u in range(n_utt):
            parts, t = [np.zeros(int(0.2 * SR), np.float32)], 0.2
            for w in rng.permutation(list(vocab))[:4]:
                x = np.concatenate([syllable(*s, rng) for s in vocab[w]]).astype(np.float32)
                rows.append(
                    f"audio/{split}/{u}.wav,{w},{t:.3f},{t + len(x) / SR:.3f},v,{split},engine"
                )
                parts += [x, np.zeros(int(0.1 * SR), np.float32)]
                t += len(x) / SR + 0.1
            (tmp_path / "data" / "audio" / split).mkdir(parents=True, exist_ok=True)
            write(tmp_path / "data" / "audio" / split / f"{u}.wav", 0.3 * np.concatenate(parts))
    (tmp_path / "data" / "words.csv").write_text("\n".join(rows) + "\n")
    exp = tmp_path / "exp"
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", str(ROOT / "recipes" / "kws_pretrain" / "run.sh"), "--stage", "1",
           "--stop_stage", "1", "--data", str(tmp_path / "data"), "--exp", str(exp),
           "--steps", "4", "--threads", "1"]  # fmt: skip
    env["KWSOS_PRETRAIN_OPTS"] = "--eval-every 2 --held-out-words 3 --batch 8"
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    meta = json.loads((exp / "whisper_head.json").read_text())
    assert meta["arch"]["name"] == "WhisperHead" and len(meta["held_out_words"]) == 3
    assert [h["step"] for h in meta["history"]] == [0, 2, 4]
    assert 0.0 <= meta["best_val_auc"] <= 1.0 and meta["best_step"] in (2, 4)
    import torch

    from kwsos.models.whisper_head import WhisperHead

    head = WhisperHead(**{k: v for k, v in meta["arch"].items() if k != "name"})
    head.load_state_dict(torch.load(exp / "whisper_head.pt", weights_only=True))
