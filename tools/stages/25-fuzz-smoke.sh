# Fuzz smoke run: every cargo-fuzz target in fuzz/ for a few seconds each (10 s by default,
# PASSTHRU_FUZZ_SECONDS to change), seeded with fuzz/seeds and the real dumps. cargo-fuzz needs
# a nightly toolchain; without one this stage skips (77) and says so.
set -euo pipefail
source tools/lib.sh
seconds=${PASSTHRU_FUZZ_SECONDS:-10}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "skip: no nightly Rust toolchain (cargo-fuzz needs one: rustup toolchain install nightly)"
  exit 77
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "skip: cargo-fuzz is not installed (cargo install cargo-fuzz --locked) and we are not root"
    exit 77
  fi
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet \
    || { echo "skip: cargo install cargo-fuzz failed"; exit 77; }
fi

cargo +nightly fuzz build
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT

# Runs one target on a scratch corpus plus read-only seed folders; prints its run count, or its
# log when it fails (cargo-fuzz then names the crashing input under fuzz/artifacts/).
fuzz() {
  local target=$1
  shift
  mkdir -p "$corpus/$target"
  if cargo +nightly fuzz run "$target" "$corpus/$target" "$@" -- \
      -max_total_time="$seconds" -max_len=20000 >"$corpus/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$corpus/$target.log")"
  else
    tail -n 40 "$corpus/$target.log"
    echo "fuzz $target: FAILED"
    return 1
  fi
}

fuzz config fuzz/seeds/config
fuzz resource fuzz/seeds/resource
fuzz dump fixtures/pci-config/gpu fixtures/pci-config/net fixtures/pci-config/bridge
fuzz inf fixtures/inf
fuzz snapshot fixtures/snapshots
fuzz hyperv_format_list fuzz/seeds/hyperv_format_list fixtures/hyperv/recorded
fuzz hyperv_paths
fuzz hyperv_survey_dda fixtures/hyperv/recorded
fuzz hyperv_answer fuzz/seeds/hyperv_answer
fuzz hyperv_snapshot fixtures/hyperv/snapshots
echo "fuzz smoke: ok"
