#!/usr/bin/env bash
# Side-by-side load benchmark of ggcore's local MQTT server: ggcore vs
# Mosquitto vs rumqttd on the same certificates, payloads and client harness,
# in one run. Prints the tables recorded in BENCHMARKS.md; raw runs go to
# $GGCORE_BENCH_WORK/results/.
#
#   benches/run.sh --perf-stat --batched    # what BENCHMARKS.md records
#   benches/run.sh                          # every scenario, 3 repeats, medians
#   benches/run.sh --repeats 1 --duration 2 --only "1→1"   # a quick look
#   benches/run.sh --help                   # all options of the suite
#
# Clients write each packet as it is produced (one TLS record and one system
# call per PUBLISH or PUBACK, as paho and the AWS device SDKs do); --batched
# adds rows with the older batched writes, labelled as such. --perf-stat adds
# a separate counting pass with `perf stat` attached to each broker; its runs
# feed only the system-call table, never a throughput or latency figure.
#
# What it does:
# 1. installs Mosquitto (Debian package) when missing;
# 2. installs rumqttd 0.20.0 from crates.io OUTSIDE the repository
#    ($GGCORE_PEERS, default ~/.cache/ggcore-peers), with its
#    `verify-client-cert` feature (without it rumqttd ignores the CA and does
#    not ask for client certificates). Not `--locked`: the lockfile published
#    with rumqttd 0.20.0 pins metrics 0.22.1, which current rustc rejects
#    (E0521); the newest compatible patch releases build;
# 3. builds ggcore and the harness with the project's one build profile
#    (dev: workspace crates opt-level 2, dependencies opt-level 3);
# 4. copies ggcore (with ggcore-worker and the runtime plugins, which it looks
#    for next to its executable), the suite and rumqttd into the work directory,
#    so that a rebuild during the run cannot change what is measured, and runs
#    the suite there.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ggcore-target}"
PEERS="${GGCORE_PEERS:-$HOME/.cache/ggcore-peers}"
WORK="${GGCORE_BENCH_WORK:-$HOME/.cache/mqtt-bench}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"

if [ ! -x "$MOSQUITTO" ]; then
    echo "installing mosquitto" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y mosquitto >&2; else sudo apt-get install -y mosquitto >&2; fi
    # The benchmark starts its own instance; the packaged service is not needed.
fi

if [ ! -x "$PEERS/bin/rumqttd" ]; then
    echo "installing rumqttd 0.20.0 into $PEERS (outside the repository)" >&2
    CARGO_TARGET_DIR="$PEERS/target" cargo install rumqttd --version 0.20.0 \
        --features verify-client-cert --root "$PEERS" >&2
fi

cargo build >&2                      # default members: ggcore, its worker, plugins
cargo build -p ggcore-benches >&2
BIN="$WORK/bin"
rm -rf "$BIN" && mkdir -p "$BIN"
# The core under test is copied as `gg-core` (byte for byte the same binary),
# next to ggcore-worker and the runtime plugins it looks for beside itself. The
# work directory and every copied name avoid the string "ggcore": on a shared
# development machine, cleanup commands of other work (`pkill -f ggcore ...`)
# otherwise stop the brokers or the suite in the middle of a run.
cp -p "$CARGO_TARGET_DIR/debug/ggcore" "$BIN/gg-core"
for f in "$CARGO_TARGET_DIR"/debug/ggcore-worker "$CARGO_TARGET_DIR"/debug/lib*.so; do
    if [ -e "$f" ]; then cp -p "$f" "$BIN/"; fi
done
cp -p "$CARGO_TARGET_DIR/debug/suite" "$BIN/bench-suite"
cp -p "$PEERS/bin/rumqttd" "$BIN/rumqttd"
exec "$BIN/bench-suite" --work "$WORK" --ggcore "$BIN/gg-core" \
    --mosquitto "$MOSQUITTO" --rumqttd "$BIN/rumqttd" --quiet-wait 1800 "$@"
