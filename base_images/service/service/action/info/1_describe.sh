#!/bin/sh
# Describe nginx: version, port, configured backends and the addresses they resolved to.
exec python3 module/nginxctl.py info
