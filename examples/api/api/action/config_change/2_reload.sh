#!/bin/sh
# Hand the new parameters to the running server (SIGHUP) and wait until it applied them.
exec python3 module/apictl.py reload
