# shellcheck shell=bash
# Hosts on emulated links for benches/swarm_netns.sh (sourced, not run): one network namespace
# per host, all joined by one bridge in a namespace of its own, each host's uplink capped.
#
#   host namespace p2pqb-NAME        bridge namespace p2pqb-br
#   eth0 10.77.0.X/24 ── veth ── a-NAME ─ b-NAME (bridge) ─ u-NAME ══ tbf ══ veth ── d-NAME ─ br0
#
# The cap sits on u-NAME, one hop past the host, the way a home router's uplink queue sits
# past the computer: the host's own sockets see no back-pressure from it (a veth hands the
# packet over and forgets its sender), so a sender that outruns the link loses packets in that
# queue, TCP and QUIC alike. Traffic towards a host (br0 → d-NAME → u-NAME → a-NAME) is not
# capped. An uncapped host's veth goes straight into br0. Nothing is made in the root
# namespace, so no name or address here can clash with the machine's own.
#
# Counters: u-NAME's qdisc counts the bytes that crossed the cap (Ethernet frames, headers
# included) and the packets its queue dropped.

NS_PREFIX=p2pqb-
BRIDGE_NS=${NS_PREFIX}br
SUBNET=10.77.0
# The cap's token bucket: 16 KiB of burst (a few full-size packets, as a modem allows) and a
# drop-tail queue of 50 ms of the rate, the same as src/net/linksim.rs gives the links bench.
TBF_BURST=16kb
TBF_LATENCY=50ms

# Runs "$@" in host NAME's namespace.
in_host() {
    local name=$1
    shift
    ip netns exec "$NS_PREFIX$name" "$@"
}

# Every namespace whose name starts with the prefix: ours, from this run or a stale one.
our_namespaces() {
    ip netns list | awk -v p="$NS_PREFIX" 'index($1, p) == 1 { print $1 }'
}

# Removes every namespace of ours, first ending the processes inside them (nothing else can
# be in them): TERM, up to 5 s to leave, then KILL.
remove_namespaces() {
    local ns pids=() pid
    for ns in $(our_namespaces); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
    done
    stop_pids "${pids[@]}"
    for ns in $(our_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
}

# TERM to each pid, up to 5 s for all to leave, then KILL to any left.
stop_pids() {
    (($#)) || return 0
    kill "$@" 2>/dev/null || true
    local _ pid alive
    for _ in $(seq 50); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    kill -9 "$@" 2>/dev/null || true
}

# Runs one command in the bridge namespace.
in_bridge() {
    ip -n "$BRIDGE_NS" "$@"
}

# A bridge that forwards at once: no spanning tree, no learning delay.
add_bridge_device() {
    in_bridge link add "$1" type bridge stp_state 0 forward_delay 0
    in_bridge link set "$1" up
}

# The namespace holding br0, which every host's link ends in.
make_bridge() {
    ip netns add "$BRIDGE_NS"
    in_bridge link set lo up
    ip netns exec "$BRIDGE_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    add_bridge_device br0
}

# add_host NAME OCTET RATE_KBIT: namespace p2pqb-NAME with eth0 at 10.77.0.OCTET, its uplink
# capped at RATE_KBIT kbit/s (0: uncapped). IPv6 is off, so its chatter is not counted.
add_host() {
    local name=$1 octet=$2 kbit=$3 ns=$NS_PREFIX$1
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    in_bridge link add "a-$name" type veth peer name eth0 netns "$ns"
    if ((kbit > 0)); then
        add_bridge_device "b-$name"
        in_bridge link add "u-$name" type veth peer name "d-$name"
        in_bridge link set "a-$name" master "b-$name"
        in_bridge link set "u-$name" master "b-$name"
        in_bridge link set "d-$name" master br0
        tc -n "$BRIDGE_NS" qdisc add dev "u-$name" root tbf rate "${kbit}kbit" burst "$TBF_BURST" latency "$TBF_LATENCY"
        in_bridge link set "u-$name" up
        in_bridge link set "d-$name" up
    else
        in_bridge link set "a-$name" master br0
    fi
    in_bridge link set "a-$name" up
    ip -n "$ns" addr add "$SUBNET.$octet/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

# uplink_counters NAME: "SENT_BYTES DROPPED_PACKETS" of host NAME's capped uplink so far.
uplink_counters() {
    tc -n "$BRIDGE_NS" -s qdisc show dev "u-$1" |
        awk '/Sent/ { gsub(/[(,]/, " "); for (i = 1; i <= NF; i++) { if ($i == "Sent") s = $(i+1); if ($i == "dropped") d = $(i+1) } }
             END { print s + 0, d + 0 }'
}
