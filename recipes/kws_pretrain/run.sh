#!/usr/bin/env bash
# Pretrain the whisper-tacos head on a generated word corpus (issue 19, route 2) and find out
# whether it beats the head trained on the shots alone.
#
#   stage 0: the word corpus (data_prep.make_kws_words; returns at once when cached)
#   stage 1: encode it with Whisper and pretrain the head with TACos, validated on unseen words
#            spoken by unseen voices (local/pretrain_whisper_head.py) -> $exp/whisper_head.pt
#   stage 2: the pretrained head frozen, fine-tuned, and a head trained on the shots only,
#            on KWS-TTS and the demo, chosen on validation (local/evaluate_head.py)
#   stage 3: export: copy the head and its metadata to kwsos/data/ (the bundled head that
#            whisper-tacos fine-tunes; run only when stage 2 says it wins)
#
# Usage: ./run.sh [--stage 0] [--stop_stage 2] (stage 3 on request) [--data DIR] [--exp DIR] [--kws_tts DIR]
#                 [--steps 10000] [--threads 2] [--corpus_opts "--words 2000 ..."]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python}
readonly here root python
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

stage=0
stop_stage=2
data=$root/data/kws_words
exp=$root/exp/kws_pretrain
kws_tts=$root/data/kws_tts
steps=10000
threads=2
corpus_opts="--seed 0 --jobs 2 --download"

. "$root/recipes/utils/parse_options.sh"

mkdir -p "$exp"
start=$(date +%s)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: word corpus -> $data"
  # shellcheck disable=SC2086  # corpus_opts is a list of options
  "$python" -m data_prep.make_kws_words --out "$data" $corpus_opts
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: pretrain the head -> $exp/whisper_head.pt"
  # shellcheck disable=SC2086  # extra options, e.g. for a smoke run
  "$python" "$here/local/pretrain_whisper_head.py" --data "$data" --exp "$exp" \
    --steps "$steps" --threads "$threads" ${KWSOS_PRETRAIN_OPTS:-}
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: scratch / frozen / fine-tuned head on KWS-TTS and the demo"
  [ -d "$kws_tts" ] || "$python" -m data_prep.make_kws_tts --out "$kws_tts" --seed 0
  "$python" "$here/local/evaluate_head.py" --head "$exp/whisper_head.pt" --kws-tts "$kws_tts" \
    --out "$exp/evaluation.json"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: export -> $root/kwsos/data/whisper_head.{pt,json}"
  for f in whisper_head.pt whisper_head.json; do  # copy, then rename: never half-written
    cp "$exp/$f" "$root/kwsos/data/.$f.tmp" && mv "$root/kwsos/data/.$f.tmp" "$root/kwsos/data/$f"
  done
fi
echo "run.sh: stages $stage-$stop_stage done in $(( $(date +%s) - start )) s"
