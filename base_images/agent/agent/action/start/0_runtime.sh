#!/bin/sh
# The release's runtime onto this server when the image carries a newer one (agent_runtime.py).
exec python3 -B module/agent_runtime.py
