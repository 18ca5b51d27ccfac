#!/bin/sh
# Start redis-server in the background (it stays in this script's process group, so the
# supervisor ends it if the stop scripts could not), then wait until it answers: PING, or for a
# replicated slot ROLE (a replica that is not in sync yet answers no PING: it serves no reads).
. module/store.sh
use_params
mkdir -p "$DATA_DIR"
runas=$(runas)
[ -n "$runas" ] && chown -R redis:redis "$DATA_DIR"
# umask 077: what redis writes (its config rewrite, the data) is readable by redis only.
(umask 077; exec $runas redis-server "$CONF") &
pid=$!
echo "$pid" >"$PID_FILE"
say "redis-server starting (pid $pid, port $param_port, data in storage/redis)"
ready() {
    if replicated; then
        case "$(rcli ROLE 2>/dev/null | head -n 1)" in master|slave) return 0 ;; esac
        return 1
    fi
    [ "$(rcli PING 2>/dev/null)" = PONG ]
}
i=0
while [ $i -lt 100 ]; do
    if ! alive "$pid"; then
        say "redis-server exited during start; its log lines are above"
        exit 1
    fi
    if ready; then
        if replicated; then
            say "redis-server ready: role $(rcli ROLE 2>/dev/null | head -n 1) on port $param_port"
        else
            say "redis-server ready: PONG on port $param_port"
        fi
        exit 0
    fi
    sleep 0.5
    i=$((i + 1))
done
say "redis-server did not answer within 50 s"
exit 1
