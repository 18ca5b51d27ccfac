"""How an app's parts are named on Swarm (pure; docs/orchestrator.md, "On Swarm").

App `notes`, spec service `api`:
- Swarm service `notes_api` on the overlay network `notes_net`, where the network alias
  `api` resolves to every running task (endpoint_mode dnsrr), so a module reaches another
  by its spec name (``api:8080``);
- labels on the service and on each task's container name the app, the service and its kind;
- its parameters live on every server under ``/var/lib/dragonball/params/notes/api``,
  bound read-only into each task (written by the node agents for the portal).
"""

from __future__ import annotations

from dragonball.shared import paths
from dragonball.swarm.model import SPEC_HASH_LABEL

PREFIX = "io.dragonball"
APP_LABEL = f"{PREFIX}.app"
SERVICE_LABEL = f"{PREFIX}.service"
KIND_LABEL = f"{PREFIX}.kind"
SPEC_LABEL = SPEC_HASH_LABEL            # what the Swarm service was made from
NEEDS_LABEL = f"{PREFIX}.needs"         # comma-separated: orders its stop once it leaves the spec
IMAGE_LABEL = f"{PREFIX}.image"         # the spec's image, as the spec names it
PLACEMENT_LABEL = "dragonball.placement"  # node label prefix for "one of these servers"

PARAMS_HOST_DIR = paths.PARAMS_DIR
PARAMS_MOUNT = "/run/dragonball-params"
PARAMS_FILE = f"{PARAMS_MOUNT}/params.json"
SERVICE_ROOT = "/opt/dragon_ball/service"


def swarm_service(app: str, service: str) -> str:
    return f"{app}_{service}"


def network(app: str) -> str:
    return f"{app}_net"


def params_dir(app: str, service: str) -> str:
    """The host folder holding the service's parameters, on every server."""
    return f"{PARAMS_HOST_DIR}/{app}/{service}"


def volume(app: str, service: str, what: str) -> str:
    """A task's storage/ or log/ volume: one per task slot, on the server it runs on."""
    return f"{app}_{service}_{what}.{{{{.Task.Slot}}}}"


def placement_label(app: str, service: str) -> str:
    """The node label that marks the servers a service's `placement.servers` lists."""
    return f"{PLACEMENT_LABEL}.{app}.{service}"


def module_of(image: str) -> str:
    """The module folder an image holds, by the release's convention
    ``<release>/<module>:<version>``: the last path part of the repository."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]
