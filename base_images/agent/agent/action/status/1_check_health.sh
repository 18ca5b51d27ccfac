#!/bin/sh
# Healthy when GET /v1/health answers 200 on the agent's local health socket.
exec python3 -B module/agentd.py status
