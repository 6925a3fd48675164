#!/usr/bin/env bash
# DCASE2023 Task 2 (first-shot anomalous sound detection for machines, Diss. chapter 5) with
# kwsos asd: train -> score -> official submission files -> official evaluation.
#
#   stage 0: the synthetic development stand-in (data_prep.make_asd_synth), unless --dataset
#   stage 1: kwsos asd fit   for every system (conf/<system>.json)
#   stage 2: kwsos asd score -> $exp/<system>/submission/anomaly_score_<m>_section_00_test.csv
#                                                   and decision_result_<m>_section_00_test.csv
#   stage 3: kwsos asd evaluate -> $exp/<system>/result.{json,txt} (the official table)
#   stage 4: recipes/utils/asd_report.py -> $exp/results.md (all systems, threshold estimators)
#
# Usage: ./run.sh [--stage 0] [--stop_stage 4] [--systems twobranch_scadacos|all|a,b,...]
#                 [--dataset DIR]        (a real DCASE2023 folder as downloaded: dev_data/raw/...)
#                 [--ground_truth DIR]   (evaluation set: the official evaluator's ground truth)
#                 [--exp DIR] [--split final|dev] [--synth DIR] [--synth_opts "--clip-s 10 ..."]
#                 [--fit_opts "--device cuda --ensemble 3 ..."]
#
# Without --dataset the synthetic set's FINAL half (recordings disjoint from the dev half used
# to choose the systems) is built and used: see RESULTS.md for what it can and cannot show.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}
layout=dcase2023
readonly here root python layout
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
default_systems=twobranch_scadacos
readonly default_systems

. "$root/recipes/utils/asd_stages.sh"
