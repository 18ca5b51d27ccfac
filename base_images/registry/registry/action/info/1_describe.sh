#!/bin/sh
# Version, port, number of repositories.
exec python3 module/registryctl.py info
