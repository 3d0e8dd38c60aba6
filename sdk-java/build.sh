#!/bin/sh
# Builds ggcore's Java SDK and runtime into one jar: ./build.sh OUT.jar
# Compiles for Java 8 (javac --release 8) so functions built for java8 link against it.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.jar" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
case $1 in
    /*) out=$1 ;;
    *) out=$(pwd)/$1 ;;
esac
for tool in javac jar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$0: $tool not found on PATH (a JDK 9 or newer is needed for --release 8)" >&2
        exit 1
    fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$here"
find src -name '*.java' | LC_ALL=C sort > "$tmp/sources"
if ! javac --release 8 -encoding UTF-8 -nowarn -d "$tmp/classes" @"$tmp/sources"; then
    echo "$0: javac failed" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
if ! jar cf "$out" -C "$tmp/classes" .; then
    echo "$0: jar failed" >&2
    exit 1
fi
