#!/bin/sh
# SAVE the dataset to storage/redis, then SHUTDOWN redis-server and wait for it to exit.
. module/store.sh
use_params
pid=$(server_pid)
if ! alive "$pid"; then
    say "redis-server is not running; nothing to save"
    exit 0
fi
out=$(rcli SAVE 2>&1)
if [ "$out" != OK ]; then
    say "SAVE failed: ${out:-no answer}; redis-server left running"
    exit 1
fi
keys=$(rcli DBSIZE 2>/dev/null)
say "SAVE done: ${keys:-?} keys written to storage/redis"
rcli SHUTDOWN >/dev/null 2>&1 || true
i=0
while alive "$pid"; do
    if [ $i -ge 60 ]; then say "redis-server (pid $pid) still running 6 s after SHUTDOWN"; exit 1; fi
    sleep 0.1
    i=$((i + 1))
done
say "redis-server stopped cleanly"
