#!/usr/bin/env bash
# Profiles ggcore (the copy benches/run.sh measured) under one load scenario:
# CPU samples with DWARF call stacks (perf record), then a summary of the
# hottest leaf functions, what in ggcore/rustls called them, and inclusive time
# per ggcore/rustls/tokio function (benches/perf_summary.py).
#
#   benches/profile.sh pairs:1 128 0            # topology, payload, QoS
#   benches/profile.sh fanout:100 16384 0
#   benches/profile.sh pairs:1 128 1 --rate 1000
#   benches/profile.sh pairs:1 128 0 --batched  # the older batched client writes
#
# The load line it prints was measured with perf record attached to the core:
# a profile's context, never a throughput figure (those come from run.sh).
#
# Needs a previous benches/run.sh (certificates, root and binaries in the work
# directory) and perf (Debian linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ggcore-target}"
WORK="${GGCORE_BENCH_WORK:-$HOME/.cache/mqtt-bench}"
BIN="$WORK/bin"
TOPO="$1"; PAYLOAD="$2"; QOS="$3"; shift 3
OUT="$WORK/profiles"; mkdir -p "$OUT"
NAME="$(echo "$TOPO-$PAYLOAD-q$QOS$*" | tr ' :/' '___')"
cargo build -p ggcore-benches --bin loadgen >&2
LOADGEN="$CARGO_TARGET_DIR/debug/loadgen"

"$BIN/gg-core" run --root "$WORK/core-root" >"$OUT/core.out" 2>"$OUT/core.err" &
CORE=$!
trap 'kill $CORE 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "ggcore ready" "$OUT/core.err" && break; sleep 0.1; done
ADDR="$(grep -o 'mqtt=[0-9.:]*' "$OUT/core.err" | head -1 | cut -d= -f2)"

"$LOADGEN" --addr "$ADDR" --ca "$WORK/core-root/certs/group-ca.pem" --certs-dir "$WORK/devices" \
    --broker-pid "$CORE" --deploy-with "$BIN/gg-core" --work "$WORK" \
    --topology "$TOPO" --payload "$PAYLOAD" --qos "$QOS" --warmup 3 --duration 6 "$@" \
    >"$OUT/$NAME.json" 2>"$OUT/$NAME.loadgen" &
LG=$!
sleep 5
perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$CORE" -o "$OUT/$NAME.perf" -- sleep 3 2>/dev/null >/dev/null
wait $LG
tail -1 "$OUT/$NAME.loadgen"
perf script -i "$OUT/$NAME.perf" 2>/dev/null | python3 benches/perf_summary.py 20 | tee "$OUT/$NAME.txt"
