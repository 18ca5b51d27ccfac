"""The builder's one door to the Docker engine (docker SDK behind a small interface).

Every docker-py or requests exception is translated here into `BuildEngineError`
(the engine refused or is unreachable) or `BuildError` (a Dockerfile step
failed), with what, where and what to do next; none leaks past this module.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import subprocess
import typing
from collections.abc import Callable, Iterator, Mapping

import docker
import docker.errors
import requests.exceptions

from dragonball.errors import BuildError, Unavailable

log = logging.getLogger(__name__)

SOCKET_URL = "unix:///var/run/docker.sock"
DOCKER_CLI = "/usr/bin/docker"  # Debian's client; /usr/local/bin may hold another
# Debian 12's engine is 20.10 (API 1.41). Naming the version also stops the
# SDK from connecting in its constructor, so errors surface at the first call.
API_VERSION = "1.41"
IMPORT_TIMEOUT_S = 600
_START_HINT = "start the engine with 'sudo bash scripts/setup.sh' and check '/usr/bin/docker info'"


class BuildEngineError(BuildError, Unavailable):
    """The build machine's Docker engine refused or failed a request."""


class Engine:
    """The few engine operations the builder needs."""

    def __init__(self, base_url: str = SOCKET_URL) -> None:
        self.base_url = base_url
        # 10 minutes, not the SDK's 60 s: the engine answers an import only once it
        # has unpacked the whole root filesystem.
        self._client = docker.DockerClient(base_url=base_url, version=API_VERSION,
                                           timeout=IMPORT_TIMEOUT_S)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def ping(self) -> None:
        """Raise `BuildEngineError` unless the engine answers."""
        with self._translated("ping the Docker engine"):
            self._client.ping()

    def image_exists(self, ref: str) -> bool:
        """Whether the engine holds an image named `ref`."""
        with self._translated(f"look up image {ref}"):
            try:
                self._client.images.get(ref)
            except docker.errors.ImageNotFound:
                return False
        return True

    def image_size(self, ref: str) -> int:
        """The size in bytes of image `ref`, as `docker image inspect` reports it."""
        with self._translated(f"inspect image {ref}"):
            return int(self._client.images.get(ref).attrs["Size"])

    def import_tar(self, tar: pathlib.Path, repository: str, tag: str) -> str:
        """`docker import` a root filesystem tar as ``repository:tag``; return the image ID."""
        with self._translated(f"import {tar} as {repository}:{tag}"):
            # An open file, not a path: given a path it cannot open, the SDK asks the
            # engine to download it as a URL. requests streams the file, never in memory.
            with open(tar, "rb") as data:
                answer = self._client.api.import_image(data, repository, tag)
            log.debug("import answered %s", answer)
            return self._client.images.get(f"{repository}:{tag}").id

    def build(self, context: pathlib.Path, tag: str, buildargs: Mapping[str, str],
              on_line: Callable[[str], None]) -> str:
        """Build the Dockerfile in `context` as `tag`, streaming output lines; return the ID."""
        with self._translated(f"build {tag} from {context}"):
            events = self._client.api.build(path=str(context), tag=tag, buildargs=dict(buildargs),
                                            rm=True, forcerm=True, decode=True)
            image_id = _follow_build(events, tag, context, on_line)
        return image_id or self._image_id(tag)

    def inspect_image(self, ref: str) -> dict:
        """`docker image inspect` of `ref` (Id, RootFS.Layers, Size, ...)."""
        with self._translated(f"inspect image {ref}"):
            return self._client.images.get(ref).attrs

    @contextlib.contextmanager
    def save(self, refs: list[str]) -> Iterator[typing.BinaryIO]:
        """`docker save` of `refs` as one stream (a layer shared by several images once)."""
        argv = [DOCKER_CLI, "save", *refs]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            status, err = proc.wait(), proc.stderr.read().decode(errors="replace").strip()
            proc.stderr.close()
        if status != 0:
            raise BuildEngineError(f"'docker save {' '.join(refs)}' failed (exit {status}): "
                                   f"{err}", "check that every image exists: /usr/bin/docker "
                                   "image ls")

    def _image_id(self, ref: str) -> str:
        with self._translated(f"inspect image {ref}"):
            return self._client.images.get(ref).id

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except requests.exceptions.ConnectionError as e:
            raise BuildEngineError(f"cannot {what}: no Docker engine answers on "
                                   f"{self.base_url}", _START_HINT) from e
        except docker.errors.APIError as e:
            raise BuildEngineError(f"cannot {what}: the engine said {e.explanation or e}",
                                   "read the engine's message; '/usr/bin/docker info' shows "
                                   "its state") from e
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise BuildEngineError(f"cannot {what}: {e}", _START_HINT) from e
        except OSError as e:  # after requests' errors, which are OSErrors too
            raise BuildError(f"cannot {what}: {e.strerror} ({e.filename})",
                             "check the file and the disk, then run build.py again") from e


def _follow_build(events: Iterator[dict], tag: str, context: pathlib.Path,
                  on_line: Callable[[str], None]) -> str | None:
    """Consume the engine's build stream; raise `BuildError` on a failed step."""
    image_id, pending, recent = None, "", []
    for event in events:
        if "error" in event:
            raise _step_failed(tag, context, event, recent + [pending])
        if "aux" in event and isinstance(event["aux"], dict):
            image_id = event["aux"].get("ID", image_id)
        pending += event.get("stream", "")
        *lines, pending = pending.split("\n")
        for line in lines:
            recent = (recent + [line])[-15:]
            on_line(line)
    if pending:
        on_line(pending)
    return image_id


def _step_failed(tag: str, context: pathlib.Path, event: dict, recent: list[str]) -> BuildError:
    detail = event.get("errorDetail") or {}
    message = (detail.get("message") or event["error"]).strip()
    step = next((line for line in reversed(recent) if line.startswith("Step ")), "")
    tail = "\n".join("  | " + line for line in recent if line.strip())
    return BuildError(f"building {tag} failed at {step or 'an early step'}: {message}\n"
                      f"(Dockerfile in {context}); last output:\n{tail}",
                      "fix the failing step; rerun with --debug for the full trace")

