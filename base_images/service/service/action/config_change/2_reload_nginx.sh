#!/bin/sh
# nginx -s reload, then wait until the workers serve the new config (nothing to do when they
# serve it already, e.g. a notification that moved no address).
exec python3 module/nginxctl.py reload
