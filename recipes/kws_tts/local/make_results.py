"""Stage 2 of the KWS recipes: collect ``<exp>/<system>/result.json`` into a Table-31 RESULTS.md.

python local/make_results.py --exp exp/kws_tts --conf conf/kws_tts.json --output exp/kws_tts/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from experiment import results_markdown, scene_markdown
from run_systems import systems_from_conf

from kwsos.io import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--exp", type=Path, required=True)
    ap.add_argument("--conf", type=Path, required=True)
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--command", default="", help="the command line to record")
    args = ap.parse_args()
    conf = json.loads(args.conf.read_text())
    results, missing = [], []
    for s in systems_from_conf(conf):
        path = args.exp / s.name / "result.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
            if (args.exp / s.name / "analysis.json").is_file():
                results[-1]["analysis"] = json.loads(
                    (args.exp / s.name / "analysis.json").read_text()
                )
        else:
            missing.append(s.name)
    if not results:
        raise SystemExit(f"no result.json under {args.exp}")
    first = results[0]
    rel = os.path.relpath(args.exp, args.output.parent)
    lines = [
        f"# Keyword spotting: Diss. Table 31 systems on `{first['data']}`",
        "",
        f"Command: `{args.command}`" if args.command else "",
        f"Machine: {first['machine']}; kwsos {first['kwsos']}; torch threads per job "
        f"{first.get('torch_threads', '?')}; load at start of each system: "
        + ", ".join(f"{r['system']} {r['load_start']}" for r in results),
        "",
        "Thresholds are tuned on the validation split only (global: one threshold; per keyword: "
        "coordinate ascent from the global one); test is scored once per system. Event-based "
        "micro F1 / precision / recall in % (sed_eval, 0.2 s onset collar, offset collar "
        "max(0.2 s, 50 %)). Enroll = loading the shots + training + template extraction; "
        "detect = real-time factor of the test split with the global threshold.",
        "",
        results_markdown(results),
    ]
    if missing:
        lines.append(f"Not run: {', '.join(missing)}\n")
    lines.append(
        "Cost AUC: probability that a keyword occurrence matches its keyword better than "
        "an impostor local minimum of the cost curve does (test split, threshold-free; "
        "`recipes/kws_tts/local/experiment.py`, `cost_separation`).\n"
    )
    per_scene = scene_markdown(results)
    if per_scene:
        lines.append(
            "Test F1 (%) per voice with the global threshold (`analysis.json`, "
            "`per_scene`; recall and precision are there too):\n"
        )
        lines.append(per_scene)
    lines.append(
        "Per system: `timeline.png` (match cost of every keyword over one test file, "
        "reference and detections), `keyword_f1.png` (test F1 per keyword) and "
        "`separation.png` (cost histograms of occurrences vs impostors):\n"
    )
    for r in results:
        lines.append(
            f"- `{r['system']}`: [timeline]({rel}/{r['system']}/timeline.png), "
            f"[per-keyword F1]({rel}/{r['system']}/keyword_f1.png), "
            f"[separation]({rel}/{r['system']}/separation.png) (file {r['plot_file']})"
        )
    write_text_atomic(args.output, "\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
