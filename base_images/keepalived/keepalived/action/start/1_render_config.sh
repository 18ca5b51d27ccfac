#!/bin/sh
# The configuration rendered by the orchestrator (base64 in the environment), completed with
# this server's own interface: the one holding its address among the peers.
exec sh module/keepalivedctl.sh render
