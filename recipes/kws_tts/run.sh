#!/usr/bin/env bash
# Few-shot keyword spotting, Diss. Table 31 comparison, on the KWS-TTS benchmark.
#
#   stage 0: generate the benchmark (data_prep.make_kws_tts; returns at once when cached)
#   stage 1: per system: enroll + train, tune global and per-keyword thresholds on validation,
#            detect and score test, plots (local/run_systems.py; systems with a result.json
#            are skipped, --force re-runs them)
#   stage 2: cost separation of each system on test: separation.png, analysis.json
#            (local/analyse.py)
#   stage 3: $exp/RESULTS.md (local/make_results.py)
#
# Usage: ./run.sh [--stage 0] [--stop_stage 3] [--data DIR] [--exp DIR] [--conf conf/kws_tts.json]
#                 [--systems hfcc,tacos,...] [--jobs 2] [--threads 1] [--force 1]
#                 [--data_opts "--minutes 10 --keywords 15 ..."]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}
readonly here root python
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

stage=0
stop_stage=3
data=$root/data/kws_tts
exp=$root/exp/kws_tts
conf=$here/conf/kws_tts.json
systems=""
jobs=2
threads=1
force=0
data_opts="--seed 0"
readonly cmdline="$0 $*"

. "$root/recipes/utils/parse_options.sh"

mkdir -p "$exp"
start=$(date +%s)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: KWS-TTS benchmark -> $data"
  # shellcheck disable=SC2086  # data_opts is a list of options
  "$python" -m data_prep.make_kws_tts --out "$data" $data_opts
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: systems -> $exp/<system>/"
  extra=()
  [ "$force" = 1 ] && extra+=(--force)
  "$python" "$here/local/run_systems.py" --data "$data" --exp "$exp" --conf "$conf" \
    --systems "$systems" --jobs "$jobs" --threads "$threads" "${extra[@]}"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: cost separation -> $exp/<system>/separation.png"
  extra=()
  [ "$force" = 1 ] && extra+=(--force)
  "$python" "$here/local/analyse.py" --data "$data" --exp "$exp" --conf "$conf" \
    --systems "$systems" --threads "$threads" "${extra[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: results -> $exp/RESULTS.md"
  "$python" "$here/local/make_results.py" --exp "$exp" --conf "$conf" \
    --output "$exp/RESULTS.md" --command "$cmdline"
fi

echo "run.sh: stages $stage-$stop_stage done in $(( $(date +%s) - start )) s"
