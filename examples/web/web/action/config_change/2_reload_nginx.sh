#!/bin/sh
# nginx -s reload, then wait until the workers serve the new config.
exec python3 module/nginxctl.py reload
