#!/bin/sh
# Start nginx in the foreground of a background job (daemon off: it stays in this script's
# process group), then wait until its workers serve the rendered config.
RUN_DIR=${DRAGONBALL_SERVICE_RUN_DIR:-/run/dragonball-service}
nginx -c "$RUN_DIR/nginx.conf" &
echo "${DRAGONBALL_MODULE:-service}: nginx starting (pid $!)"
exec python3 module/nginxctl.py wait-ready 20
