#!/bin/sh
# Validate the new parameters and re-render config.yml (invalid ones stop the change here).
exec python3 module/registryctl.py render
