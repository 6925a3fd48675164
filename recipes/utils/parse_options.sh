# Command-line options of a recipe script, Kaldi / icefall style (source it, do not run it).
#
# Every variable that the script defines before sourcing this file is an option: `--name value`
# or `--name=value` sets it, and dashes in the name map to underscores (`--stop-stage 2` sets
# stop_stage). Only lower-case names are options, and readonly variables are not: a script marks
# the paths and settings it computes itself (here, root, python, ...) readonly. `-h` / `--help`
# prints the script's header comment (its comment lines from line 2 on) and exits 0. An unknown
# option, an option without a value or an argument that is not an option is one line on stderr
# and exit status 2.
#
#   stage=0
#   stop_stage=3
#   . "$root/recipes/utils/parse_options.sh"
#
# Needs bash (declare -p, printf -v, [[ =~ ]]).

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      awk 'NR == 1 { next } /^#/ { print; next } { exit }' "$0"
      exit 0
      ;;
    --?*=*)
      _po_name=${1%%=*}
      _po_value=${1#*=}
      _po_shift=1
      ;;
    --?*)
      _po_name=$1
      if [ $# -lt 2 ]; then
        echo "$(basename "$0"): option $1 needs a value" >&2
        exit 2
      fi
      _po_value=$2
      _po_shift=2
      ;;
    *)
      echo "$(basename "$0"): unknown option $1" >&2
      exit 2
      ;;
  esac
  _po_var=${_po_name#--}
  _po_var=${_po_var//-/_}
  # an option is a lower-case variable that the script has set (not readonly, not an array)
  _po_decl=$(declare -p "$_po_var" 2>/dev/null) || _po_decl=""
  _po_flags=${_po_decl#declare -}
  _po_flags=${_po_flags%% *}
  if ! [[ $_po_var =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "$_po_decl" ] || [[ $_po_flags == *[raA]* ]]; then
    echo "$(basename "$0"): unknown option $_po_name" >&2
    exit 2
  fi
  printf -v "$_po_var" '%s' "$_po_value"
  shift "$_po_shift"
done
unset _po_name _po_value _po_shift _po_var _po_decl _po_flags
