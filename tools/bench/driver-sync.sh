#!/usr/bin/env bash
# Benchmark of the driver sync engine against `cp -r` on the same disk (not a test; see
# BENCHMARKS.md, "Driver sync"). Generates a ~1.5 GiB tree shaped like NVIDIA's display
# driver package and a "driver update" of it (v2: 10% of the bytes are new content), then
# measures, REPS times each, with the page cache dropped before every run:
#
#   cp         rm -rf cp; cp -r v1 cp; sync          (the baseline)
#   cp-update  cp of just the files v2 changed, over cp; rm the files v2 dropped; sync
#              (the file system's own cost of the update: no comparing, no atomicity)
#   first      rm -rf dest; sync_tree v1 dest          (flushes every file itself; hashes all)
#   same       sync_tree v1 dest                       (nothing changed)
#   update     sync_tree v2 dest                       (10% of the bytes changed)
#
# The runs of one repetition follow each other, so the ratios are taken per repetition (the
# machine's load drifts) and summarised by their median and range. The short re-syncs are
# the noisiest, so each repetition runs them RESYNC_REPS times (default 3; before each
# update run, dest is synced back to v1, untimed). Usage:
#
#   tools/bench/driver-sync.sh [WORKDIR] [REPS]      (defaults: /var/tmp/passthru-bench, 5)
#
# SYNC_FLAGS: extra flags for sync_tree (e.g. "--threads 8"). BASELINE: another sync_tree
# binary (e.g. one built from an older commit) measured in the same repetitions, right after
# this one, for before/after comparisons on a noisy machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/var/tmp/passthru-bench}
reps=${2:-5}
total_mb=${TOTAL_MB:-1536}
flags=${SYNC_FLAGS:-}
baseline=${BASELINE:-}
resync_reps=${RESYNC_REPS:-3}

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
if [ ! -d "$work/v2" ]; then
  rm -rf "$work/v1"
  "$bin/driver_tree" generate "$work/v1" --total-mb "$total_mb"
  cp -a "$work/v1" "$work/v2.tmp"
  "$bin/driver_tree" update "$work/v2.tmp" --percent 10
  mv "$work/v2.tmp" "$work/v2"
fi
bytes=$(du -sb "$work/v1" | cut -f1)
# What the update changed, by the engine's own rule (size and time): for cp-update.
listing() { (cd "$1" && find . -type f -printf '%P %s %T@\n' | sort); }
comm -13 <(listing "$work/v1") <(listing "$work/v2") | cut -d' ' -f1 >"$work/changed.txt"
comm -23 <(listing "$work/v1" | cut -d' ' -f1) <(listing "$work/v2" | cut -d' ' -f1) \
  >"$work/dropped.txt"
cp_update() {
  (cd "$work/v2" && xargs -d '\n' cp --parents -t "$work/cp" <"$work/changed.txt")
  (cd "$work/cp" && xargs -d '\n' rm -f <"$work/dropped.txt")
  sync
}

# Wall time of "$@" in seconds (bash's clock: no extra process around the command).
seconds() {
  local start=$EPOCHREALTIME
  "$@" >"$work/last.json"
  echo "$EPOCHREALTIME - $start" | bc -l
}
copied() { sed -n 's/.*"bytes_copied":\([0-9]*\).*/\1/p' "$work/last.json"; }
# The engine's own time (listing, planning, executing: no process start), as sync_tree reports.
inside() { sed -n 's/.*"seconds":\([0-9.e-]*\).*/\1/p' "$work/last.json"; }

declare -A runs
add() { runs[$1]="${runs[$1]:-} $2"; }

# One engine's first sync, then RESYNC_REPS nothing-changed re-syncs and updates.
measure() {
  local name=$1 sync_tree=$2 first same update
  rm -rf "$work/dest" "$work/dest.manifest.json"
  drop_caches
  # shellcheck disable=SC2086
  first=$(seconds "$sync_tree" "$work/v1" "$work/dest" $flags)
  first_inside=$(inside)
  add "$name-first" "$first"
  add "$name-cpratio" "$(echo "$cp / $first" | bc -l)"
  for _ in $(seq 1 "$resync_reps"); do
    drop_caches
    # shellcheck disable=SC2086
    same=$(seconds "$sync_tree" "$work/v1" "$work/dest" $flags)
    add "$name-same" "$same"
    add "$name-samepct" "$(echo "100 * $same / $first" | bc -l)"
    add "$name-sameinpct" "$(echo "100 * $(inside) / $first_inside" | bc -l)"
  done
  for _ in $(seq 1 "$resync_reps"); do
    # shellcheck disable=SC2086
    "$sync_tree" "$work/v1" "$work/dest" $flags >/dev/null 2>&1
    drop_caches
    # shellcheck disable=SC2086
    update=$(seconds "$sync_tree" "$work/v2" "$work/dest" $flags)
    update_bytes=$(copied)
    add "$name-update" "$update"
    add "$name-updatepct" "$(echo "100 * $update / $first" | bc -l)"
    add "$name-updateinpct" "$(echo "100 * $(inside) / $first_inside" | bc -l)"
  done
  echo "  $name: first $first same $same update $update (last of each)" >&2
}

for rep in $(seq 1 "$reps"); do
  rm -rf "$work/cp"
  drop_caches
  cp=$(seconds bash -c "cp -r '$work/v1' '$work/cp' && sync")
  drop_caches
  cp_update=$(seconds cp_update)
  rm -rf "$work/cp"
  add cp "$cp"
  add cp-update "$cp_update"
  add cp-updatepct "$(echo "100 * $cp_update / $cp" | bc -l)"
  echo "rep $rep: cp $cp cp-update $cp_update" >&2
  measure engine "$bin/sync_tree"
  [ -z "$baseline" ] || measure baseline "$baseline"
done

stats() { # median (min-max) of the numbers in $1, printf format $2
  printf '%s\n' $1 | sort -g | awk -v f="$2" '{a[NR]=$1} END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf f " (" f "-" f ")", m, a[1], a[NR] }'
}
mib=$(echo "$bytes / 1048576" | bc -l)
changed_pct=$(echo "100 * $update_bytes / $bytes" | bc -l)
printf 'tree: %.0f MiB, %s files; update copies %.2f%% of the bytes; %s repetitions' "$mib" \
  "$(find "$work/v1" -type f | wc -l)" "$changed_pct" "$reps"
printf ' (re-syncs: %s each);\nmedian (min-max); ratios are to the cp -r or first sync of the same repetition:\n' \
  "$resync_reps"
printf '  cp -r + sync       %s s\n' "$(stats "${runs[cp]}" %.2f)"
printf '  cp of the update   %s s    %s %% of cp -r\n' \
  "$(stats "${runs[cp-update]}" %.3f)" "$(stats "${runs[cp-updatepct]}" %.1f)"
for name in engine ${baseline:+baseline}; do
  echo "$name:"
  printf '  first sync         %s s    %s x cp throughput\n' \
    "$(stats "${runs[$name-first]}" %.2f)" "$(stats "${runs[$name-cpratio]}" %.2f)"
  printf '  re-sync, same      %s s  %s %% of first sync\n' \
    "$(stats "${runs[$name-same]}" %.3f)" "$(stats "${runs[$name-samepct]}" %.2f)"
  printf '  re-sync, update    %s s    %s %% of first sync\n' \
    "$(stats "${runs[$name-update]}" %.3f)" "$(stats "${runs[$name-updatepct]}" %.1f)"
done
# sync_tree's own "seconds" (no process start); a BASELINE binary may count differently.
printf 'engine, in-process times only: same %s %%, update %s %% of first sync\n' \
  "$(stats "${runs[engine-sameinpct]}" %.2f)" "$(stats "${runs[engine-updateinpct]}" %.1f)"
