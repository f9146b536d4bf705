#!/usr/bin/env bash
# End-to-end transfer through the real binary: a tracker and two peers as separate processes on
# loopback, peer 1 shares a generated file, peer 2 gets it.
#
# Prints the time from sending `get` to peer 2's `downloaded` line, the rate, and the peak
# resident memory (VmHWM) of the downloading and the serving peer. Everything runs in a temp
# folder that is removed on exit (KEEP=1 keeps it); every process started is killed on exit.
#
#   benches/e2e.sh [SIZE]            SIZE in MiB (default 1024), or in KiB as 1K, 64K…
#   PERF_OUT=e2e.perf benches/e2e.sh  also profiles both peers during the transfer
set -euo pipefail

SIZE=${1:-1024}
if [[ $SIZE =~ ^([1-9][0-9]*)K$ ]]; then
    BYTES=$((BASH_REMATCH[1] << 10)) LABEL="${BASH_REMATCH[1]} KiB"
elif [[ $SIZE =~ ^[1-9][0-9]*$ ]]; then
    BYTES=$((SIZE << 20)) LABEL="$SIZE MiB"
else
    echo "usage: $0 [SIZE_MIB | SIZE_KIB K]" >&2
    exit 2
fi
SIZE_MIB=$((BYTES >> 20))
NAME=e2e.bin
# Seconds allowed for each step; the transfer gets 1 s per 4 MiB on top (1 MB/s would be a bug).
START_TIMEOUT=30
SHARE_TIMEOUT=$((60 + SIZE_MIB / 32))
GET_TIMEOUT=$((60 + SIZE_MIB / 4))

cd "$(dirname "$0")/.."
# P2PQ_BIN=PATH runs that binary instead (say, one built with frame pointers for perf).
if [[ -n ${P2PQ_BIN:-} ]]; then
    BIN=$P2PQ_BIN
else
    cargo build --release --quiet --bin p2pq
    BIN=$PWD/target/release/p2pq
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/p2pq-e2e.XXXXXX")
PIDS=()

cleanup() {
    local status=$?
    exec 3>&- 4>&- 5>&- 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "e2e: $*" >&2
    for f in "$DIR"/*.err; do [[ -s $f ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
    exit 1
}

# Starts "$@" with stdin from a fifo held open on descriptor FD, output in DIR/LABEL.{out,err}.
start() {
    local label=$1 fd=$2
    shift 2
    mkfifo "$DIR/$label.in"
    "$@" <"$DIR/$label.in" >"$DIR/$label.out" 2>"$DIR/$label.err" &
    PIDS+=($!)
    eval "exec $fd>\"\$DIR/$label.in\""
}

# Waits until DIR/LABEL.out has a line matching PATTERN; fails on an error line, on the process
# dying, or after TIMEOUT seconds. Polls every 10 ms.
wait_for() {
    local label=$1 pattern=$2 timeout=$3 pid=$4
    local deadline=$((SECONDS + timeout))
    until grep -q -- "$pattern" "$DIR/$label.out"; do
        grep -q '^error:' "$DIR/$label.err" && fail "$label: $(grep -m1 '^error:' "$DIR/$label.err")"
        kill -0 "$pid" 2>/dev/null || fail "$label exited while waiting for '$pattern'"
        ((SECONDS < deadline)) || fail "$label: no '$pattern' within $timeout s"
        sleep 0.01
    done
}

# User and system CPU time of process $1 so far, in clock ticks: "user sys".
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

peer_args() {
    local id=$1
    mkdir -p "$DIR/p$id/data"
    echo --tracker "$TRACKER" --listen 127.0.0.1:0 --no-dht --certs "$DIR/certs" \
        --data-dir "$DIR/p$id/data" --download-dir "$DIR/p$id/downloads" --state-dir "$DIR/p$id/state"
}

echo "generating $LABEL in $DIR ..."
mkdir -p "$DIR/p1/data"
head -c "$BYTES" /dev/urandom >"$DIR/p1/data/$NAME"

# Port 0: the tracker binds any free port and says which.
start tracker 3 "$BIN" tracker --listen 127.0.0.1:0 --certs "$DIR/certs" --state-dir "$DIR/t"
TRACKER_PID=${PIDS[-1]}
wait_for tracker 'tracker listening on' "$START_TIMEOUT" "$TRACKER_PID"
TRACKER=$(sed -n 's/^tracker listening on \([^ ]*\).*/\1/p' "$DIR/tracker.out")

# shellcheck disable=SC2046  # peer_args is a list of words without spaces
start p1 4 "$BIN" peer 1 $(peer_args 1)
P1=${PIDS[-1]}
# shellcheck disable=SC2046
start p2 5 "$BIN" peer 2 $(peer_args 2)
P2=${PIDS[-1]}
wait_for p1 'connected to tracker' "$START_TIMEOUT" "$P1"
wait_for p2 'connected to tracker' "$START_TIMEOUT" "$P2"

echo "share $NAME" >&4
wait_for p1 "^shared $NAME " "$SHARE_TIMEOUT" "$P1"

# PERF_OUT=FILE records both peers with `perf record -g` for the length of the transfer.
if [[ -n ${PERF_OUT:-} ]]; then
    perf record -g -F 1999 -p "$P1,$P2" -o "$PERF_OUT" >"$DIR/perf.log" 2>&1 &
    PERF_PID=$!
    sleep 0.5 # perf attaches asynchronously; give it a moment before the transfer starts
fi
read -r GET_U0 GET_S0 < <(cpu_ticks "$P2")
read -r SERVE_U0 SERVE_S0 < <(cpu_ticks "$P1")
started=$(date +%s%N)
echo "get $NAME" >&5
wait_for p2 "^downloaded $NAME " "$GET_TIMEOUT" "$P2"
ended=$(date +%s%N)
if [[ -n ${PERF_PID:-} ]]; then
    kill -INT "$PERF_PID" && wait "$PERF_PID" || true
    echo "e2e: perf data of both peers in $PERF_OUT (peer 1 pid $P1, peer 2 pid $P2)"
fi
read -r GET_U1 GET_S1 < <(cpu_ticks "$P2")
read -r SERVE_U1 SERVE_S1 < <(cpu_ticks "$P1")
HZ=$(getconf CLK_TCK)

RSS_GET=$(peak_rss_kib "$P2")
RSS_SERVE=$(peak_rss_kib "$P1")
cmp -s "$DIR/p1/data/$NAME" "$DIR/p2/downloads/$NAME" || fail "peer 2's copy differs from peer 1's file"

ns=$((ended - started))
awk -v bytes="$BYTES" -v ns="$ns" -v get="$RSS_GET" -v serve="$RSS_SERVE" -v label="$LABEL" \
    -v gu=$((GET_U1 - GET_U0)) -v gs=$((GET_S1 - GET_S0)) -v su=$((SERVE_U1 - SERVE_U0)) -v ss=$((SERVE_S1 - SERVE_S0)) -v hz="$HZ" 'BEGIN {
    s = ns / 1e9
    printf "e2e: %s in %.3f s (get -> downloaded line, polled every 10 ms): %.1f MB/s (%.1f MiB/s)\n", label, s, bytes / s / 1e6, bytes / s / 1048576
    printf "e2e: peak RSS  downloading peer %.1f MiB, serving peer %.1f MiB\n", get / 1024, serve / 1024
    printf "e2e: CPU time  downloading peer %.2f s user + %.2f s sys, serving peer %.2f s user + %.2f s sys (%.2f cores busy)\n", \
        gu / hz, gs / hz, su / hz, ss / hz, (gu + gs + su + ss) / hz / s
}'
echo "e2e: peer 2 said: $(grep -m1 "^downloaded $NAME " "$DIR/p2.out" | sed 's/; verified id.*//')"
echo "exit" >&4
echo "exit" >&5
