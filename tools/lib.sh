# Shared helpers for tools/test-all and its stages. Source it; do not run it.

# Prints a stage banner.
stage() { printf '\n==== %s ====\n' "$*"; }

# Installs Debian packages that are missing, when we are root and apt works. Returns 1 when a
# package is missing and cannot be installed, so the caller can say why it skips.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing packages: ${missing[*]} (not root or no apt-get: cannot install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  if [ -z "${PASSTHRU_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    export PASSTHRU_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install ${missing[*]} failed" >&2; return 1; }
}

# Adds a rustup target when rustup is present and the target is not installed yet.
ensure_rust_target() {
  command -v rustup >/dev/null || return 1
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  rustup target add "$1" >/dev/null 2>&1
}
