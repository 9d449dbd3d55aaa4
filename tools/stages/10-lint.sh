# Formatting and clippy (-D warnings) over every crate and target.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "lint: ok"
