"""Where DragonBall keeps things on a server (DESIGN.md, "On a server after install").

    /opt/dragonball/        the runtime
    /etc/dragonball/        configuration, the CA, credentials (0600)
    /var/lib/dragonball/    state: install journal, portal store, registry data, storage
    /var/log/dragonball/    logs
"""

from __future__ import annotations

ETC = "/etc/dragonball"
#: The cluster CA's certificate, at the same path on every server.
CA_CERT = f"{ETC}/ca.crt"
#: The portal's own configuration, certificates and credentials.
PORTAL_CONFIG_DIR = f"{ETC}/portal"
#: The CA's key pair (on the portal only).
CA_DIR = f"{ETC}/ca"
#: Where DragonBall keeps state, the install journal, the portal DB, registry data and
#: module storage.
DATA_DIR = "/var/lib/dragonball"
#: The services' parameters on every server, one folder per app and service.
PARAMS_DIR = f"{DATA_DIR}/params"
#: The Docker engine's data root: unpacked image layers and containers live there.
DOCKER_ROOT = "/var/lib/docker"
LOG_DIR = "/var/log/dragonball"
INSTALL_LOG = f"{LOG_DIR}/install.log"
RUNTIME_PARENT = "/opt/dragonball"
#: The bundled Docker engine as a private tree (issue 14): bin/ (dockerd, containerd, runc,
#: the shim, docker-proxy, docker-init, the docker CLI) and lib/ (their shared libraries and
#: their own loader), installed as files, no package manager (builder/engine_tree.py).
ENGINE_DIR = f"{RUNTIME_PARENT}/engine"
ENGINE_BIN = f"{ENGINE_DIR}/bin"
#: iptables for a server without one: last in every PATH (a server's own comes first).
ENGINE_FALLBACK = f"{ENGINE_DIR}/fallback"
ENGINE_LOADER = f"{ENGINE_DIR}/lib/ld-linux-x86-64.so.2"
#: The certificates DragonBall issues from its CAs (docs/certificates.md), on the portal.
CLUSTER_CA_CERT = f"{CA_DIR}/ca.crt"
CLUSTER_CA_KEY = f"{CA_DIR}/ca.key"
#: The CA of the controllers (the managers' portals): the agents and etcd trust it alone
#: for clients; its key on every manager.
CLIENTS_CA_CERT = f"{CA_DIR}/agent-clients.crt"
CLIENTS_CA_KEY = f"{CA_DIR}/agent-clients.key"
#: etcd's member certificate and the clients CA it trusts, mounted into dragonball-etcd.
ETCD_CONFIG_DIR = f"{ETC}/etcd"
REGISTRY_CERT = f"{ETC}/registry/server.crt"
AGENT_IDENTITY_DIR = f"{ETC}/agent/identity"   # this server's agent key and certificate
AGENT_CERT = f"{AGENT_IDENTITY_DIR}/agent.crt"
AGENT_KEY = f"{AGENT_IDENTITY_DIR}/agent.key"    # 0600, made on this server
#: The engine's own Swarm node certificate on every server (Swarm renews it).
SWARM_NODE_CERT = f"{DOCKER_ROOT}/swarm/certificates/swarm-node.crt"
