#!/bin/sh
# A replicated slot: start its redis-sentinel (config and state in storage/sentinel/), wait until
# it answers, then settle (module/ha.py): ask for a failover when this slot's data was gone,
# lift a restarted primary's write fence once the peers' sentinels see it. A single slot: nothing.
. module/store.sh
replicated || exit 0
use_params
# umask 077: the sentinel rewrites its file (it holds the password) readable by redis only.
(umask 077; exec $(runas) redis-sentinel "$SENTINEL_CONF") &
pid=$!
echo "$pid" >"$SENTINEL_PID_FILE"
say "redis-sentinel starting (pid $pid, port $param_sentinel_port, state in storage/sentinel)"
i=0
while [ $i -lt 60 ]; do
    if ! alive "$pid"; then
        say "redis-sentinel exited during start; its log lines are above"
        exit 1
    fi
    if [ "$(scli PING 2>/dev/null)" = PONG ]; then
        say "redis-sentinel ready on port $param_sentinel_port"
        exec python3 module/ha.py settle
    fi
    sleep 0.5
    i=$((i + 1))
done
say "redis-sentinel did not answer PING within 30 s"
exit 1
