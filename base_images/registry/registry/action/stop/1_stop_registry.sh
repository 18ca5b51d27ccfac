#!/bin/sh
# SIGTERM docker-registry and wait for it to end.
exec python3 module/registryctl.py stop
