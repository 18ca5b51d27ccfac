"""The portal's install steps (role portal): from a server with a running engine to a
cluster of one, with its registry, its images and its HTTPS portal.

    portal.swarm           docker swarm init on the answered address (a manager already: done)
    portal.pki             the cluster CA, the portal's and the registry's certificates, the
                           portal's ssh key, under /etc/dragonball (keys 0600; kept on re-run)
    portal.registry_auth   the registry's machine credential (pki.new_secret, bcrypt cost 5)
    portal.registry_image  dragonball/registry from the .bin's images section into the engine
                           (streamed into `docker load`; nothing when the engine has that ID)
    portal.registry        the registry container: restart=always, host network (port 5000),
                           storage in <data_dir>/registry, the secrets folder read-only
    portal.registry_trust  /etc/docker/certs.d/<address>:5000/ca.crt and `docker login`
    portal.images          every image of the .bin pushed to the registry (push_archive)
    portal.runtime         the .bin's runtime unpacked to /opt/dragonball/runtime, and
                           /usr/local/bin/dragonball pointing at it
    portal.etcd            etcd, the portal's replicated state: the container dragonball-etcd,
                           a new cluster of one member (the portal's hostname), its member
                           certificate from the controllers' CA (made here, before the node
                           agent's agent.pki keeps it); until /health answers
    portal.config          /etc/dragonball/portal/portal.yaml, its state_endpoints the local
                           etcd member (https://127.0.0.1:2379)
    portal.store           the portal's database: the admin account, the portal as device 1
                           (its node labelled)
    portal.service         dragonball-portal.service (systemd), else a detached process with
                           /run/dragonball/portal.pid; then /healthz answers over HTTPS
    portal.first_code      a first enrollment code, printed with the URL, the CA fingerprint
                           and the join command (never logged)

Why a container and not a Swarm service for the registry: it must serve before anything
can be pulled, on the portal only, whatever the Swarm's state (a lost quorum must not take
the images away); `--restart always` brings it back with the engine. Host networking: no
NAT and no docker-proxy in the way, one port on every address of the portal.

Every step is idempotent and notes what it is about to change first (the journal's undo
log), with kinds of its own (`portal_*`) that `reset` undoes. Secrets (keys, the registry
password, join tokens, the admin password, codes) never enter the journal or the log:
programs whose output holds a token run without their output logged.

Where each part lives:
    layout     paths, names and what the answers make (pure)
    cluster    portal.swarm, portal.pki, portal.registry_auth
    clients    the controllers' CA and client certificate (portal.etcd, agent.pki)
    etcd       portal.etcd, and the etcd member a later manager starts (installer/standby.py)
    registry   portal.registry_image, portal.registry, portal.registry_trust, portal.images
    service    portal.runtime, portal.config, portal.store, portal.service, portal.first_code
    undo       the undo handlers of the `portal_*` kinds (reset)
This module only puts the steps in order; installer/roles.py places them in a portal's
install (the node agent's steps go between `portal_steps` and `first_code_step`). Callers
import a name from the module that defines it.
"""

from __future__ import annotations

from dragonball.installer.portal import cluster, etcd, registry, service
# The `portal_*` undo kinds: registered before a step can note one (UndoLog.note checks).
from dragonball.installer.portal import undo  # noqa: F401
from dragonball.installer.steps import Step

#: The portal's own steps, in the order a portal's install runs them.
STEP_IDS = ("portal.swarm", "portal.pki", "portal.registry_auth", "portal.registry_image",
            "portal.registry", "portal.registry_trust", "portal.images", "portal.runtime",
            "portal.etcd", "portal.config", "portal.store", "portal.service", "portal.first_code")


def portal_steps(ctx) -> list[Step]:
    """The portal's steps from the Swarm to its running service (portal.swarm ...
    portal.service), after the engine and the firewall."""
    actions = {
        "portal.swarm": ("initialize the Swarm (this server is its first manager)",
                         cluster.swarm_init),
        "portal.pki": ("the cluster CA and the portal's and registry's certificates",
                       cluster.make_pki),
        "portal.registry_auth": ("the registry's credentials", cluster.registry_auth),
        "portal.registry_image": ("load the registry image into the engine",
                                  registry.load_registry_image),
        "portal.registry": ("start the registry", registry.start_registry),
        "portal.registry_trust": ("trust and log in to the registry", registry.trust_registry),
        "portal.images": ("push the release's images to the registry", registry.push_images),
        "portal.runtime": ("copy the runtime to /opt/dragonball/runtime",
                           service.install_runtime),
        "portal.etcd": ("start etcd (the portal's replicated state)", etcd.start_portal_etcd),
        "portal.config": ("write the portal's settings", service.write_config),
        "portal.store": ("the portal's database and the admin account", service.make_store),
        "portal.service": ("start the portal service", service.start_service),
    }
    return [Step(step_id, title, (lambda action=action: action(ctx)))
            for step_id, (title, action) in actions.items()]


def first_code_step(ctx) -> Step:
    """The portal's last step: a first enrollment code, printed once everything answers."""
    return Step("portal.first_code", "a first enrollment code", lambda: service.first_code(ctx))
