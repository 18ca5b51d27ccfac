#!/bin/sh
# Entry point of every module container: hands the command line to the supervisor.
# -B: the library is read-only image content; never write .pyc files next to it.
PYTHONPATH=/opt/dragon_ball/lib exec /usr/bin/python3 -B -m dragonball.supervisor "$@"
