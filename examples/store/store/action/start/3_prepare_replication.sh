#!/bin/sh
# A replicated slot (DRAGONBALL_PEERS names 2 or more slots): decide its role from the
# sentinels (primary, or replica of the primary) and render sentinel.conf. A single slot: nothing.
. module/store.sh
replicated || exit 0
exec python3 module/ha.py prepare
