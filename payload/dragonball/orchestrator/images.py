"""Images everywhere: every ready server holds each image a plan launches before any task
needs it, and who holds what (docs/orchestrator.md, "Images everywhere").

Tasks name their image by **image ID** (`sha256:<config digest>`): Swarm then starts a task
from the image the server holds and never asks a registry, so no task start depends on the
portal's server. The release's images reach every server from its own .bin at install or
join (installer/images.py); images of a later release (pushed to the portal's registry)
reach every ready server here, at apply or start, before the launch: each server's agent
pulls the missing ones by digest (a pull gives the same image ID as the archive).

    needs = planning.deploy(spec, observation).images          # ReleaseImage, pure
    ImageSupply(agents, registry.pull_auth(), progress).ensure(needs, ready_nodes)
    rows = holdings(images, nodes, {hostname: agents.images(address) or why not})
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from dragonball.errors import AppError, DragonBallError, Unavailable
from dragonball.orchestrator.naming import IMAGE_LABEL
from dragonball.orchestrator.param_calls import AGENT_RETRY_S, AGENT_WAIT_S

log = logging.getLogger(__name__)

WORKERS = 4


@dataclass(frozen=True)
class ReleaseImage:
    """One image tasks run: the spec's name, the image ID tasks are pinned by and the
    registry reference a server pulls it from (empty: none known, e.g. a service
    created before images were pinned by ID)."""

    name: str
    id: str
    pull: str = ""


class ImagesMissing(AppError, Unavailable):
    """A ready server does not hold an image a launch needs and could not get it."""


@dataclass(frozen=True)
class Shortfall:
    """An image a server lacks, and why it could not get it ("" while not tried)."""

    server: str
    image: ReleaseImage
    reason: str = ""


def held_ids(rows: Iterable[Mapping]) -> set:
    """Every reference an agent's image rows answer to: IDs, tags, repo digests (pure)."""
    found = set()
    for row in rows:
        found.add(row.get("id", ""))
        found.update(row.get("tags") or ())
        found.update(row.get("digests") or ())
    found.discard("")
    return found


def lacking(images: Iterable[ReleaseImage], held: set) -> list[ReleaseImage]:
    """The images whose ID (or, with no ID known, pull reference) is not among `held`."""
    return [i for i in images if (i.id or i.pull) not in held]


def running_image(state) -> ReleaseImage:
    """The image a Swarm service's tasks run (a ServiceState), named by its image label."""
    name = state.labels.get(IMAGE_LABEL) or state.image
    if state.image.startswith("sha256:"):
        return ReleaseImage(name, state.image)
    return ReleaseImage(name, "", state.image)   # made before images were pinned by ID


def holdings(images: Iterable[ReleaseImage], nodes, reports: Mapping) -> list[dict]:
    """One row per server: which of `images` it holds (pure). `reports`: hostname -> the
    agent's image rows, or a message saying why they cannot be had."""
    images = sorted(set(images), key=lambda i: i.name)
    rows = []
    for node in sorted(nodes, key=lambda n: n.hostname):
        report = reports.get(node.hostname, "the server is down: its images cannot be listed"
                             if not node.ready else "its agent was not asked")
        row = {"server": node.hostname, "address": node.address, "ready": node.ready,
               "total": len(images), "held": [], "missing": [], "error": ""}
        if isinstance(report, str):
            row["error"] = report
        else:
            held = held_ids(report)
            for image in images:
                row["missing" if image in lacking([image], held) else "held"].append(image.name)
        rows.append(row)
    return rows


def shortfall_message(shortfalls: list[Shortfall]) -> str:
    return "; ".join(f"{s.server} cannot get {s.image.name}: {s.reason}" for s in shortfalls)


class ImageSupply:
    """Makes every ready server hold the images a launch needs, through its agent."""

    def __init__(self, agents, auth: dict | None,
                 progress: Callable[[str, str, str], None], workers: int = WORKERS,
                 wait_s: float = AGENT_WAIT_S, clock=time.monotonic,
                 sleep=time.sleep) -> None:
        """`auth`: the registry credential a pull needs ({username, password,
        serveraddress}); `progress(image, state, detail)`; an agent that does not answer
        (a server that just joined: its agent's task is starting) is asked again for up
        to `wait_s`."""
        self.agents, self.auth, self.progress, self.workers = agents, auth, progress, workers
        self.wait_s, self.clock, self.sleep = wait_s, clock, sleep

    def ensure(self, images: Iterable[ReleaseImage], nodes) -> list[dict]:
        """Pull on each ready node what it lacks of `images`, servers in parallel; one
        record per pull made. ImagesMissing names every server and image that failed."""
        images = list(dict.fromkeys(images))
        nodes = [n for n in nodes if n.ready]
        if not images or not nodes:
            return []
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            results = list(pool.map(lambda n: self._one(n, images), nodes))
        pulled = [r for done, _ in results for r in done]
        failed = [s for _, shortfalls in results for s in shortfalls]
        if failed:
            raise ImagesMissing(
                "not every server holds the images to launch: " + shortfall_message(failed),
                "nothing was launched; check each server's agent and the portal's registry "
                "(dragonball images where), then run the command again")
        return pulled

    def _held(self, node) -> set:
        """What the node's engine holds, its agent asked until it answers or `wait_s`."""
        deadline = self.clock() + self.wait_s
        while True:
            try:
                return held_ids(self.agents.images(node.address))
            except DragonBallError:
                if self.clock() >= deadline:
                    raise
            self.progress("images", "waiting", f"for the agent on {node.hostname}")
            self.sleep(AGENT_RETRY_S)

    def _one(self, node, images: list[ReleaseImage]) -> tuple[list, list]:
        """(pulls made, shortfalls) of one node."""
        try:
            held = self._held(node)
        except DragonBallError as e:
            return [], [Shortfall(node.hostname, i, f"its agent does not answer ({e.message})")
                        for i in images]
        done, failed = [], []
        for image in lacking(images, held):
            if not image.pull:
                failed.append(Shortfall(node.hostname, image, "no registry reference to pull"))
                continue
            self.progress(image.name, "pulling", f"on {node.hostname}")
            try:
                answer = self.agents.pull_image(node.address, image.pull, image.id, self.auth)
            except DragonBallError as e:
                failed.append(Shortfall(node.hostname, image, e.message))
                continue
            self.progress(image.name, "pulled", f"on {node.hostname} in "
                                                f"{answer.get('seconds', 0):.1f} s")
            done.append({"server": node.hostname, "image": image.name, **answer})
        return done, failed
