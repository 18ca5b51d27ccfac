#!/bin/sh
# Validate the new parameters and re-render redis.conf (an invalid set stops the change here).
# A notification (DRAGONBALL_EVENT=notify: a peer slot changed) changes no parameter: a
# replicated slot logs it and follows the quorum (module/ha.py notify); a single slot ignores it.
. module/store.sh
if [ "${DRAGONBALL_EVENT:-}" = notify ]; then
    replicated && exec python3 module/ha.py notify
    say "notified: nothing to do for a single slot"
    exit 0
fi
exec python3 module/redis_conf.py render
