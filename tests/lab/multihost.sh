#!/usr/bin/env bash
# A multi-host lab on one machine: extra Docker engines, each in its own network namespace (with its own
# hostname, data root and socket), joined by veth pairs to one bridge, forming one swarm. Needs root,
# iproute2, nsenter/unshare (util-linux) and the machine's dockerd binary.
#
#   multihost.sh up [N] [IMAGE…]   start N engines (default 3) and load the images into each (default:
#                                  every regbox/bitcoind image of the machine's engine; `none`: no
#                                  image); prints each engine's DOCKER_HOST
#   multihost.sh down              remove everything `up` made, whatever state it is in
#   multihost.sh restart N         stop engine hN (SIGTERM, as a host's shutdown does; its containers
#                                  stop with it) and start it again on the same data root
#
# With REGBOX_LAB_SWARM=no, `up` leaves the engines out of any swarm (for `regbox swarm init`).
#
# What this machine needs, learned the hard way:
# - `ip netns exec` mounts a fresh /sys, hiding the cgroup mounts ("Devices cgroup isn't mounted"):
#   the engines enter their namespace with `nsenter --net` instead, keeping the machine's mounts.
# - The machine's /etc/docker/daemon.json would clash with the flags (data-root, storage driver): each
#   engine gets an empty config file of its own. Storage is vfs (no overlay on overlay).
# - The machine's engine sets the FORWARD policy to DROP and bridged frames go through iptables, so
#   traffic between the namespaces is dropped until DOCKER-USER accepts the lab bridge.
set -euo pipefail

LAB=regbox-lab
BRIDGE=${LAB}0
SUBNET_PREFIX=${REGBOX_LAB_NET:-10.99.0}
STATE=${REGBOX_LAB_DIR:-/var/lib/regbox-lab}
RUN=/run/regbox-lab

engine() { echo "unix://$RUN/h$1/docker.sock"; }
on() { local n=$1; shift; DOCKER_HOST=$(engine "$n") docker "$@"; }

up() {
    local count=${1:-3}
    shift || true
    local images=("$@")
    if [ ${#images[@]} -eq 0 ]; then
        mapfile -t images < <(docker images --format '{{.Repository}}:{{.Tag}}' regbox/bitcoind)
    elif [ "${images[*]}" = none ]; then
        images=()
    fi
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        echo "multihost: a lab is up already ($BRIDGE exists); run \`$0 down\` first" >&2
        exit 2
    fi
    if ip route | grep -q "^$SUBNET_PREFIX.0/24"; then
        echo "multihost: $SUBNET_PREFIX.0/24 is routed already; set REGBOX_LAB_NET to another /24 prefix" >&2
        exit 2
    fi
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET_PREFIX.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    iptables -I DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    for n in $(seq 1 "$count"); do
        start_engine "$n"
    done
    for n in $(seq 1 "$count"); do
        wait_engine "$n"
        for image in ${images[@]+"${images[@]}"}; do
            docker save "$image" | on "$n" load -q >/dev/null
        done
    done
    if [ "${REGBOX_LAB_SWARM:-yes}" != no ]; then
        on 1 swarm init --advertise-addr "$SUBNET_PREFIX.11" >/dev/null
        local token
        token=$(on 1 swarm join-token -q manager)
        for n in $(seq 2 "$count"); do
            on "$n" swarm join --token "$token" "$SUBNET_PREFIX.11:2377" >/dev/null
        done
    fi
    for n in $(seq 1 "$count"); do
        echo "h$n DOCKER_HOST=$(engine "$n") address $SUBNET_PREFIX.1$n"
    done
}

start_engine() {
    local n=$1 ns=$LAB-h$1
    ip netns add "$ns"
    ip link add "rbl${n}h" type veth peer name "rbl${n}n"
    ip link set "rbl${n}n" netns "$ns"
    ip link set "rbl${n}h" master "$BRIDGE" up
    ip netns exec "$ns" ip addr add "$SUBNET_PREFIX.1$n/24" dev "rbl${n}n"
    ip netns exec "$ns" ip link set "rbl${n}n" up
    ip netns exec "$ns" ip link set lo up
    mkdir -p "$STATE/h$n" "$RUN/h$n"
    echo '{}' >"$STATE/h$n/daemon.json"
    launch_engine "$n"
}

launch_engine() {
    local n=$1 ns=$LAB-h$1
    # Its own hostname (swarm names nodes by it), the machine's mounts, the namespace's network.
    nsenter --net="/var/run/netns/$ns" unshare --uts sh -c "hostname $ns && exec $(command -v dockerd) \
        --config-file $STATE/h$n/daemon.json --data-root $STATE/h$n/data --exec-root $RUN/h$n/exec \
        --pidfile $RUN/h$n/docker.pid -H $(engine "$n") --storage-driver vfs --bridge none" \
        >>"$STATE/h$n/dockerd.log" 2>&1 </dev/null &
}

restart() {
    local n=$1 pid
    pid=$(cat "$RUN/h$n/docker.pid")
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "multihost: engine h$n did not stop within 30 s" >&2
        exit 1
    fi
    launch_engine "$n"
    wait_engine "$n"
}

wait_engine() {
    for _ in $(seq 100); do
        on "$1" info >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "multihost: engine h$1 did not start; its log: $STATE/h$1/dockerd.log" >&2
    tail -5 "$STATE/h$1/dockerd.log" >&2
    exit 1
}

down() {
    for sock in "$RUN"/h*/docker.sock; do
        [ -S "$sock" ] || continue
        local dir n
        dir=$(dirname "$sock")
        n=${dir##*/h}
        on "$n" ps -aq | xargs -r -n 50 sh -c "DOCKER_HOST=$(engine "$n") docker rm -f \"\$@\" >/dev/null" _ || true
        on "$n" swarm leave --force >/dev/null 2>&1 || true
        kill -TERM "$(cat "$dir/docker.pid")" 2>/dev/null || true
    done
    for pidfile in "$RUN"/h*/docker.pid; do
        [ -f "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$LAB-h" || true); do
        ip netns del "$ns"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    while iptables -D DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
    rm -rf "$STATE" "$RUN"
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    restart) restart "${2:?which engine: restart N}" ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
