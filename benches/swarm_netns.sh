#!/usr/bin/env bash
# A swarm on emulated links: one Linux network namespace per host, every host's uplink capped
# at R with tc tbf, and the same scenarios run for p2pq and, in the same run on the same
# links, for a real BitTorrent client (aria2) with a tracker of our own (swarm_netns/bt.py).
# Needs root, so it is not run in CI.
#
#   flash crowd    1 seeder + N leechers (--leechers, default 8 and 16) all start at once:
#                  the last leecher's time with the whole, correct file over size/R (the time
#                  one copy takes across one uplink), and the bytes the seeder's uplink carried
#                  over the file's size (the crowd's own upload too). Leechers keep serving
#                  until the last one is done.
#   multi-source   K holders (--holders, default 4), one uncapped downloader: its rate over K·R.
#
#   benches/swarm_netns.sh [--size MIB] [--rate MBIT] [--leechers N[,N...]] [--holders K]
#                          [--clients p2pq,aria2]
#
# Hosts, links and counters: swarm_netns/topology.sh; the processes: swarm_netns/clients.sh.
# Everything lives in a temp folder (removed on exit; KEEP=1 keeps its logs) and in namespaces
# named p2pqb-*, all removed on any exit, and at the start if a killed run left some.
# P2PQ_BIN=PATH runs that binary instead of building target/release/p2pq.
set -euo pipefail
export LC_ALL=C

SIZE_MIB=64 RATE_MBIT=20 LEECHERS=8,16 HOLDERS=4 CLIENTS=p2pq,aria2
usage() {
    sed -n '/^#   benches/,/^#  *\[--clients/p' "$0" | sed 's/^# *//' >&2
    exit 2
}
while (($#)); do
    case $1 in
        --size) SIZE_MIB=${2:?} ;;
        --rate) RATE_MBIT=${2:?} ;;
        --leechers) LEECHERS=${2:?} ;;
        --holders) HOLDERS=${2:?} ;;
        --clients) CLIENTS=${2:?} ;;
        *) usage ;;
    esac
    shift 2 || usage
done
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ && $HOLDERS =~ ^[1-9][0-9]?$ && $LEECHERS =~ ^[1-9][0-9]?(,[1-9][0-9]?)*$ ]] || usage
[[ $RATE_MBIT =~ ^[0-9]+(\.[0-9]+)?$ && $CLIENTS =~ ^(p2pq|aria2)(,(p2pq|aria2))?$ ]] || usage
IFS=, read -ra LEECHER_COUNTS <<<"$LEECHERS"
IFS=, read -ra CLIENT_LIST <<<"$CLIENTS"
MAX_N=$(printf '%s\n' "${LEECHER_COUNTS[@]}" | sort -n | tail -n 1)
RATE_KBIT=$(awk -v r="$RATE_MBIT" 'BEGIN { printf "%d", r * 1000 }')
((RATE_KBIT >= 100)) || { echo "swarm_netns: --rate must be at least 0.1 Mbit/s" >&2; exit 2; }
BYTES=$((SIZE_MIB << 20))
NAME=swarm.bin
# One copy across one capped uplink, in microseconds: the unit of every flash-crowd figure.
ONE_COPY_US=$((BYTES * 8 * 1000 / RATE_KBIT))

# ---- refuse early, before anything is written ----
die() {
    echo "swarm_netns: $*" >&2
    exit 1
}
((EUID == 0)) || die "needs root (network namespaces, veth, tc): run it with sudo"
ip netns list >/dev/null 2>&1 || die "'ip netns' is missing or fails: install iproute2"
command -v tc >/dev/null || die "'tc' is missing: install iproute2"
command -v python3 >/dev/null || die "python3 is missing (the BitTorrent tracker and torrent maker)"
[[ " ${CLIENT_LIST[*]} " == *" aria2 "* ]] && { command -v aria2c >/dev/null || die "aria2c is missing: apt-get install -y aria2 (or --clients p2pq)"; }
((BASH_VERSINFO[0] >= 5)) || die "needs bash 5 (EPOCHREALTIME)"

TMPBASE=${TMPDIR:-/tmp}
# At most one scenario's files at a time: the original, and the larger of a flash crowd's N
# copies and a multi-source's K holders' copies plus the download; then 64 MiB to spare.
COPIES=$((MAX_N > HOLDERS + 1 ? MAX_N : HOLDERS + 1))
NEED=$((BYTES * (1 + COPIES) + (64 << 20)))
FREE=$(($(df -Pk "$TMPBASE" | awk 'NR == 2 { print $4 }') << 10))
((FREE >= NEED)) || die "$TMPBASE has $((FREE >> 20)) MiB free, the run needs $((NEED >> 20)) MiB (set TMPDIR elsewhere, or a smaller --size)"

HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
if [[ -n ${P2PQ_BIN:-} ]]; then
    BIN=$P2PQ_BIN
else
    cargo build --release --quiet --bin p2pq
    BIN=$PWD/target/release/p2pq
fi
BT=$HERE/swarm_netns/bt.py
# shellcheck source=swarm_netns/topology.sh
source "$HERE/swarm_netns/topology.sh"
# shellcheck source=swarm_netns/clients.sh
source "$HERE/swarm_netns/clients.sh"

# One run at a time: a second one would take the first one's namespaces for stale.
exec {LOCK_FD}>/run/p2pqb-swarm.lock
flock -n "$LOCK_FD" || die "another swarm_netns run holds /run/p2pqb-swarm.lock"
remove_namespaces # a killed run's leftovers, if any, and its temp folder unless KEEP=1 kept it
for stale in "$TMPBASE"/p2pqb-swarm.*; do [[ -e $stale/KEPT ]] || rm -rf "$stale"; done

RUN=$(mktemp -d "$TMPBASE/p2pqb-swarm.XXXXXX")
SCENARIO_PID=
cleanup() {
    local status=$?
    set +e # every step runs, whatever the one before did
    trap - INT TERM
    ((status == 130)) && echo "swarm_netns: interrupted; removing what it made" >&2
    [[ -n $SCENARIO_PID ]] && { kill "$SCENARIO_PID" 2>/dev/null; wait "$SCENARIO_PID" 2>/dev/null; }
    remove_namespaces
    if [[ ${KEEP:-0} == 1 ]]; then
        find "$RUN" -type f ! -name '*.out' ! -name '*.err' -delete
        touch "$RUN/KEPT"
        echo "kept the logs in $RUN" >&2
    else
        rm -rf "$RUN"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- hosts: t (trackers, .1) and d (multi-source downloader, .2) uncapped; h1..hM capped ----
host_ip() {
    case $1 in
        t) echo "$SUBNET.1" ;;
        d) echo "$SUBNET.2" ;;
        h*) echo "$SUBNET.$((10 + ${1#h}))" ;;
    esac
}
CAPPED=$((MAX_N + 1 > HOLDERS ? MAX_N + 1 : HOLDERS))
make_bridge
add_host t 1 0
add_host d 2 0
for i in $(seq "$CAPPED"); do add_host "h$i" $((10 + i)) "$RATE_KBIT"; done

machine() {
    echo "swarm_netns: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1)), Linux $(uname -r)"
    echo "swarm_netns: p2pq $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)'), $(aria2c --version 2>/dev/null | head -n 1 || echo 'no aria2')"
    echo "swarm_netns: ${SIZE_MIB} MiB file, uplinks ${RATE_MBIT} Mbit/s (tbf burst $TBF_BURST, queue $TBF_LATENCY), size/R = $(awk -v us="$ONE_COPY_US" 'BEGIN { printf "%.1f", us / 1e6 }') s; $CAPPED capped hosts"
}
machine

echo "swarm_netns: generating the file in $RUN ..."
ORIG=$RUN/$NAME
head -c "$BYTES" /dev/urandom >"$ORIG"
SUM=$(sha256sum "$ORIG" | cut -d' ' -f1)
CERTS=$RUN/certs
TORRENT=$RUN/$NAME.torrent
python3 "$BT" torrent "$ORIG" "http://$(host_ip t):$BT_PORT/announce" "$TORRENT" >/dev/null
ARIA2_HOOK=$RUN/aria2-done.sh
# shellcheck disable=SC2016 # $P2PQB_DONE is for the hook to expand
printf '#!/bin/sh\n: >"$P2PQB_DONE"\n' >"$ARIA2_HOOK"
chmod +x "$ARIA2_HOOK"
RESULTS=$RUN/results.tsv
: >"$RESULTS"

now_us() { NOW=${EPOCHREALTIME/./}; }

# wait_done CLIENT DEADLINE_US HOST...: polls every 0.1 s until each HOST has the file or has
# failed (its download ended in an error, or its process exited); sets DONE_US[HOST] to when
# the file was seen and FAILED[HOST] to the reason. The others go on after one fails, so the
# figures still come; it fails at the deadline, or when every download failed.
declare -A DONE_US FAILED
wait_done() {
    local client=$1 deadline=$2 host left reason
    shift 2
    DONE_US=() FAILED=()
    while :; do
        left=0
        now_us
        for host; do
            [[ -n ${DONE_US[$host]:-}${FAILED[$host]:-} ]] && continue
            if "${client}_done" "$host"; then
                DONE_US[$host]=$NOW
            elif reason=$("${client}_failed" "$host"); then
                FAILED[$host]=$reason
                echo "$SCENARIO: $host failed after $(((NOW - T0) / 1000000)) s: $reason"
            else
                left=$((left + 1))
            fi
        done
        ((left)) || break
        ((NOW < deadline)) || fail "$left of $# downloads unfinished at the deadline, $(((deadline - T0) / 1000000)) s"
        sleep 0.1
    done
    ((${#DONE_US[@]})) || fail "every download failed"
}

# failures: "" if every download arrived, else "F of N failed (HOST: reason)".
failures() {
    local host
    (($# == 0 || ${#FAILED[@]} == 0)) && return 0
    for host; do
        [[ -n ${FAILED[$host]:-} ]] && { echo "${#FAILED[@]} of $# failed ($host: ${FAILED[$host]})"; break; }
    done
    return 0
}

# verify HOST...: every download that arrived is byte for byte the original (sha256).
verify() {
    local host
    for host; do
        [[ -n ${FAILED[$host]:-} ]] && continue
        [[ $(sha256sum "$("${CLIENT}_path" "$host")" | cut -d' ' -f1) == "$SUM" ]] || fail "$host's copy differs from the original"
    done
}

# sent_bytes HOST...: bytes their uplinks carried so far, summed.
sent_bytes() {
    local host total=0 sent _
    for host; do
        read -r sent _ < <(uplink_counters "$host")
        total=$((total + sent))
    done
    echo "$total"
}

# record SCENARIO CLIENT SECONDS MEASURE VALUE SEEDER_UP CROWD_UP NOTE: one row of the summary.
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

flash_crowd() {
    local n=$1 leechers=() host
    for host in $(seq 2 $((n + 1))); do leechers+=("h$host"); done
    "${CLIENT}_tracker"
    "${CLIENT}_seeders" h1
    "${CLIENT}_ready" "${leechers[@]}"
    local seed0 crowd0 seed1 crowd1 drop0 drop1
    read -r seed0 drop0 < <(uplink_counters h1)
    crowd0=$(sent_bytes "${leechers[@]}")
    now_us
    T0=$NOW
    "${CLIENT}_go" "${leechers[@]}"
    # Twice what the seeder needs to send every leecher its own copy, and a minute to spare.
    wait_done "$CLIENT" $((T0 + 60000000 + 2 * n * ONE_COPY_US)) "${leechers[@]}"
    read -r seed1 drop1 < <(uplink_counters h1)
    crowd1=$(sent_bytes "${leechers[@]}")
    verify "${leechers[@]}"
    local failed first=$NOW last=0
    failed=$(failures "${leechers[@]}")
    for host in "${!DONE_US[@]}"; do
        if ((DONE_US[$host] < first)); then first=${DONE_US[$host]}; fi
        if ((DONE_US[$host] > last)); then last=${DONE_US[$host]}; fi
    done
    awk -v c="$CLIENT" -v n="$n" -v f=$((first - T0)) -v l=$((last - T0)) -v one="$ONE_COPY_US" -v b="$BYTES" \
        -v s=$((seed1 - seed0)) -v cr=$((crowd1 - crowd0)) -v dr=$((drop1 - drop0)) -v res="$RESULTS" -v failed="$failed" 'BEGIN {
        printf "flash crowd N=%d %-5s last finisher %.1f s = %.2f x size/R (first %.1f s); seeder uploaded %.2f x size (%d packets dropped at its cap), leechers %.2f x size%s\n", \
            n, c, l / 1e6, l / one, f / 1e6, s / b, dr, cr / b, failed == "" ? "" : "; FAILED: " failed
        note = failed == "" ? "" : "FAILED " substr(failed, 1, index(failed, " failed") - 1)
        printf "flash crowd N=%d\t%s\t%.1f\tlast / (size/R)\t%.2f\t%.2f\t%.2f\t%s\n", n, c, l / 1e6, l / one, s / b, cr / b, note >> res
    }'
}

multi_source() {
    local k=$1 holders=() host
    for host in $(seq "$k"); do holders+=("h$host"); done
    "${CLIENT}_tracker"
    "${CLIENT}_seeders" "${holders[@]}"
    "${CLIENT}_ready" d
    local sent=() i
    for host in "${holders[@]}"; do sent+=("$(sent_bytes "$host")"); done
    now_us
    T0=$NOW
    "${CLIENT}_go" d
    # Ten times the ideal K·R, and a minute to spare.
    wait_done "$CLIENT" $((T0 + 60000000 + 10 * ONE_COPY_US / k)) d
    verify d
    local shares=""
    for i in "${!holders[@]}"; do
        shares+=" $((($(sent_bytes "${holders[$i]}") - sent[i]) >> 20))"
    done
    awk -v c="$CLIENT" -v k="$k" -v t=$((DONE_US[d] - T0)) -v one="$ONE_COPY_US" -v b="$BYTES" -v r="$RATE_MBIT" \
        -v shares="$shares" -v res="$RESULTS" 'BEGIN {
        rate = b * 8 / (t / 1e6) / 1e6
        printf "multi-source K=%d %-5s %.1f s, %.1f Mbit/s = %.2f x K*R; holders sent%s MiB\n", k, c, t / 1e6, rate, rate / (k * r), shares
        printf "multi-source K=%d\t%s\t%.1f\trate / (K*R)\t%.2f\t-\t-\t\n", k, c, t / 1e6, rate / (k * r) >> res
    }'
}

# run_scenario CLIENT FUNCTION ARG: the scenario in a subshell of its own, whose exit (however
# it ends) stops its processes and removes its files; a failure is recorded and the run goes on.
run_scenario() {
    local label="flash crowd N=$3"
    [[ $2 == multi_source ]] && label="multi-source K=$3"
    CLIENT=$1
    SCENARIO="$label $1"
    SC=$RUN/$1-$2-$3
    mkdir -p "$SC"
    (
        trap 'set +e; stop_all; find "$SC" -type f ! -name "*.out" ! -name "*.err" -delete; [[ ${KEEP:-0} == 1 ]] || rm -rf "$SC"' EXIT
        trap 'exit 130' INT TERM
        "$2" "$3"
    ) &
    SCENARIO_PID=$!
    local status=0
    wait "$SCENARIO_PID" || status=$?
    SCENARIO_PID=
    ((status == 130)) && exit 130
    ((status == 0)) || record "$label" "$CLIENT" - - - - - FAILED
}

echo "swarm_netns: flash crowd and multi-source, each for ${CLIENTS//,/ then }"
for n in "${LEECHER_COUNTS[@]}"; do
    for client in "${CLIENT_LIST[@]}"; do run_scenario "$client" flash_crowd "$n"; done
done
for client in "${CLIENT_LIST[@]}"; do run_scenario "$client" multi_source "$HOLDERS"; done

echo
machine
{
    printf 'scenario\tclient\tseconds\tmeasure\tvalue\tseeder up/size\tleechers up/size\tnote\n'
    cat "$RESULTS"
} | column -t -s $'\t'
! grep -q FAILED "$RESULTS"
