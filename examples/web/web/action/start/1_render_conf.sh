#!/bin/sh
# Render nginx.conf from the parameters (backends, listen_port) and test it with nginx -t.
exec python3 module/render_conf.py render
