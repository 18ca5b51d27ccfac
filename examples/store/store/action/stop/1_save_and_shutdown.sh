#!/bin/sh
# SAVE the dataset to storage/redis, then SHUTDOWN redis-server and wait for it to exit.
# A replicated slot that is the primary first hands its role over to an in-sync replica
# (module/ha.py handover, at most 5 s), and its sentinel is stopped last.
. module/store.sh
use_params
stop_sentinel() {
    replicated || return 0
    spid=$(sentinel_pid)
    alive "$spid" || return 0
    scli SHUTDOWN >/dev/null 2>&1 || kill -TERM "$spid" 2>/dev/null
    j=0
    while alive "$spid" && [ $j -lt 20 ]; do sleep 0.1; j=$((j + 1)); done
    say "redis-sentinel stopped"
}
pid=$(server_pid)
if ! alive "$pid"; then
    say "redis-server is not running; nothing to save"
    stop_sentinel
    exit 0
fi
replicated && python3 module/ha.py handover
out=$(rcli SAVE 2>&1)
case "$out" in
    OK)
        keys=$(rcli INFO keyspace 2>/dev/null | tr -d '\r' | sed -n 's/^db[0-9]*:keys=\([0-9]*\).*/\1/p' | awk '{n += $1} END {print n + 0}')
        say "SAVE done: ${keys:-?} keys written to storage/redis" ;;
    MASTERDOWN*)
        # A replica out of sync with its primary serves nothing, not even SAVE; what it
        # holds is already in its append-only file.
        say "SAVE skipped: a replica not in sync with its primary (its AOF holds its data)" ;;
    *)
        say "SAVE failed: ${out:-no answer}; redis-server left running"
        exit 1 ;;
esac
rcli SHUTDOWN >/dev/null 2>&1 || true
i=0
while alive "$pid"; do
    if [ $i -ge 60 ]; then say "redis-server (pid $pid) still running 6 s after SHUTDOWN"; exit 1; fi
    sleep 0.1
    i=$((i + 1))
done
say "redis-server stopped cleanly"
stop_sentinel
