#!/bin/sh
# Render nginx.conf from the parameters (routes, backends, listen_port, TLS...) and test it with nginx -t.
exec python3 module/render.py render
