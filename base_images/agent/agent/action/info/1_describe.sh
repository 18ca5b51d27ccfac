#!/bin/sh
# Version, port, the clients allowed, the node.
exec python3 -B module/agentd.py info
