#!/bin/sh
# Start the notes API server in the background (as nobody when possible) and wait until it
# answers /healthz. The server reads its parameters from a snapshot in $RUN_DIR, which
# config_change rewrites before sending SIGHUP.
set -eu
RUN_DIR=${NOTES_API_RUN_DIR:-/run/notes-api}
python3 module/apictl.py snapshot
runas=""
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
    runas="setpriv --reuid=nobody --regid=nogroup --clear-groups"
fi
DRAGONBALL_PARAMS_FILE="$RUN_DIR/params.json" $runas python3 -u module/notes_api.py &
echo $! >"$RUN_DIR/notes_api.pid"
echo "api: notes-api starting (pid $!)"
exec python3 module/apictl.py wait-ready 30
