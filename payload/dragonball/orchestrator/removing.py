"""Taking an app away (`dragonball remove APP`, issue 15): everything its applies made.

Before, `stop` scaled to 0 and an empty spec was refused: an app's services stayed at 0/0,
its network, its volumes, its parameter folders on every server and its record on the
portal (after which `dragonball services` failed for the other app's operators: "several
apps are applied"). `AppRemoval.run` takes away, in this order, each step going on where
a server does not answer and saying so:

1. its Swarm services (every one labelled with the app: services, slots, moving addresses);
2. its overlay network, once no task is attached (asked again for up to `WAIT_S`);
3. its parameter folders on every ready server;
4. its volumes on every ready server (its data: unless `keep_data`), each once no
   container uses it (asked again for up to `WAIT_S`);
5. its placement labels on the servers, then its record on the portal: spec, states,
   notifications, slot pins; its parameters are emptied (their revision keeps growing, so a
   server that was down keeps refusing the old folder's values if the app comes back).

The audit log records `app.removed` with what went and what stayed.
"""

from __future__ import annotations

import logging
import time

from dragonball.errors import DragonBallError
from dragonball.orchestrator import naming

log = logging.getLogger(__name__)

WAIT_S = 60.0   # tasks take this long at most to go once their service is removed
RETRY_S = 1.0


class AppRemoval:
    """One app's removal over the Control's collaborators."""

    def __init__(self, engine, store, agents, clock=time.monotonic, sleep=time.sleep) -> None:
        self.engine, self.store, self.agents = engine, store, agents
        self.clock, self.sleep = clock, sleep

    def run(self, app: str, services: list[str], keep_data: bool = False) -> dict:
        """Remove `app` (its spec's `services`); {app, services, network, params, volumes,
        kept, problems}."""
        removed = self._services(app)
        problems: list[str] = []
        network = self._retried(lambda: self.engine.remove_network(naming.network(app)),
                                f"the network {naming.network(app)}", problems)
        nodes = [n for n in self.engine.nodes() if n.ready]
        down = [n.hostname for n in self.engine.nodes() if not n.ready]
        if down:
            problems.append(f"{', '.join(down)} down: its parameter folders and volumes of "
                            f"{app} stay there until removed by hand")
        params = self._params(app, services, nodes, problems)
        volumes, kept = ([], self._app_volumes(app, nodes)) if keep_data else \
            (self._volumes(app, nodes, problems), [])
        self._labels(app)
        self.store.forget_app(app)
        self.store.set_pins(app, {})
        for name in services:
            if self.store.params(app, name)[0]:
                self.store.set_params(app, name, {})
        found = {"app": app, "services": removed, "network": network, "params": params,
                 "volumes": volumes, "kept": kept, "problems": problems}
        self.store.store.record("app.removed", "admin", None, {
            "app": app, "services": removed, "volumes": len(volumes), "kept": len(kept),
            "problems": problems})
        return found

    def _services(self, app: str) -> list[str]:
        names = sorted(s.name for s in self.engine.services({naming.APP_LABEL: app}))
        for name in names:
            self.engine.remove_service(name)
        return names

    def _retried(self, call, what: str, problems: list[str]) -> bool:
        """`call` until it works (its tasks may still be going) or WAIT_S pass."""
        deadline = self.clock() + WAIT_S
        while True:
            try:
                call()
                return True
            except DragonBallError as e:
                if self.clock() >= deadline:
                    problems.append(f"{what} stays: {e.message}")
                    return False
            self.sleep(RETRY_S)

    def _params(self, app: str, services: list[str], nodes, problems: list[str]) -> list:
        taken = []
        for node in nodes:
            for name in services:
                try:
                    self.agents.delete_params(node.address, app, name)
                    taken.append(f"{node.hostname}:{name}")
                except DragonBallError as e:
                    problems.append(f"the parameters of {name} stay on {node.hostname}: "
                                    f"{e.message}")
        return taken

    def _app_volumes(self, app: str, nodes) -> list[str]:
        found = []
        for node in nodes:
            try:
                found += [f"{node.hostname}:{v['name']}" for v in self.agents.volumes(
                    node.address) if v.get("app") == app]
            except DragonBallError as e:
                log.warning("the volumes on %s could not be listed: %s", node.hostname,
                            e.message)
        return found

    def _volumes(self, app: str, nodes, problems: list[str]) -> list[str]:
        removed = []
        for node in nodes:
            try:
                names = [v["name"] for v in self.agents.volumes(node.address)
                         if v.get("app") == app]
            except DragonBallError as e:
                problems.append(f"the volumes on {node.hostname} could not be listed: "
                                f"{e.message}")
                continue
            for name in names:
                if self._retried(lambda: self.agents.delete_volume(node.address, name),
                                 f"the volume {name} on {node.hostname}", problems):
                    removed.append(f"{node.hostname}:{name}")
        return removed

    def _labels(self, app: str) -> None:
        prefix = f"{naming.PLACEMENT_LABEL}.{app}."
        for node in self.engine.nodes():
            stale = {k: None for k in node.labels if k.startswith(prefix)}
            if stale:
                try:
                    self.engine.update_node(node.id, labels=stale)
                except DragonBallError as e:
                    log.warning("the placement labels of %s stay on %s: %s", app,
                                node.hostname, e.message)
