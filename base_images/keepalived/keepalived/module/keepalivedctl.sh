#!/bin/sh
# keepalivedctl.sh render|launch|status|stop|info: what the module's actions run.
#
# The environment (set by the orchestrator on the Swarm service, dragonball.orchestrator
# .keepalived): DRAGONBALL_KEEPALIVED_CONF the configuration, base64; DRAGONBALL_NODE this
# server's hostname (keepalived's config id: the lines '@<hostname> ...' are this server's);
# DRAGONBALL_ADDRESS the moving address with its prefix (10.0.0.100/24).
set -eu

RUN=/run/keepalived
CONF=/etc/keepalived/keepalived.conf
PID=$RUN/keepalived.pid

fail() {
    echo "keepalived: $1" >&2
    echo "  hint: $2" >&2
    exit 1
}

render() {
    node="${DRAGONBALL_NODE:?DRAGONBALL_NODE is not set (the orchestrator sets it)}"
    mkdir -p "$RUN" /etc/keepalived
    printf '%s' "${DRAGONBALL_KEEPALIVED_CONF:?DRAGONBALL_KEEPALIVED_CONF is not set}" \
        | base64 -d > "$CONF.in"
    own=$(sed -n "s/^[[:space:]]*@$node[[:space:]][[:space:]]*unicast_src_ip[[:space:]][[:space:]]*\([0-9.]*\).*/\1/p" "$CONF.in")
    [ -n "$own" ] || fail "server $node is not among the peers of ${DRAGONBALL_ADDRESS:-the address}" \
        "it joined after the app was applied: run 'dragonball apply' again"
    iface=$(ip -o -4 addr show to "$own" | awk '{print $2; exit}')
    [ -n "$iface" ] || fail "no interface of $node holds its address $own" \
        "the server's address changed: run 'dragonball apply' again"
    sed "s/__INTERFACE__/$iface/g" "$CONF.in" > "$CONF"
    rm -f "$CONF.in"
    printf '%s\n' "$own" > "$RUN/node-address"
    # a task killed with its container (not its server) may have left the address behind
    ip addr del "$DRAGONBALL_ADDRESS" dev "$iface" 2>/dev/null || true
    keepalived --config-test -i "$node" -f "$CONF" \
        || fail "the rendered configuration is refused" "report it: this is a bug"
    echo "keepalived: $node ($own on $iface) is a peer of $DRAGONBALL_ADDRESS"
}

launch() {
    keepalived --vrrp --dont-fork --log-console --log-detail -i "$DRAGONBALL_NODE" \
        -f "$CONF" -p "$PID" -r "$RUN/vrrp.pid" &
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -s "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null && return 0
        sleep 0.5
    done
    fail "keepalived did not start" "see the container's log"
}

status() {
    [ -s "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null
}

stop() {
    [ -s "$PID" ] || return 0
    pid=$(cat "$PID")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
}

info() {
    address="${DRAGONBALL_ADDRESS%/*}"
    state=$(cat "$RUN/state" 2>/dev/null || echo "starting")
    if ip -o -4 addr show | grep -q "inet $address/"; then
        echo "holder: $DRAGONBALL_NODE holds $address (keepalived: $state)"
    else
        echo "standby: $DRAGONBALL_NODE does not hold $address (keepalived: $state)"
    fi
}

"${1:?usage: keepalivedctl.sh render|launch|status|stop|info}"
