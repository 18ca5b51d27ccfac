#!/bin/sh
# New parameters (port, allowed clients...) take effect by a restart of the server.
exec python3 -B module/agentd.py restart
