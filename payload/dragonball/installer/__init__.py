"""The installer: the resource layer of DESIGN.md, run as root on each server from the .bin.

Preflight (`dragonball.installer.preflight`) comes first: it probes the host, checks
it against the release and the role, and changes nothing.
"""

#: Where DragonBall keeps state, the install journal, the portal DB, registry data and
#: module storage (DESIGN.md, "On a server after install").
DATA_DIR = "/var/lib/dragonball"
#: The Docker engine's data root: unpacked image layers and containers live there.
DOCKER_ROOT = "/var/lib/docker"
