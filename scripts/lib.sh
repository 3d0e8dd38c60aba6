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

# ensure_node: Node.js 18 or later and npm (the Node runtime plugin's tests and
# the npm packages they bundle). Debian 12's nodejs is 18.x, npm a package of
# its own; a Node already on PATH (nodesource, nvm) is kept when new enough.
ensure_node() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$major" -lt 18 ]; then
    ensure_debs nodejs
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    [ "$major" -ge 18 ] || { log "Node.js 18 or later is needed (found major version $major)"; return 1; }
  fi
  command -v npm >/dev/null || ensure_debs npm
}
