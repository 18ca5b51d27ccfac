#!/bin/sh
# Healthy when redis-server answers PING with PONG. A replicated slot: when redis answers with a
# known role (a replica: in sync with its primary) and its sentinel answers (module/ha.py).
. module/store.sh
replicated && exec python3 module/ha.py status
use_params
reply=$(rcli PING 2>&1)
if [ "$reply" = PONG ]; then
    echo PONG
    exit 0
fi
say "no PONG from redis-server on port $param_port: ${reply:-no answer}"
exit 1
