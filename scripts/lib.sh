# Shared by scripts/run and scripts/test: the target directory and the
# installation of missing Debian packages.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ggcore-target}"
# The SDKs functions import: this checkout's (a binary's compiled-in default
# names the checkout it was built in, which a shared target directory may
# have taken from another one).
export GGCORE_SDK_ROOT="${GGCORE_SDK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

log() { printf '\n== %s\n' "$*" >&2; }

# ensure_debs PACKAGE... installs the packages that are not installed yet.
ensure_debs() {
  local need=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  ((${#need[@]})) || return 0
  log "installing Debian packages: ${need[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
}
