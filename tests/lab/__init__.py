"""The lab: local "servers" (containers running systemd on a bare Debian 12) for the
installer's tests and for people trying it by hand (scripts/lab.sh, docs/lab.md)."""

from .docker_cli import Outcome
from .errors import LabError
from .lab import Lab

__all__ = ["Lab", "LabError", "Outcome"]
