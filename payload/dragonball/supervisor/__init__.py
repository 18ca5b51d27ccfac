"""The supervisor inside every module container (`/opt/dragon_ball/bin/run.sh`).

Standard library only: it runs on the base image's python3.
"""
