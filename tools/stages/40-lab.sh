# The VM lab (docs/vm-lab.md): real Debian kernels boot under QEMU (TCG) with emulated IOMMUs and
# PCI topologies, and scenarios run inside against the real kernel. Skips (77) with the reason
# when this machine cannot run it. PASSTHRU_LAB=skip skips it on purpose.
set -uo pipefail
source tools/lib.sh

skip() { echo "lab: skipped: $*"; exit 77; }
[ "${PASSTHRU_LAB:-}" = skip ] && skip "PASSTHRU_LAB=skip"
[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || skip "it needs an x86_64 Linux machine"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || skip "it needs python3 3.11 or newer (tomllib)"
ensure_packages qemu-system-x86 kmod cpio binutils \
  || skip "QEMU, kmod, cpio or binutils is missing and cannot be installed here (see above)"
ensure_rust_target x86_64-unknown-linux-musl \
  || skip "the Rust target x86_64-unknown-linux-musl is missing and rustup cannot add it"

python3 -m unittest discover -s lab/tests || exit 1
lab/lab run
