# Stages shared by the DCASE Task 2 recipes (recipes/dcase20XX_task2/run.sh source this file
# after setting their defaults and parsing the options; do not run it).
#
#   stage 0: data: the synthetic set (data_prep.make_asd_synth) unless --dataset is given
#   stage 1: train one model per system          (kwsos asd fit)
#   stage 2: score the test clips                (kwsos asd score -> official submission files)
#   stage 3: evaluate                            (kwsos asd evaluate -> result.json, table)
#   stage 4: the results tables of all systems   (recipes/utils/asd_report.py -> results.md)
#
# The caller sets (readonly) here root python layout default_systems; the options below are
# parsed here (recipes/utils/parse_options.sh), so the three recipes share them.

stage=0
stop_stage=4
systems=$default_systems
dataset=""
ground_truth=""
split=final
synth=""
synth_opts=""
fit_opts=""
exp=""

. "$root/recipes/utils/parse_options.sh"

synth=${synth:-$root/data/asd_synth/${layout}_$split}
exp=${exp:-$root/exp/${layout}_task2}
synth_opts="--split $split --download $synth_opts"

kwsos() { "$python" -m kwsos.cli "$@"; }

if [ "$systems" = all ]; then
  # every system but the tiny smoke configuration of the test suite
  systems=$(cd "$here/conf" && ls -- *.json | sed 's/\.json$//' | grep -vx smoke | paste -sd, -)
fi
IFS=, read -r -a system_list <<< "$systems"
for s in "${system_list[@]}"; do
  if [ ! -f "$here/conf/$s.json" ]; then
    echo "error: no system '$s' (conf/$s.json); systems: $(cd "$here/conf" && ls -- *.json | sed 's/\.json$//' | paste -sd' ' -)" >&2
    exit 2
  fi
done
data=${dataset:-$synth}
gt_opt=()
if [ -n "$ground_truth" ]; then
  gt_opt=(--ground-truth "$ground_truth")
fi
mkdir -p "$exp"
start=$(date +%s)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -z "$dataset" ]; then
    echo "stage 0: synthetic $layout set -> $synth"
    # shellcheck disable=SC2086  # synth_opts is a list of options
    "$python" -m data_prep.make_asd_synth --out "$synth" --layout "$layout" $synth_opts
  else
    echo "stage 0: using $dataset as it is"
  fi
fi

for s in "${system_list[@]}"; do
  dir=$exp/$s
  mkdir -p "$dir"
  if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "stage 1: [$s] training on $data"
    t0=$(date +%s)
    # shellcheck disable=SC2086  # fit_opts is a list of options
    kwsos asd fit "$data" --model "$dir/model.asd" --config "$here/conf/$s.json" $fit_opts
    echo "$(( $(date +%s) - t0 ))" > "$dir/fit_seconds"
  fi
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    echo "stage 2: [$s] scoring -> $dir/submission"
    t0=$(date +%s)
    kwsos asd score "$data" --model "$dir/model.asd" --output "$dir/submission"
    echo "$(( $(date +%s) - t0 ))" > "$dir/score_seconds"
  fi
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    echo "stage 3: [$s] evaluation"
    kwsos asd evaluate "$dir/submission" --dataset "$data" "${gt_opt[@]}" \
      --format json --output "$dir/result.json"
    kwsos asd evaluate "$dir/submission" --dataset "$data" "${gt_opt[@]}" | tee "$dir/result.txt"
  fi
done

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: results tables -> $exp/results.md"
  "$python" "$root/recipes/utils/asd_report.py" --exp "$exp" --systems "$systems" \
    --dataset "$data" "${gt_opt[@]}" > "$exp/results.md.tmp"
  mv "$exp/results.md.tmp" "$exp/results.md"
  cat "$exp/results.md"
fi
echo "done in $(( $(date +%s) - start )) s"
