#!/usr/bin/env bash
# Benchmarks of ggcore's cloud link and store-and-forward queue, with their
# peers measured in the same run (BENCHMARKS.md, "Cloud queue"):
#
#   benches/queue.sh                 # everything, 3 repeats of each
#   REPEATS=1 benches/queue.sh append drain   # some of them
#
# Parts: append (queue append throughput per fsync mode, with db_bench
# fillrandom --sync=1 --threads=8 next to the `always` runs), drain (to a
# Mosquitto "cloud", ggcore vs a Mosquitto bridge), routing (device → device
# while a backlog drains), replay (restart with 100k queued), outage (kill -9
# of the edge during a cloud outage, ggcore vs the bridge, and the bridge with
# autosave_interval 1), window (drain with an in-flight window of 1 vs 64:
# needs GG_CORE_WINDOW1, a ggcore built with cloud::DEFAULT_WINDOW = 1; and
# 256 when GG_CORE_WINDOW256 names one built with 256).
#
# Every run prints one line (stderr) and one JSON object, appended to
# $GGCORE_QUEUE_WORK/results/queue-DATE.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ggcore-target}"
WORK="${GGCORE_QUEUE_WORK:-$HOME/.cache/queue-bench}"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
REPEATS="${REPEATS:-3}"
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(append drain routing replay outage window)

apt_install() {
    if [ "$(id -u)" = 0 ]; then apt-get install -y "$@" >&2; else sudo apt-get install -y "$@" >&2; fi
}
[ -x "$MOSQUITTO" ] || apt_install mosquitto
command -v db_bench >/dev/null || apt_install rocksdb-tools

cargo build >&2
cargo build -p ggcore-benches >&2
# Copied so that a rebuild during the run changes nothing measured; names
# without "ggcore" (see run.sh).
BIN="$WORK/bin"
mkdir -p "$BIN" "$WORK/results"
cp -p "$CARGO_TARGET_DIR/debug/ggcore" "$BIN/gg-core"
for f in "$CARGO_TARGET_DIR"/debug/ggcore-worker "$CARGO_TARGET_DIR"/debug/lib*.so; do
    if [ -e "$f" ]; then cp -p "$f" "$BIN/"; fi
done
cp -p "$CARGO_TARGET_DIR/debug/queue-bench" "$BIN/queue-bench"
OUT="$WORK/results/queue-$(date -u +%Y%m%dT%H%M%S).jsonl"
Q=("$BIN/queue-bench" --ggcore "$BIN/gg-core" --mosquitto "$MOSQUITTO" --work "$WORK")
echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" >&2
echo "results: $OUT" >&2

db_bench_run() { # value size
    rm -rf "$WORK/db_bench"
    local line
    line=$(db_bench --benchmarks=fillrandom --sync=1 --threads=8 --value_size="$1" --num=1000000 --duration=5 \
        --db="$WORK/db_bench" 2>&1 | grep '^fillrandom')
    echo "db_bench fillrandom --sync=1 --threads=8 --value_size=$1: $line" >&2
    echo "{\"what\":\"db_bench\",\"value_size\":$1,\"ops_per_sec\":$(echo "$line" | awk '{print $5}')}" >>"$OUT"
    rm -rf "$WORK/db_bench"
}

for part in "${PARTS[@]}"; do
    for r in $(seq "$REPEATS"); do
        case "$part" in
        append)
            for size in 100 4096; do
                db_bench_run "$size"
                for fsync in always batch never; do
                    "${Q[@]}" append --fsync "$fsync" --payload "$size" --publishers 64 --duration 3 >>"$OUT"
                done
            done
            "${Q[@]}" append --fsync batch --payload 100 --publishers 16 --duration 3 >>"$OUT"
            "${Q[@]}" append --fsync batch --payload 100 --publishers 128 --duration 3 >>"$OUT"
            ;;
        drain)
            for edge in ggcore bridge; do "${Q[@]}" drain --edge "$edge" --backlog 100000 >>"$OUT"; done
            for edge in ggcore bridge; do
                "${Q[@]}" drain --edge "$edge" --backlog 50000 --payload 4096 >>"$OUT"
            done
            ;;
        routing) "${Q[@]}" routing --backlog 100000 >>"$OUT" ;;
        replay)
            "${Q[@]}" replay --backlog 100000 >>"$OUT"
            "${Q[@]}" replay --backlog 100000 --kill >>"$OUT"
            ;;
        outage)
            before=$(awk -v r="$r" 'BEGIN{print 0.7 + 1.1 * r}')
            for edge in ggcore bridge; do "${Q[@]}" outage --edge "$edge" --before "$before" >>"$OUT"; done
            # The bridge saving its persistence file every second instead of every 30 minutes.
            "${Q[@]}" --bridge-autosave 1 outage --edge bridge --before "$before" |
                sed 's/"edge":"bridge"/"edge":"bridge-autosave-1"/' >>"$OUT"
            ;;
        window)
            if [ -z "${GG_CORE_WINDOW1:-}" ]; then
                echo "window: set GG_CORE_WINDOW1 to a ggcore built with cloud::DEFAULT_WINDOW = 1" >&2
                break
            fi
            cp -p "$GG_CORE_WINDOW1" "$BIN/gg-core-w1"
            "${Q[@]}" drain --edge ggcore --backlog 100000 >>"$OUT"
            "$BIN/queue-bench" --ggcore "$BIN/gg-core-w1" --mosquitto "$MOSQUITTO" --work "$WORK" \
                drain --edge ggcore --backlog 20000 | sed 's/"what":"drain"/"what":"drain-window1"/' >>"$OUT"
            if [ -n "${GG_CORE_WINDOW256:-}" ]; then # optional: a ggcore built with DEFAULT_WINDOW = 256
                cp -p "$GG_CORE_WINDOW256" "$BIN/gg-core-w256"
                "$BIN/queue-bench" --ggcore "$BIN/gg-core-w256" --mosquitto "$MOSQUITTO" --work "$WORK" \
                    drain --edge ggcore --backlog 100000 | sed 's/"what":"drain"/"what":"drain-window256"/' >>"$OUT"
                "${Q[@]}" drain --edge bridge --backlog 100000 >>"$OUT"
            fi
            ;;
        *) echo "unknown part '$part'" >&2; exit 2 ;;
        esac
    done
done
echo "results: $OUT" >&2
