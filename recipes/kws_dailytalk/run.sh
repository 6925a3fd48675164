#!/usr/bin/env bash
# Few-shot keyword spotting, Diss. Table 31 comparison, on KWS-DailyTalk (the paper's data).
# You need the KWS-DailyTalk annotation CSVs and your own copy of the DailyTalk audio.
#
#   stage 0: prepare the KWS-DailyTalk layout (data_prep.prepare_kws_dailytalk)
#   stages 1-3: ../kws_tts/run.sh on the prepared data (1: per system: enroll + train, tune
#            global and per-keyword thresholds on validation, detect and score test, plots;
#            systems with a result.json are skipped, --force 1 re-runs them)
#            2: cost separation on test, 3: $exp/RESULTS.md)
#
# Usage: ./run.sh --annotations DIR --dailytalk_audio DIR [--stage 0] [--stop_stage 3]
#                 [--data DIR] [--exp DIR] [--conf conf/kws_dailytalk.json]
#                 [--systems hfcc,tacos,...] [--jobs 2] [--threads 1] [--force 1]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}
readonly here root python
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

stage=0
stop_stage=3
annotations=""
dailytalk_audio=""
data=$root/data/kws_dailytalk
exp=$root/exp/kws_dailytalk
conf=$here/conf/kws_dailytalk.json
systems=""
jobs=2
threads=1
force=0

. "$root/recipes/utils/parse_options.sh"

mkdir -p "$exp"
start=$(date +%s)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -z "$annotations" ] || [ -z "$dailytalk_audio" ]; then
    echo "run.sh: stage 0 needs --annotations DIR and --dailytalk_audio DIR (or start at --stage 1 with a prepared --data DIR)" >&2
    exit 2
  fi
  echo "stage 0: KWS-DailyTalk -> $data"
  "$python" -m data_prep.prepare_kws_dailytalk --annotations "$annotations" \
    --dailytalk-audio "$dailytalk_audio" --out "$data"
fi

if [ "$stop_stage" -ge 1 ]; then
  # stages 1-3 are those of the KWS-TTS recipe, on the prepared data
  first=$(( stage > 1 ? stage : 1 ))
  "$root/recipes/kws_tts/run.sh" --stage "$first" --stop_stage "$stop_stage" --data "$data" \
    --exp "$exp" --conf "$conf" --systems "$systems" --jobs "$jobs" --threads "$threads" \
    --force "$force"
fi

echo "run.sh: stages $stage-$stop_stage done in $(( $(date +%s) - start )) s"
