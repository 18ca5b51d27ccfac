#!/bin/sh
# Validate the new parameters, render and test the new nginx.conf; an invalid one is refused
# here and the config in force stays.
# A notification (DRAGONBALL_EVENT=notify: a backend became healthy, unhealthy, stopped or was
# scaled) changes no parameter: resolve the backends again now instead of at the next interval.
if [ "${DRAGONBALL_EVENT:-}" = notify ]; then
    exec python3 module/render.py refresh
fi
exec python3 module/render.py render
