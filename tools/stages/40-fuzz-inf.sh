# Short fuzz run of the INF parser (cargo-fuzz on nightly), seeded with the real INF fixtures.
# Skips (77) when cargo-fuzz or a nightly toolchain is missing.
set -uo pipefail
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "skip: cargo-fuzz is not installed (cargo install cargo-fuzz)"
  exit 77
fi
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "skip: no nightly toolchain for cargo-fuzz (rustup toolchain install nightly)"
  exit 77
fi
mkdir -p fuzz/corpus/inf
cp fixtures/inf/*.inf fuzz/corpus/inf/
cargo +nightly fuzz run inf -- -max_total_time="${PASSTHRU_FUZZ_SECONDS:-45}" -max_len=65536
