# Shared by scripts/run and scripts/test: the target directory and the
# installation of missing Debian packages.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ggcore-target}"
# The SDKs functions load: this checkout's. (A build tree's own SDK root, the
# links cargo makes beside the binary, lies in the target directory under
# $HOME, which the unprivileged users functions run as may not reach; and a
# shared target directory's links may name another checkout.)
export GGCORE_SDK_ROOT="${GGCORE_SDK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# ensure_linker: the C Core SDK library (sdk-c) is linked by an LLVM linker
# (its symbol versions; ADR 0015): rustc's own rust-lld on x86_64, the
# system's lld elsewhere.
ensure_linker() {
  [ "$(uname -m)" = x86_64 ] || ensure_debs lld
}

# install_built_sdks: copies what cargo built of the SDKs into the SDK root
# (both ignored by git): the C Core SDK library into sdk-c/lib under the name
# programs link with, the Java SDK jar into sdk-java/.
install_built_sdks() {
  copy_built "$CARGO_TARGET_DIR/debug/libaws_greengrass_core_sdk_c.so" "$GGCORE_SDK_ROOT/sdk-c/lib/libaws-greengrass-core-sdk-c.so" 755
  copy_built "$CARGO_TARGET_DIR/debug/sdk-java/aws-greengrass-core-sdk-java.jar" "$GGCORE_SDK_ROOT/sdk-java/aws-greengrass-core-sdk-java.jar" 644
}

# copy_built FROM TO MODE: replaces TO with FROM when they differ.
copy_built() {
  [ -f "$1" ] || return 0
  mkdir -p "$(dirname "$2")"
  cmp -s "$1" "$2" && return 0
  cp -f "$1" "$2.new.$$" && chmod "$3" "$2.new.$$" && mv -f "$2.new.$$" "$2"
}

# ensure_jdk: javac and jar (the Java SDK is built with them; Java functions
# run on the JDK's JVM).
ensure_jdk() {
  command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1 && return 0
  [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && return 0
  ensure_debs default-jdk-headless
}

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
