# Unit and integration tests of every crate (fake hosts, recorded data, property tests).
set -euo pipefail
source tools/lib.sh
# lspci is the oracle for config-space decoding: when it can be installed, its absence is a failure.
if ensure_packages pciutils; then
  export PASSTHRU_REQUIRE_LSPCI=1
else
  echo "note: without pciutils the lspci oracle tests are skipped"
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
