#!/bin/sh
# Start nginx in the foreground of a background job (daemon off: it stays in this script's
# process group), then wait until its workers serve the rendered config.
RUN_DIR=${NOTES_WEB_RUN_DIR:-/run/notes-web}
nginx -c "$RUN_DIR/nginx.conf" &
echo "web: nginx starting (pid $!)"
exec python3 module/nginxctl.py wait-ready 20
