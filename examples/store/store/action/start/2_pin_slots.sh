#!/bin/sh
# A replicated slot: pin every slot's address in /etc/hosts and keep it fresh in the
# background (module/peers.py says why: a stopped slot's name must not stall the sentinel).
# A single slot: nothing.
. module/store.sh
replicated || exit 0
python3 module/peers.py pin || exit 1
python3 module/peers.py watch &
echo $! >"$RUN_DIR/peers-watch.pid"
say "slot address watcher started (pid $!)"
