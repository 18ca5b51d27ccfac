#!/bin/sh
# Validate the new parameters and re-render redis.conf (an invalid set stops the change here).
exec python3 module/redis_conf.py render
