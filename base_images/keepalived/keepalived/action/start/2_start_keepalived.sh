#!/bin/sh
# keepalived (VRRP only) in the background, logging to the container's log.
exec sh module/keepalivedctl.sh launch
