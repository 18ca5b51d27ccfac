#!/bin/sh
# notify.sh TYPE NAME STATE PRIORITY: keepalived's notify script; keeps the last state for
# the module's info action and says it in the container's log.
mkdir -p /run/keepalived
printf '%s since %s\n' "$3" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > /run/keepalived/state
echo "keepalived: $2 is now $3" > /proc/1/fd/1 2>/dev/null || true
