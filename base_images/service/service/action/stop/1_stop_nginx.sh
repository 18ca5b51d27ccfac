#!/bin/sh
# Stop the backend watcher, then nginx -s quit (finish open requests) and wait for the master.
RUN_DIR=${DRAGONBALL_SERVICE_RUN_DIR:-/run/dragonball-service}
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }
watcher=$(cat "$RUN_DIR/watch.pid" 2>/dev/null || true)
if alive "$watcher"; then kill -TERM "$watcher"; fi
pid=$(cat "$RUN_DIR/nginx.pid" 2>/dev/null || true)
if ! alive "$pid"; then
    echo "${DRAGONBALL_MODULE:-service}: nginx is not running"
    exit 0
fi
# Keep nginx's own "signal process started" notice out of the log; errors still show.
nginx -s quit -c "$RUN_DIR/nginx.conf" 2>&1 | grep -v "signal process started" >&2
i=0
while alive "$pid"; do
    if [ $i -ge 70 ]; then echo "${DRAGONBALL_MODULE:-service}: nginx (pid $pid) still running 7 s after quit"; exit 1; fi
    sleep 0.1
    i=$((i + 1))
done
echo "${DRAGONBALL_MODULE:-service}: nginx stopped (graceful quit, pid $pid)"
