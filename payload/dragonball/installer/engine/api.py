"""The local engine's HTTP API (adapter): the calls whose arguments are secret.

`docker swarm join --token T` puts the join token on the command line, where any user of
the server reads it (`ps`, /proc/<pid>/cmdline) while the join runs. The same request,
POST /swarm/join on the engine's unix socket, carries the token in its JSON body instead.

The docker SDK, as the portal's Swarm adapter uses it (dragonball/swarm/client.py; the SDK
is in the frozen runtime), with the same pinned API version, so making the client does not
connect. Its exceptions become an `InstallerError` here, with no secret in the message.
The install reaches this through its `Host` (`host.engine`); the join tests give a fake.
"""

from __future__ import annotations

import logging

from dragonball.errors import InstallerError
from dragonball.shared import ports
from dragonball.swarm.client import API_VERSION

log = logging.getLogger(__name__)

DOCKER_SOCKET = "/var/run/docker.sock"
#: `docker swarm join`'s own --listen-addr default, kept: the join behaves as the CLI's did.
LISTEN_ADDR = f"0.0.0.0:{ports.SWARM_MANAGEMENT}"
HINT = "see 'docker info' and 'journalctl -u docker' on this server"


class EngineApi:
    """The Docker engine listening on `socket_path` (this server's /var/run/docker.sock)."""

    def __init__(self, socket_path: str = DOCKER_SOCKET) -> None:
        self.socket_path = socket_path

    def join_swarm(self, manager: str, token: str, advertise: str, timeout: float) -> None:
        """POST /swarm/join: what `docker swarm join --token TOKEN --advertise-addr ADVERTISE
        MANAGER` asks, the token in the body. InstallerError when the engine refuses, cannot
        be reached, or does not answer within `timeout` s (its join may go on meanwhile)."""
        import docker  # only what talks to the engine needs the SDK
        import requests
        log.debug("POST /swarm/join on %s: manager %s, advertise %s (token in the body)",
                  self.socket_path, manager, advertise)
        try:
            with docker.APIClient(base_url=f"unix://{self.socket_path}", version=API_VERSION,
                                  timeout=timeout) as api:
                api.join_swarm([manager], token, listen_addr=LISTEN_ADDR,
                               advertise_addr=advertise)
        except docker.errors.APIError as e:
            raise InstallerError(f"the engine refused the Swarm join: "
                                 f"{e.explanation or e.status_code}", HINT) from e
        except requests.exceptions.Timeout as e:
            raise InstallerError(f"POST /swarm/join did not finish within {timeout:.0f} s",
                                 HINT) from e
        except (docker.errors.DockerException, OSError) as e:  # requests' errors are OSErrors
            raise InstallerError(f"cannot reach the engine at {self.socket_path}: {e}",
                                 HINT) from e
