#!/bin/sh
# Start docker-registry in the background; wait until GET /v2/ answers over TLS.
exec python3 module/registryctl.py launch
