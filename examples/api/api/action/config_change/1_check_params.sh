#!/bin/sh
# Refuse an invalid parameter set before anything changes.
exec python3 module/apictl.py check
