#!/usr/bin/env python3
"""The DragonBall node agent: HTTPS with mutual TLS on port 9443, one per server.

    python3 module/agentd.py serve     the server, in the foreground, until SIGTERM
    python3 module/agentd.py launch    `serve` in the background; wait until it answers
    python3 module/agentd.py status    GET /v1/health on the local health socket
    python3 module/agentd.py info      version, port, who may call it
    python3 module/agentd.py stop      SIGTERM, then wait for the server to end
    python3 module/agentd.py restart   stop, then launch (config_change)

API (docs/agent.md): `GET /v1/health`, `GET /v1/metrics` (node metrics from the host's
/proc, read-only at /host/proc); `GET /v1/tasks`, `POST /v1/exec`, `GET /v1/logs` on the
containers labelled io.dragonball.app (the docker socket), `PUT`/`DELETE /v1/params` (the
host's params folder at /host/params), `PUT /v1/firewall` (the cluster's members, in the
host's /var/lib/dragonball/firewall at /host/firewall). Every connection must present a
client certificate signed by the CA in ca.crt (ssl.CERT_REQUIRED): the agents' clients CA,
which signs only the controllers' (the portal's) certificates; anything else gets no
answer. The TLS material: this server's own identity (agent.crt, agent.key, made at its
enrollment) from the host's /etc/dragonball/agent/identity, mounted read-only at
/host/identity, and ca.crt as a Docker Swarm secret under /run/secrets: never from the
environment or the image.

The health check (`run.sh status`, the image's HEALTHCHECK) cannot present a client
certificate, so the server also answers /v1/health, and nothing else, on a Unix socket
inside the container. It runs on the base image's python3 with libraries from Debian's
packages (the Dockerfile): hypercorn and Starlette serve, psutil reads /proc, the Docker
SDK talks to the engine.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the modules beside this file
from agent_config import (RUN_DIR, VERSION, Settings, load_settings,  # noqa: E402,F401
                          missing_files, problems, say, settings_from)
from agent_daemon import (UnixHTTPConnection, info, launch, probe, serve,  # noqa: E402,F401
                          status, stop)


def main(argv: list[str]) -> int:
    commands = {"serve": serve, "launch": launch, "status": status, "info": info,
                "stop": stop, "restart": lambda: stop(kill=True) or launch()}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
