#!/bin/sh
# Healthy when redis-server answers PING with PONG.
. module/store.sh
use_params
reply=$(rcli PING 2>&1)
if [ "$reply" = PONG ]; then
    echo PONG
    exit 0
fi
say "no PONG from redis-server on port $param_port: ${reply:-no answer}"
exit 1
