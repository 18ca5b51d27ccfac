"""The cluster registry from the outside: its HTTP API v2 client and the archive push.

    from dragonball.registry import RegistryClient, push_archive
    with RegistryClient("10.0.0.5:5000", "/etc/dragonball/ca.crt", "dragonball", secret) as c:
        push_archive(archive, c, progress=...)

`plan` is pure (which blob is skipped, mounted or uploaded); `client` is the only
module that talks to a registry; `push` runs a plan on a thread pool; `load` streams
archive images into `docker load` (the registry image itself, before a registry runs).
"""

from dragonball.registry.client import RegistryClient, RegistryError
from dragonball.registry.push import PushProgress, PushResult, push_archive

__all__ = ["PushProgress", "PushResult", "RegistryClient", "RegistryError", "push_archive"]
