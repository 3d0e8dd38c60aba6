#!/bin/sh
# Builds the SDK jar, compiles the tests against it (for Java 8) and runs them with a fake Host.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
"$here/build.sh" "$tmp/ggcore-sdk.jar"
cd "$here"
find test -name '*.java' | LC_ALL=C sort > "$tmp/sources"
javac --release 8 -encoding UTF-8 -nowarn -cp "$tmp/ggcore-sdk.jar" -d "$tmp/test-classes" @"$tmp/sources"
java -Xmx256m -cp "$tmp/ggcore-sdk.jar:$tmp/test-classes" com.ggcore.runtime.RuntimeTest
