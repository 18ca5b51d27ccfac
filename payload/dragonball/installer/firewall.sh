#!/bin/sh
# dragonball-firewall: DragonBall's own iptables chain, DRAGONBALL, from the members and
# allow files (docs/security.md, "The network"). Installed by the DragonBall installer on
# every server, run by dragonball-firewall.service at boot and whenever a file changes
# (dragonball-firewall.path); 'dragonball reset' removes it, its chain and its files.
#
#   dragonball-firewall [apply]   the chain replaced at once (iptables-restore --noflush),
#                                 the jumps to it inserted first in INPUT (and DOCKER-USER)
#                                 where they are missing; never moved once there, so a rule
#                                 the administrator puts before one later stays before it
#                                 then the members applied copied to `applied` (what the
#                                 node agent waits for before it answers the portal)
#   dragonball-firewall remove    the jumps and the chain gone
#
# Every line of the files is checked here (by awk, as data): one that is not an IPv4 or
# IPv6 address or network is skipped with a message on stderr, never reaches a shell.
# Exit status: 0 done; 1 the IPv4 rules could not be applied (the chain as it was);
# 2 usage, or no members file, or no iptables-restore.
set -u
: "${PATH:=/usr/sbin:/usr/bin:/sbin:/bin}"   # systemd and root's shells have sbin in it
PATH="$PATH:/opt/dragonball/engine/fallback"  # the engine's iptables, for a server without one
FOLDER="${DRAGONBALL_FIREWALL_DIR:-/var/lib/dragonball/firewall}"
CHAIN=DRAGONBALL
FORWARD_CHAIN=DRAGONBALL-FORWARD
# shared/ports.py: every cluster port but the portal's (a unit test keeps them equal)
TCP_PORTS=2377,2379,2380,5000,7946,9443
UDP_PORTS=4789,7946
PORTAL_PORT=8443
MAX_LINES=2000
# Connections Docker forwards to a published port (the agent's 9443) pass FORWARD, not
# INPUT. DOCKER-USER jumps to FORWARD_CHAIN, which sends on to CHAIN only connections
# DNATed from a cluster port (by their original port: an app's published port whose
# container port happens to be 5000 is not one), never the containers' own traffic.
# DragonBall publishes its ports with target = published, so CHAIN's --dport holds.

say() { printf 'dragonball-firewall: %s\n' "$*" >&2; }

# The restore text of family $1 (4 or 6) from the files given after it (pure awk: the
# files' lines are compared and printed, never evaluated); the IPv4 pass tells what it
# skipped.
rules() {
    family=$1; shift
    awk -v family="$family" -v chain="$CHAIN" -v tcp="$TCP_PORTS" -v udp="$UDP_PORTS" \
        -v forward="$FORWARD_CHAIN" \
        -v portal="$PORTAL_PORT" -v max="$MAX_LINES" '
    function number_ok(p, most) {   # decimal, no leading zero (inet_aton reads octal)
        return p ~ /^[0-9]+$/ && length(p) <= 3 && p + 0 <= most &&
            (length(p) == 1 || substr(p, 1, 1) != "0")
    }
    function v4(s,   n, a, o, i) {
        n = split(s, a, "/")
        if (n > 2 || (n == 2 && !number_ok(a[2], 32))) return 0
        if (a[1] !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/) return 0
        split(a[1], o, ".")
        for (i = 1; i <= 4; i++) if (!number_ok(o[i], 255)) return 0
        return 1
    }
    function v6(s,   n, a, g, i, d, t, groups) {
        n = split(s, a, "/")
        if (n > 2 || (n == 2 && !number_ok(a[2], 128))) return 0
        if (a[1] !~ /^[0-9A-Fa-f:]+$/ || index(a[1], ":") == 0) return 0
        if (index(a[1], ":::")) return 0
        t = a[1]; d = gsub(/::/, "", t)
        if (d > 1) return 0
        if (a[1] ~ /^:[^:]/ || a[1] ~ /[^:]:$/) return 0
        n = split(a[1], g, ":")
        groups = 0
        for (i = 1; i <= n; i++) {
            if (length(g[i]) > 4) return 0
            if (g[i] != "") groups++
        }
        return d ? groups <= 7 : groups == 8
    }
    function skip(why,   shown, name) {
        if (family != 4) return
        shown = substr($0, 1, 40); gsub(/[^ -~]/, "?", shown)
        name = FILENAME; sub(/\.applying$/, "members", name)
        printf "dragonball-firewall: %s line %d skipped (%s): %s\n", name, FNR, why,
            shown > "/dev/stderr"
    }
    function forwarded(protocol, list,   n, p, i) {
        n = split(list, p, ",")
        for (i = 1; i <= n; i++)
            print "-A " forward " -p " protocol " -m conntrack --ctstate DNAT" \
                " --ctorigdstport " p[i] " -j " chain
    }
    BEGIN {
        print "*filter"
        print ":" chain " - [0:0]"
        print ":" forward " - [0:0]"
        forwarded("tcp", tcp); forwarded("udp", udp)
        print "-A " chain " -i lo -j RETURN"
        print "-A " chain " -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
        print "-A " chain " -p tcp --dport " portal " -j ACCEPT"
    }
    FNR == 1 { count = 0 }
    {
        line = $0; sub(/^[ \t]+/, "", line); sub(/[ \t\r]+$/, "", line)
        if (line == "" || substr(line, 1, 1) == "#") next
        if (++count > max) { if (count == max + 1) skip("more than " max " lines"); next }
        if (length(line) > 64) { skip("too long"); next }
        if (v4(line)) { if (family == 4) add(line); next }
        if (v6(line)) { if (family == 6) add(line); next }
        skip("not an IPv4 or IPv6 address or network")
    }
    function add(s) {
        if (s in seen) return
        seen[s] = 1
        print "-A " chain " -s " s " -p tcp -m multiport --dports " tcp " -j ACCEPT"
        print "-A " chain " -s " s " -p udp -m multiport --dports " udp " -j ACCEPT"
    }
    END {
        print "-A " chain " -p tcp -m multiport --dports " tcp " -j DROP"
        print "-A " chain " -p udp -m multiport --dports " udp " -j DROP"
        print "COMMIT"
    }' "$@"
}

# The jump from chain $2 to chain $3, inserted first if missing; $1: the tool.
ensure_jump() {
    "$1" -w -C "$2" -j "$3" 2>/dev/null && return 0
    "$1" -w -I "$2" 1 -j "$3"
}

# Family $1 with tools $2 (iptables) and $3 (iptables-restore), files after them.
apply_family() {
    family=$1; tool=$2; restore=$3; shift 3
    text=$(rules "$family" "$@") || return 1
    printf '%s\n' "$text" | "$restore" -w --noflush || return 1
    ensure_jump "$tool" INPUT "$CHAIN" || return 1
    if "$tool" -w -S DOCKER-USER >/dev/null 2>&1; then
        ensure_jump "$tool" DOCKER-USER "$FORWARD_CHAIN" || return 1
    fi
}

remove_family() {
    tool=$1
    command -v "$tool" >/dev/null 2>&1 || return 0
    while "$tool" -w -D INPUT -j "$CHAIN" 2>/dev/null; do :; done
    while "$tool" -w -D DOCKER-USER -j "$FORWARD_CHAIN" 2>/dev/null; do :; done
    for chain in "$FORWARD_CHAIN" "$CHAIN"; do
        "$tool" -w -F "$chain" 2>/dev/null
        "$tool" -w -X "$chain" 2>/dev/null
    done
    return 0
}

# One pass over a copy of the members file (.applying); once applied, the copy becomes
# `applied`: the node agent waits for it before it answers the portal.
apply_once() {
    cat "$FOLDER/members" > "$FOLDER/.applying" || return 2
    set -- "$FOLDER/.applying"
    [ -r "$FOLDER/allow" ] && set -- "$@" "$FOLDER/allow"
    if ! apply_family 4 iptables iptables-restore "$@"; then
        say "the IPv4 rules could not be applied: the chain is as it was"
        return 1
    fi
    if command -v ip6tables-restore >/dev/null 2>&1; then
        apply_family 6 ip6tables ip6tables-restore "$@" ||
            say "the IPv6 rules could not be applied (no IPv6 netfilter here?): IPv4 only"
    fi
    mv -f "$FOLDER/.applying" "$FOLDER/applied"
}

apply() {
    if [ ! -r "$FOLDER/members" ]; then
        say "$FOLDER/members is missing: the chain is left as it is (run the install again)"
        return 2
    fi
    if ! command -v iptables-restore >/dev/null 2>&1; then
        say "iptables-restore is not installed: no chain (install iptables)"
        return 2
    fi
    # A members file replaced during a pass gets a pass of its own here: systemd merges a
    # start into the oneshot that is running, so that change would wait for the next one.
    for pass in 1 2 3 4 5; do
        apply_once || return $?
        [ "$(cksum <"$FOLDER/members")" = "$(cksum <"$FOLDER/applied")" ] && return 0
    done
    say "the members file changed $pass times while it was applied: the last one read holds"
    return 0
}

case "${1:-apply}" in
    apply) apply ;;
    remove) remove_family iptables; remove_family ip6tables ;;
    *) say "usage: dragonball-firewall [apply|remove]"; exit 2 ;;
esac
