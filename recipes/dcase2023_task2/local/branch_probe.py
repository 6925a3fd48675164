"""Which branch of the (untrained) two-branch network carries the anomalies of a data set?

    PYTHONPATH=. python recipes/dcase2023_task2/local/branch_probe.py data/asd_synth/dcase2023_dev

A randomly initialised two-branch network (small variant, batch-norm statistics from one pass
over the training clips) embeds every clip; k-means + target samples (Diss. 5.3.1) scores the
STFT-branch embedding, the DFT-branch embedding and both, per section. A probe of what the
inputs make easy or hard before any training (RESULTS.md, "Development").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from kwsos.audio import audio_info
from kwsos.backends import KMeansScorer
from kwsos.dcase import detect_layout, evaluate, read_dataset
from kwsos.models.asd import TwoBranchNet
from kwsos.tasks.anomaly import AnomalyConfig, load_waves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    layout = detect_layout(args.dataset)
    train = read_dataset(args.dataset, split="train")
    test = read_dataset(args.dataset, split="test")
    fe = AnomalyConfig().frontend
    n = int(round(max(audio_info(c.path).duration_s for c in train) * fe.sample_rate))
    w_train, w_test = load_waves(train, fe, n), load_waves(test, fe, n)
    net = TwoBranchNet(n, channels=(8, 16, 32, 64)).train()
    with torch.no_grad():  # batch-norm running statistics of the training clips
        for i in range(0, len(w_train), 64):
            net(torch.from_numpy(w_train[i : i + 64]))
    net.eval()

    def embed(w: np.ndarray) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = [[], []]
        with torch.inference_mode():
            for i in range(0, len(w), 64):
                branches = net.embed_branches(*net.branch_inputs(torch.from_numpy(w[i : i + 64])))
                for k, e in enumerate(branches):
                    parts[k].append(e.numpy())
        return [np.concatenate(p) for p in parts]

    e_train, e_test = embed(w_train), embed(w_test)
    g_train = np.array([f"{c.machine}/{c.section}" for c in train])
    g_test = np.array([f"{c.machine}/{c.section}" for c in test])
    d_train = np.array([c.domain for c in train])
    variants = {
        "STFT branch": (e_train[0], e_test[0]),
        "DFT branch": (e_train[1], e_test[1]),
        "both": (np.hstack(e_train), np.hstack(e_test)),
    }
    for name, (a, b) in variants.items():
        s = np.zeros(len(test))
        for g in sorted(set(g_train)):
            k = KMeansScorer(16).fit(a[g_train == g], d_train[g_train == g])
            s[g_test == g] = -k.score_samples(b[g_test == g])
        r = evaluate(test, s, None, layout=layout).summary
        print(
            f"{name}: score {r['official_score']:.3f} AUC-s {r['hmean_auc_source']:.3f} "
            f"AUC-t {r['hmean_auc_target']:.3f} pAUC {r['hmean_pauc']:.3f}"
        )


if __name__ == "__main__":
    main()
