#!/bin/sh
# Healthy when the nginx master is alive and GET / on localhost answers 200.
exec python3 module/nginxctl.py status
