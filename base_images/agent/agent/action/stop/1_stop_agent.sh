#!/bin/sh
# SIGTERM the server and wait for it to end.
exec python3 -B module/agentd.py stop
