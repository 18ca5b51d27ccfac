#!/bin/sh
# Whether this server holds the address now, and keepalived's last state.
exec sh module/keepalivedctl.sh info
