#!/bin/sh
# Start the agent's server in the background; wait until its health socket answers.
exec python3 -B module/agentd.py launch
