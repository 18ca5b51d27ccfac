"""The node agent's install steps (role portal): the agent on every server, as one global
Swarm service the portal starts (docs/agent.md).

    agent.params   /var/lib/dragonball/params (0700): the services' parameters the agent
                   writes for the orchestrator's tasks; on EVERY server (a device makes it
                   just before it joins the Swarm, when the agent's task could first start)
    agent.pki      this server's agent identity (its address and hostname, from the cluster
                   CA) in /etc/dragonball/agent/identity/; the CA of the agents' clients
                   (/etc/dragonball/ca/agent-clients.*) and the portal's client certificate
                   from it, /etc/dragonball/portal/agent-client.* (keys 0600; kept while they
                   fit: their CA, the right name, more than 30 days left)
    agent.service  the clients' CA as a Docker Swarm secret (named by its content's hash: a
                   secret cannot change), then the global service dragonball-agent, its
                   image by ID (each server loaded it from its own .bin), host-mode port
                   9443, dnsrr, each server's own identity folder read-only, the host's
                   /proc read-only, the docker socket and the params folder; done when the
                   portal's own agent answers /v1/health over mutual TLS

Every server has an identity of its own (issue 13): a device makes its key at enrollment and
the portal signs its request for the address and hostname it enrolled (installer/join.py,
the step join.enroll); no agent holds another server's key, and the portal checks each agent's
certificate against the address it calls (agent_client).

Who may drive an agent is decided in the TLS handshake (DESIGN.md, day 2, answer 5): an
agent accepts client certificates of the clients' CA only, a CA of its own that signs
nothing but the controllers' (the portal's) client certificates. The cluster CA, which
signs the servers' certificates, is not trusted for clients at all, so no device's
certificate can drive an agent, whatever its name; the agent needs no name check (its HTTP
server could not see the client's certificate anyway).

All three run after the portal's image push and its service, before the first enrollment
code is printed (installer/roles.py). Devices need only agent.params (before join.swarm):
Swarm starts a task of a global service on every node that joins; a device's identity
is written by join.enroll, before it joins. The service names its
image by ID (the config digest, the same on every server that loaded it from its .bin), so
no server pulls it and a server joins while the registry on the first server is down.

Reset: the service and the secrets are removed (leaving the Swarm removes them too), the
files made here go (kinds agent_service, agent_secret, and the portal's portal_file), and
the params folder with what the agent wrote in it (agent_params).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time


from dragonball import agent_client
from dragonball.errors import InstallerError
from dragonball.shared import firewall, node_labels, paths, ports
from dragonball.shared.paths import DATA_DIR
from dragonball.installer.apply import missing_dirs
from dragonball.installer.portal import clients
from dragonball.installer.portal import cluster as portal_cluster
from dragonball.installer.portal.clients import (  # noqa: F401 (ca_fits: the agent's tests)
    ca_fits, keep_or_issue, make_clients_ca, make_controller_client)
from dragonball.installer.portal import layout as portal_layout
from dragonball.installer.portal.layout import hostname_of
from dragonball.installer.portal import registry as portal_registry
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.release.sections import BinError

log = logging.getLogger(__name__)

AGENT_DIR = f"{portal_layout.ETC}/agent"
#: This server's agent identity, mounted read-only at IDENTITY_MOUNT in its agent's task (a
#: bind mount's source must exist when the task starts: written before the node joins).
IDENTITY_DIR = paths.AGENT_IDENTITY_DIR
AGENT_CERT, AGENT_KEY = paths.AGENT_CERT, paths.AGENT_KEY
IDENTITY_MOUNT = "/host/identity"
#: The CA of the agents' clients (the controllers: the portal), apart from the cluster CA,
#: beside whose key it is kept. The agents trust it alone for clients.
CLIENTS_CA_CERT, CLIENTS_CA_KEY = clients.CLIENTS_CA_CERT, clients.CLIENTS_CA_KEY
SERVICE = "dragonball-agent"
REPOSITORY = "dragonball/agent"
LABEL, CONFIG_LABEL = portal_layout.LABEL, portal_layout.CONFIG_LABEL
#: secret kind -> (file name under /run/secrets in the container, mode there)
SECRET_FILES = {"ca": ("ca.crt", "0444")}
WAIT_S = 180  # the first pull on the portal, the task's start, the health check
#: The services' parameters, one folder per app and service, written by the agent (mounted
#: at /host/params) and mounted read-only into the tasks. The same path on every server
#: whatever its --data-dir: one Swarm service spec mounts it on all of them.
PARAMS_DIR = f"{DATA_DIR}/params"
PARAMS_MOUNT = "/host/params"
#: The staged tars of volume copies (agent_transfers): a named volume, so they sit on the
#: engine's disk beside the volumes they come from or go to, on every node, with no folder
#: to make first (the engine makes it with the agent's first task there).
TRANSFERS_VOLUME = "dragonball-transfers"
TRANSFERS_MOUNT = "/host/transfers"
#: The firewall's members file (shared/firewall.py), which the agent replaces when the
#: portal sends a new list; the folder is made on every server by os.firewall_chain, before
#: the node joins (a bind mount's source must exist when a task starts).
FIREWALL_MOUNT = "/host/firewall"
#: /opt/dragonball, where the agent puts the runtime its image carries (agent_runtime.py:
#: an upgrade reaches every server this way). Made before the node joins, like the others.
RUNTIME_PARENT = paths.RUNTIME_PARENT
RUNTIME_MOUNT = "/host/opt-dragonball"
RUNTIME_MOUNT_ARG = f"type=bind,src={RUNTIME_PARENT},dst={RUNTIME_MOUNT}"

STEP_IDS = ("agent.params", "agent.pki", "agent.service")


# --- pure ----------------------------------------------------------------------------------

def secret_name(kind: str, content: bytes) -> str:
    """A Swarm secret cannot be changed: its name carries a hash of what it holds, so a new
    certificate is a new secret, and the service is updated to it."""
    return f"{SERVICE}-{kind}-{hashlib.sha256(content).hexdigest()[:12]}"


def service_argv(image: str, secrets: dict, config_hash: str) -> list[str]:
    """`docker service create` of the agent: `secrets` maps a SECRET_FILES kind to the
    secret's name; `image` is the agent image's ID (sha256:...), which every server loaded
    from its own .bin: Swarm starts a task of an image given by ID without a pull."""
    argv = ["docker", "service", "create", "--detach", "--name", SERVICE,
            "--mode", "global", "--endpoint-mode", "dnsrr",
            "--publish", f"mode=host,target={ports.AGENT},published={ports.AGENT},protocol=tcp",
            "--mount", "type=bind,src=/proc,dst=/host/proc,readonly",
            "--mount", "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
            "--mount", f"type=bind,src={PARAMS_DIR},dst={PARAMS_MOUNT}",
            "--mount", f"type=bind,src={firewall.FOLDER},dst={FIREWALL_MOUNT}",
            "--mount", f"type=bind,src={IDENTITY_DIR},dst={IDENTITY_MOUNT},readonly",
            "--mount", f"type=volume,src={TRANSFERS_VOLUME},dst={TRANSFERS_MOUNT}",
            "--mount", RUNTIME_MOUNT_ARG,
            "--constraint", node_labels.ENROLLED_CONSTRAINT,   # enrolled servers only
            "--hostname", "{{.Node.Hostname}}", "--env", "DRAGONBALL_NODE_ID={{.Node.ID}}",
            "--label", f"{LABEL}=agent", "--label", f"{CONFIG_LABEL}={config_hash}",
            "--container-label", f"{LABEL}=agent",
            "--restart-condition", "any", "--restart-delay", "5s",
            "--stop-grace-period", "10s", "--update-order", "stop-first"]
    for kind, (target, mode) in SECRET_FILES.items():
        argv += ["--secret", f"source={secrets[kind]},target={target},mode={mode}"]
    return argv + ["--no-resolve-image", image]


def config_hash(image: str, secrets: dict, registry_password: str,
                identity: bytes = b"") -> str:
    """What the service was made from: the image, the secrets' names, (hashed again) the
    registry credential the service carries, so a new credential updates the service, and
    this server's identity certificate, so that a new one restarts the agents (each reads
    its own server's identity when it starts)."""
    text = json.dumps({"argv": service_argv(image, secrets, ""),
                       "auth": hashlib.sha256(registry_password.encode()).hexdigest(),
                       "identity": hashlib.sha256(identity).hexdigest() if identity else ""},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def agent_image_of(archive):
    image = next((i for i in archive.images if i.repository == REPOSITORY), None)
    if image is None:
        raise BinError(f"this .bin holds no {REPOSITORY} image",
                       "build the .bin again with build.py (it adds the agent image)")
    return image


# --- the steps --------------------------------------------------------------------------------

def params_step(ctx) -> Step:
    """The params folder; on a device, just before it joins the Swarm (installer/roles.py):
    the agent's task, which mounts it, may start as soon as the node is in."""
    return Step("agent.params", "the folder of the services' parameters",
                lambda: make_params_dir(ctx))


def agent_steps(ctx) -> list[Step]:
    """The agent's steps on the portal, before its first code (installer/roles.py)."""
    return [params_step(ctx),
            Step("agent.pki", "the node agents' certificates", lambda: make_pki(ctx)),
            Step("agent.service", "start the node agent on every server (global service)",
                 lambda: start_service(ctx))]


def make_params_dir(ctx) -> dict:
    """PARAMS_DIR, 0700 (it holds parameters, secret ones too); reset removes it if made
    here."""
    host, undo = ctx.host, ctx.undo("agent.params")
    if not host.exists(PARAMS_DIR):
        undo.note(f"tree:{PARAMS_DIR}", {"kind": "agent_params", "path": PARAMS_DIR,
                                         "created_dirs": missing_dirs(host, PARAMS_DIR)})
    host.make_dirs(os.path.dirname(PARAMS_DIR))
    host.make_dirs(PARAMS_DIR, mode=0o700)
    os.chmod(host.path(PARAMS_DIR), 0o700)  # whatever the umask or an older folder's mode
    if not host.exists(RUNTIME_PARENT):   # the agent mounts it: it must exist first
        undo.note(f"dirs:{RUNTIME_PARENT}", {"kind": "agent_runtime_parent",
                                             "created_dirs": missing_dirs(host,
                                                                          RUNTIME_PARENT)})
        host.make_dirs(RUNTIME_PARENT, mode=0o755)
    return undo.entries()


def make_pki(ctx) -> dict:
    """This server's agent identity from the cluster CA (its answered address and its
    hostname); the agents' clients CA and the portal's client certificate from it (module
    docstring: who may drive an agent)."""
    host, undo = ctx.host, ctx.undo("agent.pki")
    ca = portal_cluster.read_pair(host, portal_layout.CA_CERT, portal_layout.CA_KEY)
    if ca is None:
        raise InstallerError(f"the cluster CA ({portal_layout.CA_CERT}) is missing",
                             "it is made by the step portal.pki: run the install again")
    clients_ca = make_clients_ca(ctx, undo)
    address, hostname = ctx.answers.address, hostname_of(ctx)
    keep_or_issue(ctx, undo, AGENT_CERT, AGENT_KEY, ca, ([address], []),
                  lambda: agent_client.issue_agent_cert(ca, address, hostname))
    make_controller_client(ctx, undo, clients_ca)
    return undo.entries()


def docker_has(host, *argv) -> bool:
    """Whether `docker ARGV` (an inspect) succeeds there."""
    return host.run(["docker", *argv], check=False, timeout=60).ok


def start_service(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("agent.service")
    with portal_registry.release_archive() as archive:
        image = agent_image_of(archive)
    ref = image.config["digest"]  # the image ID: no pull, no registry needed on any server
    # "ca": the CA the agent checks its clients against: the clients CA, not the cluster's
    contents, identity = {"ca": host.read_bytes(CLIENTS_CA_CERT)}, host.read_bytes(AGENT_CERT)
    if not all(contents.values()) or not identity:
        raise InstallerError(f"this server's agent identity or the agents' clients' CA is "
                             f"missing ({IDENTITY_DIR}, {CLIENTS_CA_CERT})", "they are made "
                             "by the step agent.pki: run the install again")
    secrets = {kind: secret_name(kind, data) for kind, data in contents.items()}
    for kind, name in secrets.items():
        if docker_has(host, "secret", "inspect", name):
            continue
        undo.note(f"secret:{name}", {"kind": "agent_secret", "name": name})
        ctx.progress.update(f"docker secret create {name}")
        host.run(["docker", "secret", "create", "--label", f"{LABEL}=agent", name, "-"],
                 stdin=contents[kind], timeout=60)
    _, password = portal_cluster.read_pull_credentials(host) or ("", "")
    wanted = config_hash(ref, secrets, password, identity)
    current = portal_cluster.docker_json(host, ["docker", "service", "inspect", SERVICE])
    labels = ((current or [{}])[0].get("Spec") or {}).get("Labels") or {}
    if labels.get(CONFIG_LABEL) != wanted:
        undo.note("service", {"kind": "agent_service", "name": SERVICE})
        if current:
            ctx.progress.update(f"docker service rm {SERVICE} (its configuration changed)")
            host.run(["docker", "service", "rm", SERVICE], timeout=120)
        ctx.progress.update(f"docker service create {SERVICE} ({ref})")
        host.run(service_argv(ref, secrets, wanted), timeout=180,
                 hint=f"see 'docker service ps --no-trunc {SERVICE}'")
        remove_stale_secrets(host, set(secrets.values()))
    ctx.progress.update(f"waiting for the agent on {ctx.answers.address}:{ports.AGENT}")
    wait_agent(host, ctx.answers.address)
    return undo.entries()


def secret_update_argv(current: dict, wanted: dict, config: str,
                       force: bool = False) -> list[str]:
    """`docker service update` of the agent to new secrets (pure): `current` and `wanted`
    map a SECRET_FILES kind to a secret's name; only the ones that differ change. `force`:
    every task restarted even when no secret changed (an identity file did)."""
    argv = ["docker", "service", "update", "--quiet", "--label-add", f"{CONFIG_LABEL}={config}"]
    if force:
        argv.append("--force")
    for kind in sorted(set(current) - set(wanted)):  # the shared key of earlier releases
        argv += ["--secret-rm", current[kind]]
    for kind, name in wanted.items():
        if current.get(kind) == name:
            continue
        target, mode = SECRET_FILES[kind]
        if current.get(kind):
            argv += ["--secret-rm", current[kind]]
        argv += ["--secret-add", f"source={name},target={target},mode={mode}"]
    return argv + [SERVICE]


#: The agents' shared certificate and key of releases before each server had its own: a
#: service that still carries them loses them at its next update.
LEGACY_SECRET_FILES = {"crt": "agent.crt", "key": "agent.key"}


def service_secrets(spec: dict) -> dict:
    """{kind: secret name} of the agent's service spec (by their file names; the legacy
    shared certificate's too)."""
    by_target = {target: kind for kind, (target, _) in SECRET_FILES.items()}
    by_target |= {target: kind for kind, target in LEGACY_SECRET_FILES.items()}
    found = (spec.get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Secrets") or []
    return {by_target[s["File"]["Name"]]: s["SecretName"] for s in found
            if s.get("File", {}).get("Name") in by_target}


def remove_stale_secrets(host, keep: set) -> None:
    """The agent's secrets of an earlier certificate, now used by no service."""
    listed = host.run(["docker", "secret", "ls", "--filter", f"label={LABEL}=agent",
                       "--format", "{{.Name}}"], check=False, timeout=60)
    for name in listed.out.split() if listed.ok else []:
        if name.startswith(f"{SERVICE}-") and name not in keep:
            host.run(["docker", "secret", "rm", name], check=False, timeout=60)


def wait_agent(host, address: str, timeout: float = WAIT_S) -> None:
    """Until the agent on `address` answers /v1/health over mutual TLS (the portal's client
    certificate, the CA and the agent's own certificate naming `address`): the whole chain
    works."""
    deadline, last = time.monotonic() + timeout, ""
    with agent_client.AgentClient(ca=host.path(portal_layout.CA_CERT),
                                  cert=host.path(agent_client.CLIENT_CERT),
                                  key=host.path(agent_client.CLIENT_KEY), timeout=5) as client:
        while True:
            try:
                client.health(address)
                return
            except agent_client.AgentError as e:
                last = e.message
            if time.monotonic() > deadline:
                tasks = host.run(["docker", "service", "ps", "--no-trunc", "--format",
                                  "{{.Node}} {{.CurrentState}} {{.Error}}", SERVICE],
                                 check=False, timeout=60)
                raise InstallerError(f"the node agent does not answer on {address} after "
                                     f"{timeout:.0f} s ({last[-200:]})",
                                     "its tasks: " + " / ".join(
                                         (tasks.out + tasks.err).strip().splitlines()[-5:]))
            time.sleep(1)


def ready_step(ctx) -> Step:
    """A device's last step: its own agent task running and healthy, so that the portal can
    drive this server as soon as install says it is done (an `apply` right after the last
    device's install must not find its agent still starting). Changes nothing."""
    return Step("agent.ready", "wait for this server's node agent to be healthy",
                lambda: wait_local_agent(ctx.host) and {})


def wait_local_agent(host, timeout: float = WAIT_S) -> str:
    """Until this server runs a healthy task of the agent (its container's health check);
    its container ID. InstallerError after `timeout` with the service's tasks here."""
    deadline = time.monotonic() + timeout
    while True:
        found = host.run(["docker", "ps", "--filter",
                          f"label=com.docker.swarm.service.name={SERVICE}", "--filter",
                          "health=healthy", "--format", "{{.ID}}"], check=False, timeout=60)
        if found.ok and found.out.strip():
            return found.out.split()[0]
        if time.monotonic() > deadline:
            states = host.run(["docker", "ps", "-a", "--filter",
                               f"label=com.docker.swarm.service.name={SERVICE}", "--format",
                               "{{.Status}}"], check=False, timeout=60)
            raise InstallerError(f"the node agent on this server is not healthy after "
                                 f"{timeout:.0f} s ({states.out.strip()[-200:] or 'no task'})",
                                 f"on a manager: docker service ps --no-trunc {SERVICE}; "
                                 "then run the install again")
        time.sleep(1)


# --- undo (reset) -------------------------------------------------------------------------------

@undoer("agent_service")
def undo_service(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "service", "rm", entry["name"]], check=False, timeout=120)


@undoer("agent_secret")
def undo_secret(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "secret", "rm", entry["name"]], check=False, timeout=60)


@undoer("agent_runtime_parent")
def undo_runtime_parent(host, entry: dict) -> None:
    """/opt/dragonball made for the agent's mount: removed when nothing else is in it."""
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("agent_params")
def undo_params(host, entry: dict) -> None:
    """The folder and the parameters in it: copies of the portal's, and some are secret."""
    shutil.rmtree(host.path(entry["path"]), ignore_errors=True)
    host.remove_empty_dirs(entry.get("created_dirs") or [])

