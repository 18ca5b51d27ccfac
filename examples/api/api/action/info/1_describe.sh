#!/bin/sh
# Describe the running API: version, host, store address and state, greeting, reload record.
exec python3 module/apictl.py info
