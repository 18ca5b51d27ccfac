#!/bin/sh
# Healthy when GET https://127.0.0.1:PORT/v2/ answers 200 or 401, verified with the CA.
exec python3 module/registryctl.py status
