# A short fuzzing run of the snapshot parser and the survey reader (fuzz/fuzz_targets/
# snapshot.rs), seeded with the committed snapshots. Needs nightly Rust and cargo-fuzz; skips
# without them (installing cargo-fuzz takes longer than the run is worth in CI).
set -uo pipefail
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "skip: nightly Rust with cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 77
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fixtures/snapshots/*.json "$corpus"/
cd fuzz
cargo +nightly fuzz run snapshot "$corpus" -- -max_total_time="${FUZZ_SECONDS:-30}" -max_len=300000 2>&1 | tail -3
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && echo "fuzz-snapshot: ok"
exit "$status"
