# Unit and integration tests of every crate (fake hosts, recorded data, property tests).
set -euo pipefail
source tools/lib.sh
ensure_packages pciutils || echo "note: without pciutils the lspci oracle tests are skipped"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
