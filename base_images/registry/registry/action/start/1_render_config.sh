#!/bin/sh
# Validate the parameters, copy the mounted TLS material and htpasswd, render config.yml.
exec python3 module/registryctl.py render
