"""How an app's parts are named on Swarm (pure; docs/orchestrator.md, "On Swarm").

App `notes`, spec service `api`:
- Swarm service `notes_api` on the overlay network `notes_net`, where the network alias
  `api` resolves to every running task (endpoint_mode dnsrr), so a module reaches another
  by its spec name (``api:8080``);
- labels on the service and on each task's container name the app, the service and its kind;
- its parameters live on every server under ``/var/lib/dragonball/params/notes/api``,
  bound read-only into each task (written by the node agents for the portal).

A service with storage runs as slots (orchestrator.slotting): slot 2 of `store` is the Swarm
service `notes_store-2` with one task, pinned to one server by the node label
``dragonball.placement.notes.store-2``, reachable as `store-2` (and, with its peers, as
`store`), its data in the volumes ``notes_store_storage.2`` and ``notes_store_log.2``.

A one-shot job `migrate` (orchestrator.jobs) is the Swarm service `notes_migrate` too, in
`replicated-job` mode, labelled as a service is with the kind `job`; its parameters live
under ``/var/lib/dragonball/params/notes/migrate`` (job and service names never clash).
"""

from __future__ import annotations

from dragonball.shared import paths
from dragonball.swarm.model import SPEC_HASH_LABEL

PREFIX = "io.dragonball"
APP_LABEL = f"{PREFIX}.app"
SERVICE_LABEL = f"{PREFIX}.service"
KIND_LABEL = f"{PREFIX}.kind"
JOB_KIND = "job"                        # KIND_LABEL's value on a one-shot job's service
SPEC_LABEL = SPEC_HASH_LABEL            # what the Swarm service was made from
NEEDS_LABEL = f"{PREFIX}.needs"         # comma-separated: orders its stop once it leaves the spec
IMAGE_LABEL = f"{PREFIX}.image"         # the spec's image, as the spec names it
SLOT_LABEL = f"{PREFIX}.slot"           # a slot of a service with storage: "store-2"
PLACEMENT_LABEL = "dragonball.placement"  # node label prefix for "one of these servers"
ADDRESS_LABEL = f"{PREFIX}.address-of"  # a moving address's keepalived: the spec's service
ADDRESS_IP_LABEL = f"{PREFIX}.address"  # ... and the address itself, with its prefix

PARAMS_HOST_DIR = paths.PARAMS_DIR
PARAMS_MOUNT = "/run/dragonball-params"
PARAMS_FILE = f"{PARAMS_MOUNT}/params.json"
SERVICE_ROOT = "/opt/dragon_ball/service"


def swarm_service(app: str, service: str) -> str:
    return f"{app}_{service}"


def address_service(app: str, service: str) -> str:
    """The keepalived of a Service's moving address (``notes_web_address``: no spec name has
    a '_', so it never names another service)."""
    return f"{app}_{service}_address"


def network(app: str) -> str:
    return f"{app}_net"


def params_dir(app: str, service: str) -> str:
    """The host folder holding the service's parameters, on every server."""
    return f"{PARAMS_HOST_DIR}/{app}/{service}"


def volume(app: str, service: str, what: str, slot: int) -> str:
    """A slot's storage/ or log/ volume, on the server the slot is pinned to
    (``notes_store_storage.2``: the name Swarm's ``{{.Task.Slot}}`` gave it before slots
    had their own Swarm services, so data written then is found again)."""
    return f"{app}_{service}_{what}.{slot}"


def placement_label(app: str, service: str) -> str:
    """The node label that marks the servers a service's `placement.servers` lists."""
    return f"{PLACEMENT_LABEL}.{app}.{service}"


def module_of(image: str) -> str:
    """The module folder an image holds, by the release's convention
    ``<release>/<module>:<version>``: the last path part of the repository."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]
