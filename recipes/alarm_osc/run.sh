#!/usr/bin/env bash
# Few-shot open-set alarm classification (Diss. 6.2, Table 29) on the local alarm benchmark.
#
#   stage 0: build the benchmark (data_prep.make_alarm_bench) and its folds
#            (data_prep.prepare_alarm_osc); both return at once when already done
#   stage 1: train and score kwsos.tasks.openset.OpenSetClassifier for every setting x seed
#            (local/run_settings.py; resumes: runs already in $exp/runs.jsonl are skipped)
#   stage 2: the results table (local/make_table.py -> $exp/table.md)
#
# Usage: ./run.sh [--stage 0] [--stop_stage 2] [--bench DIR] [--exp DIR] [--seeds 0,1,2,3,4]
#                 [--settings 1shot_low,...] [--folds spread|all] [--config conf/pretrained_real_inv.json]
#                 [--thresholds low=0.55,...] [--epochs 1=100,...] (default: the config's "recipe")
#                 [--jobs 2] [--threads 1]
#                 [--bench_seed 0] [--bench_opts "--classes a,b --clips-per-class 8 ..."]
#                 [--dataset DIR]   (the real Naranjo-Alcazar dataset instead of the benchmark)
#                 [--run_opts "--save-embeddings ..."]   (more options of local/run_settings.py)
#
# --bench DIR may also be a benchmark built by another generator in the same layout (e.g.
# data_prep.make_alarm_real_bench): when DIR/manifest.json names another generator, stage 0
# only writes the folds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}
readonly here root python
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

stage=0
stop_stage=2
bench=$root/data/alarm_bench
bench_seed=0
bench_opts=""
dataset=""
run_opts=""
exp=$root/exp/alarm_osc
seeds=0,1,2,3,4
settings=""
folds=spread
config=$here/conf/pretrained_real_inv.json  # the CLI default (init "real", threshold 0.47)
thresholds=""
epochs=""
jobs=2
threads=1

. "$root/recipes/utils/parse_options.sh"

prepared=$bench/prepared
if [ -n "$dataset" ]; then
  prepared=$exp/prepared
fi
mkdir -p "$exp"
start=$(date +%s)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: benchmark and folds -> $prepared"
  if [ -z "$dataset" ]; then
    if [ -f "$bench/manifest.json" ] \
      && ! grep -q '"generator": "data_prep.make_alarm_bench"' "$bench/manifest.json"; then
      echo "$bench was built by another generator ($bench/manifest.json); using it as it is"
    else
      # shellcheck disable=SC2086  # bench_opts is a list of options
      "$python" -m data_prep.make_alarm_bench --out "$bench" --seed "$bench_seed" $bench_opts
    fi
    "$python" -m data_prep.prepare_alarm_osc "$bench" --out "$prepared"
  else
    "$python" -m data_prep.prepare_alarm_osc "$dataset" --out "$prepared"
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: settings x seeds -> $exp/runs.jsonl"
  # shellcheck disable=SC2086  # run_opts is a list of options
  "$python" "$here/local/run_settings.py" --prepared "$prepared" --out "$exp" \
    --seeds "$seeds" --settings "$settings" --folds "$folds" --config "$config" \
    ${thresholds:+--thresholds "$thresholds"} ${epochs:+--epochs "$epochs"} \
    --jobs "$jobs" --threads "$threads" $run_opts
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: table -> $exp/table.md"
  "$python" "$here/local/make_table.py" "$exp/runs.jsonl" --output "$exp/table.md"
fi

echo "run.sh: stages $stage-$stop_stage done in $(( $(date +%s) - start )) s"
