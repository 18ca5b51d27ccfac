#!/bin/sh
# SIGTERM the server; it finishes in-flight requests and exits. Wait up to 7 s.
RUN_DIR=${NOTES_API_RUN_DIR:-/run/notes-api}
pid=$(cat "$RUN_DIR/notes_api.pid" 2>/dev/null || true)
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }
if [ -z "$pid" ] || ! alive "$pid"; then
    echo "api: notes-api is not running"
    exit 0
fi
kill -TERM "$pid"
i=0
while alive "$pid"; do
    if [ $i -ge 70 ]; then echo "api: notes-api (pid $pid) still running 7 s after SIGTERM"; exit 1; fi
    sleep 0.1
    i=$((i + 1))
done
echo "api: notes-api stopped (pid $pid)"
