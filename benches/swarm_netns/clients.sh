# shellcheck shell=bash
# The processes of one scenario of benches/swarm_netns.sh (sourced, not run), and the two
# clients behind the same seven functions, so a scenario reads the same for p2pq and aria2:
#
#   CLIENT_tracker             start the client's tracker on host t
#   CLIENT_seeders HOST...     start holders of the whole file; return once the tracker lists all
#   CLIENT_ready HOST...       get downloaders ready (p2pq: peers up and registered; aria2: folders)
#   CLIENT_go HOST...          start every download at once
#   CLIENT_done HOST           true once HOST has the whole file under its final name
#   CLIENT_failed HOST         prints why HOST's download failed, if it did (else false)
#   CLIENT_path HOST           where HOST's download lands
#
# From the caller: SC (this scenario's folder), SCENARIO (its label), NAME and ORIG (the file),
# BIN (p2pq), BT (bt.py), TORRENT, CERTS, ARIA2_HOOK, host_ip, and topology.sh's in_host.

PIDS=()
declare -A FD PID
# Seconds allowed for a process to come up and reach its tracker, and for a tracker to list a
# new holder (p2pq tells it at once; aria2 announces on start).
START_TIMEOUT=15
LIST_TIMEOUT=20

# start LABEL HOST CMD...: runs CMD in HOST's namespace with stdin from a fifo held open here
# (FD[LABEL], so it reads commands and never sees the end of input), output in SC/LABEL.{out,err}.
# `ip netns exec` execs CMD, so the pid kept is CMD's own.
start() {
    local label=$1 host=$2 fd
    shift 2
    mkfifo "$SC/$label.in"
    ip netns exec "$NS_PREFIX$host" "$@" <"$SC/$label.in" >"$SC/$label.out" 2>"$SC/$label.err" &
    PIDS+=($!)
    PID[$label]=$!
    exec {fd}>"$SC/$label.in"
    FD[$label]=$fd
}

# say LABEL LINE: one command line to LABEL's stdin.
say() {
    echo "$2" >&"${FD[$1]}"
}

# Ends every process of this scenario: end of input first (a p2pq peer then leaves, telling
# its tracker), then TERM, then KILL (stop_pids).
stop_all() {
    local fd
    for fd in "${FD[@]}"; do exec {fd}>&-; done
    FD=()
    stop_pids "${PIDS[@]}"
    PIDS=()
}

# fail REASON: one clear line, the last lines of every error log, and the scenario ends.
fail() {
    echo "FAILED $SCENARIO: $*"
    local f
    for f in "$SC"/*.err; do
        [[ -s $f ]] && { echo "--- ${f##*/}"; tail -n 5 "$f"; }
    done
    exit 1
}

# wait_line LABEL PATTERN TIMEOUT_S: until SC/LABEL.out has a line matching PATTERN (grep -E);
# fails if LABEL exits or prints `error:` first, or after the timeout.
wait_line() {
    local label=$1 pattern=$2 deadline=$((SECONDS + $3))
    until grep -qE -- "$pattern" "$SC/$label.out"; do
        grep -q '^error:' "$SC/$label.err" && fail "$label: $(grep -m1 '^error:' "$SC/$label.err")"
        kill -0 "${PID[$label]}" 2>/dev/null || fail "$label exited while waiting for '$pattern'"
        ((SECONDS < deadline)) || fail "$label: no '$pattern' within $3 s"
        sleep 0.05
    done
}

# alive LABEL...: fails if one of them has exited.
alive() {
    local label
    for label; do kill -0 "${PID[$label]}" 2>/dev/null || fail "$label exited (see ${label}.err)"; done
}

# ---- p2pq: a tracker and one `p2pq peer` per host, each reading commands from its fifo ----

P2PQ_PORT=6771

p2pq_tracker() {
    start tracker t "$BIN" tracker --listen "$(host_ip t):$P2PQ_PORT" --certs "$CERTS" --state-dir "$SC/tracker"
    wait_line tracker '^tracker listening on' "$START_TIMEOUT"
}

# Starts peer HOST on its namespace's address (port 0: any free one) and waits until it is
# registered; checks it serves on that address, not on loopback or another.
p2pq_peer_up() {
    local host=$1
    mkdir -p "$SC/$host/data" "$SC/$host/dl"
    start "$host" "$host" "$BIN" peer "$host" --no-dht --tracker "$(host_ip t):$P2PQ_PORT" --certs "$CERTS" \
        --listen "$(host_ip "$host"):0" --data-dir "$SC/$host/data" --download-dir "$SC/$host/dl" \
        --state-dir "$SC/$host/state"
}

p2pq_wait_registered() {
    local host
    for host; do
        wait_line "$host" '^connected to tracker' "$START_TIMEOUT"
        grep -qE "^peer $host listening on $(host_ip "$host" | sed 's/\./\\./g'):[0-9]+ " "$SC/$host.out" ||
            fail "$host does not serve on $(host_ip "$host"): $(head -n 1 "$SC/$host.out")"
    done
}

# p2pq_holders: how many holders the tracker lists for NAME now (asks `files --json` and
# reads the one line it answers; 0 if no answer comes within 5 s).
p2pq_holders() {
    local before deadline=$((SECONDS + 5))
    before=$(wc -l <"$SC/tracker.out")
    say tracker "files --json"
    until (($(wc -l <"$SC/tracker.out") > before)); do
        ((SECONDS < deadline)) || { echo 0; return; }
        sleep 0.05
    done
    sed -n "$((before + 1))p" "$SC/tracker.out" | python3 -c '
import json, sys
files = json.loads(sys.stdin.readline())
print(max([len(f["holders"]) for f in files if f["name"] == sys.argv[1]] or [0]))' "$NAME"
}

p2pq_seeders() {
    local host deadline=$((SECONDS + LIST_TIMEOUT))
    for host; do
        mkdir -p "$SC/$host/data"
        ln "$ORIG" "$SC/$host/data/$NAME" # p2pq only reads what it shares
        p2pq_peer_up "$host"
    done
    p2pq_wait_registered "$@"
    for host; do say "$host" "share $NAME"; done
    for host; do wait_line "$host" "^shared $NAME " "$START_TIMEOUT"; done
    until (($(p2pq_holders) >= $#)); do
        ((SECONDS < deadline)) || fail "the tracker lists fewer than $# holders of $NAME after $LIST_TIMEOUT s"
        sleep 0.2
    done
}

p2pq_ready() {
    local host
    for host; do p2pq_peer_up "$host"; done
    p2pq_wait_registered "$@"
}

p2pq_go() {
    local host
    for host; do say "$host" "get $NAME"; done
}

# p2pq writes a download under dl/.p2pq-partial and links it to its name once verified.
p2pq_path() {
    echo "$SC/$1/dl/$NAME"
}

p2pq_done() {
    [[ -f $SC/$1/dl/$NAME ]]
}

# Prints why HOST's download failed, if it did: its `error:` line, or its exit.
p2pq_failed() {
    grep -m1 '^error:' "$SC/$1.err" && return 0
    kill -0 "${PID[$1]}" 2>/dev/null && return 1
    echo "peer exited"
}

# ---- aria2: bt.py's tracker, and one aria2c per host with the .torrent ----

BT_PORT=6969
BT_LISTEN_PORT=6881
# Every aria2c: no DHT or local discovery (the tracker and peer exchange only, like p2pq's
# tracker), seeding with no ratio or time limit until the scenario stops it, no upload cap, a
# short announce interval, no preallocation; --stop-with-process ends it if this script dies.
ARIA2_OPTS=(
    --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=true
    --seed-ratio=0.0 --max-upload-limit=0 --max-overall-upload-limit=0 --bt-max-peers=55
    --bt-tracker-interval=5 --file-allocation=none --listen-port="$BT_LISTEN_PORT"
    --disable-ipv6=true --summary-interval=0 --show-console-readout=false --console-log-level=warn --enable-color=false
    --auto-file-renaming=false --stop-with-process="$$"
)

aria2_tracker() {
    start tracker t python3 "$BT" tracker --listen "$(host_ip t):$BT_PORT" --interval 5
    wait_line tracker '^tracker listening on' "$START_TIMEOUT"
}

# aria2_start HOST OPTION...: aria2c on HOST with the torrent, saving into SC/HOST/dl; the
# completion hook (ARIA2_HOOK) touches SC/HOST/done.
aria2_start() {
    local host=$1
    shift
    start "$host" "$host" env P2PQB_DONE="$SC/$host/done" aria2c "${ARIA2_OPTS[@]}" \
        --dir="$SC/$host/dl" "$@" "$TORRENT"
}

aria2_seeders() {
    local host ip deadline=$((SECONDS + LIST_TIMEOUT))
    for host; do
        mkdir -p "$SC/$host/dl"
        cp --reflink=auto "$ORIG" "$SC/$host/dl/$NAME" # aria2 opens its files read-write
        aria2_start "$host" --bt-seed-unverified=true
    done
    for host; do
        ip=$(host_ip "$host" | sed 's/\./\\./g')
        until grep -qE "from $ip:$BT_LISTEN_PORT left=0 " "$SC/tracker.out"; do
            alive "$host"
            ((SECONDS < deadline)) || fail "seeder $host did not announce to the tracker within $LIST_TIMEOUT s"
            sleep 0.05
        done
    done
}

aria2_ready() {
    local host
    for host; do mkdir -p "$SC/$host/dl"; done
}

aria2_go() {
    local host
    for host; do aria2_start "$host" --on-bt-download-complete="$ARIA2_HOOK"; done
}

aria2_path() {
    echo "$SC/$1/dl/$NAME"
}

# aria2 writes in place; its hook runs once every piece is verified (SHA-1), before seeding.
aria2_done() {
    [[ -e $SC/$1/done ]]
}

# aria2c keeps running (seeding) once done, so an exit before that is a failure.
aria2_failed() {
    kill -0 "${PID[$1]}" 2>/dev/null && return 1
    echo "aria2c exited: $(tail -n 1 "$SC/$1.out" "$SC/$1.err" | grep -v '^==>' | grep . | tail -n 1)"
}
