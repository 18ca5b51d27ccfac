"""The images of this node (docs/agent.md, "Images"): which ones the engine holds, and a
pull by digest that the orchestrator asks for before it launches a task that needs one
(docs/orchestrator.md, "Images everywhere").

    GET  /v1/images                 {"images": [{"id", "tags", "digests"}]}
    POST /v1/images/pull            {"reference": "reg/repo@sha256:..", "id": "sha256:..",
                                     "auth": {"username", "password", "serveraddress"}}
                                    -> {"id", "reference", "pulled": bool, "seconds"}

A pull is refused unless its reference is pinned by digest and names the image ID it must
give: the node then runs exactly the bytes the orchestrator planned. An image already held
(by ID) is not pulled again.
"""

from __future__ import annotations

import re
import time

from agent_api import ApiError
from agent_config import say
from agent_engine import DockerError, Engine

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def image_row(image: dict) -> dict:
    """One image of the list call, as the agent answers it."""
    return {"id": image.get("Id", ""),
            "tags": [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"],
            "digests": [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]}


def pull_problems(body) -> list[str]:
    """What is wrong with a pull request's body (pure)."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = []
    if not isinstance(body.get("reference"), str) or not PINNED.match(body["reference"]):
        problems.append("reference must be a repository pinned by digest (repo@sha256:...)")
    if not isinstance(body.get("id"), str) or not DIGEST.match(body["id"]):
        problems.append("id must be the image ID the pull gives (sha256:<64 hex>)")
    auth = body.get("auth")
    if auth is not None and not (isinstance(auth, dict) and
                                 all(isinstance(v, str) for v in auth.values())):
        problems.append("auth must be an object of strings (username, password, "
                        "serveraddress)")
    return problems


class ImagesApi:
    """GET /v1/images, POST /v1/images/pull."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routes(self) -> dict:
        return {("GET", "/v1/images"): self.images, ("POST", "/v1/images/pull"): self.pull}

    def held(self) -> set:
        return {row["id"] for row in self._rows()}

    def _rows(self) -> list[dict]:
        try:
            return [image_row(i) for i in self.engine.images()]
        except DockerError as e:
            raise ApiError(502, f"the Docker engine: {e.message}") from e

    def images(self, query: dict, body) -> tuple:
        return 200, {"images": sorted(self._rows(), key=lambda r: r["id"])}

    def pull(self, query: dict, body) -> tuple:
        problems = pull_problems(body)
        if problems:
            raise ApiError(400, "invalid pull: " + "; ".join(problems), problems=problems)
        reference, wanted = body["reference"], body["id"]
        start = time.monotonic()
        if wanted in self.held():
            return 200, {"id": wanted, "reference": reference, "pulled": False, "seconds": 0.0}
        say(f"pulling {reference}")
        try:
            self.engine.pull(reference, body.get("auth"))
        except DockerError as e:
            raise ApiError(502, f"the pull of {reference} failed: {e.message}",
                           reference=reference) from e
        seconds = round(time.monotonic() - start, 3)
        if wanted not in self.held():
            raise ApiError(502, f"the pull of {reference} did not give the image {wanted[:19]}",
                           reference=reference)
        return 200, {"id": wanted, "reference": reference, "pulled": True, "seconds": seconds}
