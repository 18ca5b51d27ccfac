#!/bin/sh
# Render redis.conf from the parameters (port, maxmemory, maxmemory_policy, password).
exec python3 module/redis_conf.py render
