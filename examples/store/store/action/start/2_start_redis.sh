#!/bin/sh
# Start redis-server in the background (it stays in this script's process group, so the
# supervisor ends it if the stop scripts could not), then wait until it answers PING.
. module/store.sh
use_params
mkdir -p "$DATA_DIR"
runas=""
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    chown -R redis:redis "$DATA_DIR"
    runas="setpriv --reuid=redis --regid=redis --init-groups"
fi
$runas redis-server "$CONF" &
pid=$!
echo "$pid" >"$PID_FILE"
say "redis-server starting (pid $pid, port $param_port, data in storage/redis)"
i=0
while [ $i -lt 100 ]; do
    if ! alive "$pid"; then
        say "redis-server exited during start; its log lines are above"
        exit 1
    fi
    [ "$(rcli PING 2>/dev/null)" = PONG ] && { say "redis-server ready: PONG on port $param_port"; exit 0; }
    sleep 0.5
    i=$((i + 1))
done
say "redis-server did not answer PING within 50 s"
exit 1
