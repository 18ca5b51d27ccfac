#!/bin/sh
# SIGTERM keepalived: it gives the address up at once (priority 0), a peer takes it over.
exec sh module/keepalivedctl.sh stop
