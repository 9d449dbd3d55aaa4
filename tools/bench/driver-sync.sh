#!/usr/bin/env bash
# Benchmark of the driver sync engine against `cp -r` on the same disk (not a test; see
# BENCHMARKS.md, "Driver sync"). Generates a ~1.5 GiB tree shaped like NVIDIA's display
# driver package, then measures, REPS times each, with the page cache dropped before every run:
#
#   cp       rm -rf dest; cp -r v1 dest; sync          (the baseline)
#   first    rm -rf dest; sync_tree v1 dest            (fsyncs every file itself; hashes all)
#   same     sync_tree v1 dest                         (nothing changed)
#   update   sync_tree v2 dest                         (v2 = v1 with ~10% of the bytes changed)
#
# and prints the median of each. Usage:
#
#   tools/bench/driver-sync.sh [WORKDIR] [REPS]      (defaults: /var/tmp/passthru-bench, 5)
#
# Extra flags for sync_tree can be passed in SYNC_FLAGS (e.g. SYNC_FLAGS="--threads 8").
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/var/tmp/passthru-bench}
reps=${2:-5}
total_mb=${TOTAL_MB:-1536}
flags=${SYNC_FLAGS:-}

cargo build --release --quiet -p passthru-driver --examples
bin=target/release/examples

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 > /proc/sys/vm/drop_caches
  else
    echo "note: cannot drop the page cache (not root); reads may come from memory" >&2
  fi
}

mkdir -p "$work"
if [ ! -d "$work/v1" ]; then
  "$bin/driver_tree" generate "$work/v1" --total-mb "$total_mb"
  cp -a "$work/v1" "$work/v2"
  "$bin/driver_tree" update "$work/v2" --percent 10
fi
bytes=$(du -sb "$work/v1" | cut -f1)

seconds() { # runs "$@", prints its wall time in seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

declare -a cp_t first_t same_t update_t
for rep in $(seq 1 "$reps"); do
  rm -rf "$work/cp" "$work/dest" "$work/dest.manifest.json"
  drop_caches
  cp_t+=("$(seconds bash -c "cp -r '$work/v1' '$work/cp' && sync")")
  rm -rf "$work/cp"
  drop_caches
  # shellcheck disable=SC2086
  first_t+=("$(seconds "$bin/sync_tree" "$work/v1" "$work/dest" $flags)")
  drop_caches
  # shellcheck disable=SC2086
  same_t+=("$(seconds "$bin/sync_tree" "$work/v1" "$work/dest" $flags)")
  drop_caches
  # shellcheck disable=SC2086
  update_t+=("$(seconds "$bin/sync_tree" "$work/v2" "$work/dest" $flags)")
  echo "rep $rep: cp ${cp_t[-1]} first ${first_t[-1]} same ${same_t[-1]} update ${update_t[-1]}" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
cp_m=$(median "${cp_t[@]}"); first_m=$(median "${first_t[@]}")
same_m=$(median "${same_t[@]}"); update_m=$(median "${update_t[@]}")
mib=$(echo "$bytes / 1048576" | bc -l)
printf 'tree: %.0f MiB, %s files; %s repetitions, medians (seconds):\n' "$mib" \
  "$(find "$work/v1" -type f | wc -l)" "$reps"
printf '  cp -r + sync     %6.2f s  %6.0f MiB/s\n' "$cp_m" "$(echo "$mib / $cp_m" | bc -l)"
printf '  first sync       %6.2f s  %6.0f MiB/s  (%.2fx cp throughput)\n' "$first_m" \
  "$(echo "$mib / $first_m" | bc -l)" "$(echo "$cp_m / $first_m" | bc -l)"
printf '  re-sync, same    %6.3f s  (%.2f%% of first sync)\n' "$same_m" "$(echo "100 * $same_m / $first_m" | bc -l)"
printf '  re-sync, update  %6.2f s  (%.1f%% of first sync)\n' "$update_m" "$(echo "100 * $update_m / $first_m" | bc -l)"
