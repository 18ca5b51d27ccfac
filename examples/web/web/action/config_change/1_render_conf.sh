#!/bin/sh
# Validate the new parameters, render and test the new nginx.conf; an invalid one is refused
# here and the config in force stays.
exec python3 module/render_conf.py render
