#!/bin/sh
# Watch dog: re-resolve the backend names every resolve_interval seconds and reload nginx when
# their addresses change (a backend task restarted elsewhere, a scaled service).
RUN_DIR=${NOTES_WEB_RUN_DIR:-/run/notes-web}
python3 -u module/render_conf.py watch &
echo $! >"$RUN_DIR/watch.pid"
echo "web: backend watcher started (pid $!, every $(/opt/dragon_ball/bin/params get resolve_interval) s)"
