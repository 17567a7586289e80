# Sourced by the benchmark wrappers: builds the tree (`--build DIR` among the arguments, default
# build; the argument is passed on too) and sets $python to Debian's python3 when present.
# Usage: source tools/bench/prepare.sh NAME "$@"
bench_name=$1
shift
build=build
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --build) build=${args[i + 1]:-build} ;;
    --build=*) build=${args[i]#--build=} ;;
  esac
done
[ -d "$build" ] || meson setup "$build" >/dev/null
if ! out=$(ninja -C "$build" 2>&1); then
  printf '%s\n' "$out" | tail -n 40 >&2
  echo "$bench_name: the build failed" >&2
  exit 1
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
