#!/bin/sh
# Watch dog: re-resolve the backend names every resolve_interval seconds and reload nginx when
# their addresses change (a backend task restarted elsewhere, a scaled service).
RUN_DIR=${DRAGONBALL_SERVICE_RUN_DIR:-/run/dragonball-service}
python3 -u module/render.py watch &
echo $! >"$RUN_DIR/watch.pid"
echo "${DRAGONBALL_MODULE:-service}: backend watcher started (pid $!, every $(/opt/dragon_ball/bin/params get resolve_interval) s)"
