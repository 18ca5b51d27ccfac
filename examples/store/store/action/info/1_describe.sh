#!/bin/sh
# Describe the store: redis version, role, key count, memory, persistence; a replicated slot
# also its slot, replication state and the sentinels' view (module/ha.py).
. module/store.sh
use_params
info=$(rcli INFO 2>&1 | tr -d '\r')
case "$info" in
    *redis_version:*) ;;
    *) say "redis-server does not answer INFO on port $param_port: ${info:-no answer}"; exit 1 ;;
esac
field() { printf '%s\n' "$info" | sed -n "s/^$1://p" | head -n 1; }
keys=$(printf '%s\n' "$info" | sed -n 's/^db[0-9]*:keys=\([0-9]*\).*/\1/p' | awk '{n += $1} END {print n + 0}')
echo "store: redis $(field redis_version), role $(field role), port $param_port, uptime $(field uptime_in_seconds) s"
echo "keys: $keys"
echo "memory: used $(field used_memory_human), maxmemory $(field maxmemory_human) ($(field maxmemory_policy))"
saved=$(date -u -d "@$(field rdb_last_save_time)" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
echo "persistence: appendonly $( [ "$(field aof_enabled)" = 1 ] && echo on || echo off) (appendfsync $param_appendfsync), last RDB save $saved, dir storage/redis"
echo "password: $( [ -n "$param_password" ] && echo set || echo 'not set')"
echo "clients: $(field connected_clients) connected"
if replicated; then
    python3 module/ha.py info
else
    echo "replication: none (single slot)"
fi
