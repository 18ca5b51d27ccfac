#!/bin/sh
# distribution 2.8 cannot reload its configuration: stop it and start it again.
exec python3 module/registryctl.py restart
