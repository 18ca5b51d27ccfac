#!/bin/sh
# Apply what changed to the running server with CONFIG SET: maxmemory, maxmemory_policy,
# appendfsync, password, port (Redis 7 changes them all live). Connects with the old port and
# password. A replicated slot: down_after_ms goes to its sentinel (module/ha.py); port,
# sentinel_port, master_name and password were refused by 1_render_conf.sh.
. module/store.sh
[ "${DRAGONBALL_EVENT:-}" = notify ] && exit 0
if [ -z "${DRAGONBALL_OLD_PARAMS_FILE:-}" ]; then
    say "DRAGONBALL_OLD_PARAMS_FILE is not set: run this through 'run.sh config_change'"
    exit 1
fi
use_params
new_port=$param_port new_password=$param_password
new_maxmemory=$param_maxmemory new_policy=$param_maxmemory_policy new_fsync=$param_appendfsync
use_params "$DRAGONBALL_OLD_PARAMS_FILE"
changed=0

config_set() {  # KEY VALUE
    out=$(rcli CONFIG SET "$1" "$2" 2>&1)
    [ "$out" = OK ] || { say "CONFIG SET $1 failed: $out"; exit 1; }
    changed=$((changed + 1))
}

if [ "$new_maxmemory" != "$param_maxmemory" ]; then
    config_set maxmemory "$new_maxmemory"
    say "maxmemory $param_maxmemory -> $new_maxmemory (applied live)"
fi
if [ "$new_policy" != "$param_maxmemory_policy" ]; then
    config_set maxmemory-policy "$new_policy"
    say "maxmemory-policy $param_maxmemory_policy -> $new_policy (applied live)"
fi
if [ "$new_fsync" != "$param_appendfsync" ]; then
    config_set appendfsync "$new_fsync"
    say "appendfsync $param_appendfsync -> $new_fsync (applied live)"
fi
if replicated; then
    out=$(python3 module/ha.py live "$DRAGONBALL_OLD_PARAMS_FILE") || { echo "$out"; exit 1; }
    [ -n "$out" ] && { echo "$out"; changed=$((changed + 1)); }
elif [ "$new_password" != "$param_password" ]; then
    # -x: the last argument comes from stdin, so the password is never in a command line.
    out=$(printf '%s' "$new_password" | rcli -x CONFIG SET requirepass 2>&1)
    [ "$out" = OK ] || { say "CONFIG SET requirepass failed: $out"; exit 1; }
    if [ -n "$new_password" ]; then export REDISCLI_AUTH="$new_password"; else unset REDISCLI_AUTH; fi
    changed=$((changed + 1))
    say "password changed (applied live)"
fi
if [ "$new_port" != "$param_port" ]; then
    config_set port "$new_port"
    say "port $param_port -> $new_port (applied live)"
fi
[ "$changed" -gt 0 ] || say "nothing to apply live"
exit 0
