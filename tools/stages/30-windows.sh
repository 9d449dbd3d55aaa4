# Windows build: cross-compile passthru for x86_64-pc-windows-gnu, lint it for that target, and
# run the .exe under wine: --help, `survey --from` the Windows snapshots, the simulated Hyper-V
# end to end (assign, undo; driver status, sync --dry-run, sync, undo on a simulated guest
# disk), and a clean error where no Hyper-V/PowerShell is present.
# Real Hyper-V cannot run here; docs/hyperv-proof.md says what this does and does not prove.
set -euo pipefail
source tools/lib.sh

target=x86_64-pc-windows-gnu
if ! ensure_rust_target "$target"; then
  echo "skip: the Rust target $target is not installed and cannot be added"
  exit 77
fi
if ! ensure_packages gcc-mingw-w64-x86-64 wine64; then
  echo "skip: mingw-w64 and wine64 are needed to build and run the Windows binary"
  exit 77
fi
wine=/usr/lib/wine/wine64
[ -x "$wine" ] || { echo "skip: $wine is missing"; exit 77; }

cargo clippy --locked --target "$target" -p passthru-hyperv -p passthru --all-targets -- -D warnings
# The driver crate's own tests use Unix permissions; its library is what the .exe runs.
cargo clippy --locked --target "$target" -p passthru-driver --lib --features testing -- -D warnings
cargo build --locked --target "$target" -p passthru

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Debian's wine 8.0 lacks bcryptprimitives.dll (ProcessPrng), without which every Rust .exe
# exits with c0000135; a test-only stub next to the .exe stands in for it.
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bcryptprimitives.dll" \
  tools/wine/bcryptprimitives.c tools/wine/bcryptprimitives.def -ladvapi32
cp "target/$target/debug/passthru.exe" fixtures/hyperv/snapshots/*.json "$work/"
cp fixtures/hyperv/simulator/server-dda.state.json "$work/state.json"
# A simulated host for `passthru driver` (its paths are relative to its state file, so the
# .exe finds them through wine's Z: drive): built natively, used by the .exe.
cargo run --locked -q -p passthru-driver --features testing --example driver_sim_lab -- "$work/lab"
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
unset PASSTHRU_HYPERV_SIMULATOR PASSTHRU_ROOT PASSTHRU_JOURNAL_DIR

failures=0
# check NAME EXPECTED_STATUS NEEDLE -- ARGS...: runs passthru.exe ARGS under wine and checks the
# exit status and that NEEDLE occurs in its output.
check() {
  local name=$1 expected=$2 needle=$3
  shift 4
  local output status
  set +e
  output=$(cd "$work" && timeout 300 "$wine" ./passthru.exe --color never "$@" 2>&1)
  status=$?
  set -e
  if [ "$status" -eq "$expected" ] && [[ "$output" == *"$needle"* ]] && [[ "$output" != *panicked* ]]; then
    echo "ok    $name"
  else
    echo "FAIL  $name (exit $status, expected $expected, wanted \"$needle\")"
    printf '%s\n' "$output" | tail -20 | sed 's/^/      /'
    failures=$((failures + 1))
  fi
}

check "help" 0 "gpu-p" -- --help
check "survey --from server snapshot" 0 "NVIDIA GRID K520" -- survey --from server-dda.json
check "survey --from laptop snapshot (json)" 0 '"schema": "passthru.survey.windows/1"' -- --json survey --from win11-laptop-gpu-pv.json
check "no Hyper-V here: clean error" 1 "help:" -- survey
check "no Hyper-V here: gpu-p list" 1 "Windows PowerShell 5.1" -- gpu-p list
export PASSTHRU_HYPERV_SIMULATOR=state.json
check "simulated DDA assign" 0 "Done." -- --journal-dir journal assign "1080 Ti" --vm StorageServer
check "simulated survey after assign" 0 "in VM 'StorageServer'" -- survey "1080 Ti"
check "undo through the journal" 0 "Undone:" -- --journal-dir journal undo
check "journal" 0 "undone" -- --journal-dir journal journal
export PASSTHRU_HYPERV_SIMULATOR=lab/state.json
check "driver status before any sync" 1 "not installed" -- --journal-dir journal-driver driver status --vm exampleName
check "driver sync --dry-run" 0 "Dry run: nothing was changed." -- driver sync --vm exampleName --dry-run
check "driver sync onto the simulated disk" 0 "Done:" -- --journal-dir journal-driver driver sync --vm exampleName
check "driver status --verify after the sync" 0 "up to date" -- --journal-dir journal-driver driver status --vm exampleName --verify
check "undo the driver sync" 0 "Undone:" -- --journal-dir journal-driver undo
unset PASSTHRU_HYPERV_SIMULATOR

if [ "$failures" -ne 0 ]; then
  echo "windows: $failures check(s) failed"
  exit 1
fi
echo "windows: ok"
