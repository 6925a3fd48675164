"""Stage 2 of the KWS recipes: cost separation of each finished system on the test split
(local/experiment.py analyse_system -> <exp>/<system>/separation.png, analysis.json): how far
the match costs of keyword occurrences and of everything else overlap, threshold-free (AUC).

    python local/analyse.py --data data/kws_tts --exp exp/kws_tts --conf conf/kws_tts.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiment import analyse_system, load_dataset
from run_systems import systems_from_conf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--conf", type=Path, required=True)
    ap.add_argument("--systems", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    conf = json.loads(args.conf.read_text())
    data = load_dataset(args.data)
    for s in systems_from_conf(conf, args.systems):
        out = args.exp / s.name
        if not (out / "result.json").is_file():
            print(f"  [{s.name}] not run yet, skipped")
            continue
        if (out / "analysis.json").is_file() and not args.force:
            print(f"  [{s.name}] analysed already")
            continue
        res = analyse_system(data, out)
        print(
            f"  [{s.name}] test cost separation AUC {100 * res['auc']:.1f} %, "
            f"{100 * res['target_below_threshold']:.0f} % of occurrences below the threshold, "
            f"{res['impostors_below_threshold']} impostor minima below it"
        )


if __name__ == "__main__":
    main()
