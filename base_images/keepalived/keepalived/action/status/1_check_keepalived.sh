#!/bin/sh
# Healthy while keepalived runs (holding the address or standing by are both healthy).
exec sh module/keepalivedctl.sh status
