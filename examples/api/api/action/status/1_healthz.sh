#!/bin/sh
# Healthy when GET /healthz answers 200: the server runs and the store answers PING.
exec python3 module/apictl.py status
