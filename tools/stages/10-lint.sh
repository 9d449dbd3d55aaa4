# Formatting, clippy (-D warnings) over every crate and target, and the API docs (broken or
# private intra-doc links fail: the docs are how contributors find their way around).
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet
echo "lint: ok"
