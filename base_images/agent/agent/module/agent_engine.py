"""The local Docker engine through its Unix socket (the adapter), with the Docker SDK for
Python (Debian's python3-docker): the containers of the app, their inspection and logs, and
an action run inside one with its input on stdin.

`exec start` hijacks the connection: the SDK hands over the socket (`socket=True`), we
write the command's stdin on it and read its multiplexed stdout/stderr frames with the
SDK's own reader (docker.utils.socket.frames_iter). Every failure leaves here as
DockerError (the engine's status and message) or ExecTimeout; the SDK's and requests'
errors do not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import tarfile
import threading
import time

import docker
import requests
from docker.utils.socket import STDOUT, frames_iter

API_VERSION = "1.41"     # Docker 20.10: the oldest engine DragonBall installs
REQUEST_TIMEOUT_S = 10
ARCHIVE_TIMEOUT_S = 3600  # a volume's tar in or out: the engine answers once all is done
VOLUME_MOUNT = "/dragonball-volume"   # where a throwaway container mounts the volume
TRANSFER_LABEL = "io.dragonball.transfer"
OWN_CONTAINER = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf) ")


class DockerError(Exception):
    """The engine answered an error, or could not be reached (status 502)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ExecTimeout(Exception):
    """The command did not end in time; `output` is what it had written so far."""

    def __init__(self, seconds: float, output: bytes) -> None:
        super().__init__(f"no end after {seconds:.0f} s")
        self.seconds, self.output = seconds, output


@dataclasses.dataclass
class ExecResult:
    exit_code: int | None
    stdout: bytes           # whole, up to Engine.STDOUT_LIMIT (the JSON report)
    output: bytes           # stdout and stderr as they came, the last `output_limit` bytes
    seconds: float


@contextlib.contextmanager
def engine_errors(socket_path: str, what: str):
    """The SDK's errors as DockerError, once, here."""
    try:
        yield
    except docker.errors.APIError as e:
        raise DockerError(e.status_code or 502, e.explanation or str(e)) from e
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            OSError) as e:
        raise DockerError(502, f"the Docker engine at {socket_path} does not answer "
                               f"{what}: {e}") from e


class Engine:
    """The calls the agent makes; `socket_path` is the engine's socket."""

    STDOUT_LIMIT = 4 << 20

    def __init__(self, socket_path: str = "/var/run/docker.sock",
                 timeout: float = REQUEST_TIMEOUT_S, helper_image: str | None = None) -> None:
        self.socket_path = socket_path
        # version= given: the client does not ask the engine for it when it is made
        self.client = docker.DockerClient(base_url=f"unix://{socket_path}",
                                          version=API_VERSION, timeout=timeout)
        self.api = self.client.api
        self._archive_api = None
        self._helper_image = helper_image

    def inspect(self, ref: str) -> dict:
        with engine_errors(self.socket_path, "inspect"):
            return self.api.inspect_container(ref)

    def containers(self, label: str) -> list[dict]:
        """The inspection of every container (running or not) carrying `label`."""
        with engine_errors(self.socket_path, "list"):
            found = self.client.containers.list(all=True, filters={"label": label},
                                                ignore_removed=True)
        return [c.attrs for c in found]

    def logs(self, container: dict, tail: int) -> list[str]:
        """The last `tail` lines, stdout and stderr as they came (the SDK demultiplexes)."""
        with engine_errors(self.socket_path, "logs"):
            data = self.api.logs(container["Id"], stdout=True, stderr=True, tail=tail)
        return data.decode("utf-8", errors="replace").splitlines()[-tail:]

    def exec_run(self, container_id: str, argv: list[str], stdin: bytes, timeout: float,
                 output_limit: int) -> ExecResult:
        """Run `argv` in the container with `stdin` as its standard input (never in argv or
        the environment); ExecTimeout after `timeout` seconds."""
        started = time.monotonic()
        with engine_errors(self.socket_path, "exec"):
            exec_id = self.api.exec_create(container_id, argv, stdin=True, stdout=True,
                                           stderr=True, tty=False)["Id"]
            answer = self.api.exec_start(exec_id, socket=True)
        stream = ExecStream(answer, output_limit, self.STDOUT_LIMIT)
        timed_out = stream.run(stdin, timeout)
        seconds = round(time.monotonic() - started, 3)
        if timed_out:
            raise ExecTimeout(seconds, stream.output())
        return ExecResult(self._exit_code(exec_id), bytes(stream.stdout), stream.output(),
                          seconds)

    def _exit_code(self, exec_id: str, wait_s: float = 5.0) -> int | None:
        """The engine may report Running for a moment after the stream ends."""
        deadline = time.monotonic() + wait_s
        while True:
            with engine_errors(self.socket_path, "exec inspect"):
                state = self.api.exec_inspect(exec_id)
            if not state.get("Running") or time.monotonic() > deadline:
                return state.get("ExitCode")
            time.sleep(0.05)


    # --- images -------------------------------------------------------------------------------

    def images(self) -> list[dict]:
        """Every image of the engine as the list call gives it (Id, RepoTags, RepoDigests)."""
        with engine_errors(self.socket_path, "image list"):
            return self.api.images()

    def pull(self, reference: str, auth: dict | None) -> None:
        """Pull `reference` (`registry/repo@sha256:...`); the engine's answer comes once the
        layers are in, hence the long timeout. An error the engine streams is raised too."""
        with engine_errors(self.socket_path, "pull"):
            for event in self.archive_api.pull(reference, auth_config=auth or None,
                                               stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise DockerError(502, event["error"])

    # --- networks -----------------------------------------------------------------------------

    def networks(self, label: str) -> list[dict]:
        """Every network this engine holds carrying `label` (a manager lists the Swarm's
        too; any server, the copies its tasks still hold), inspected: the list call leaves
        out the containers attached. One gone between the two calls is left out."""
        with engine_errors(self.socket_path, "network list"):
            found = self.api.networks(filters={"label": label}) or []
        inspected = []
        for network in found:
            try:
                with engine_errors(self.socket_path, "network inspect"):
                    inspected.append(self.api.inspect_network(network["Id"]))
            except DockerError as e:
                if e.status != 404:
                    raise
        return inspected

    # --- volumes ------------------------------------------------------------------------------

    def volumes(self, label: str) -> list[dict]:
        """The inspection of every volume carrying `label`."""
        with engine_errors(self.socket_path, "volume list"):
            return self.api.volumes(filters={"label": label}).get("Volumes") or []

    def volume(self, name: str) -> dict | None:
        """The volume's inspection, None when there is none."""
        try:
            with engine_errors(self.socket_path, "volume inspect"):
                return self.api.inspect_volume(name)
        except DockerError as e:
            if e.status == 404:
                return None
            raise

    def container_list(self) -> list[dict]:
        """Every container, running or not, as the list call gives it (Mounts, State): one
        call, where inspecting each would be one per container."""
        with engine_errors(self.socket_path, "list"):
            return self.api.containers(all=True)

    def volume_sizes(self) -> dict:
        """{volume name: bytes} from `docker system df` (the engine walks every volume's
        files: seconds on a large host, so asked for only on request)."""
        with engine_errors(self.socket_path, "df"):
            found = self.archive_api.df().get("Volumes") or []
        return {v["Name"]: v.get("UsageData", {}).get("Size") for v in found}

    def create_volume(self, name: str, labels: dict) -> None:
        with engine_errors(self.socket_path, "volume create"):
            self.api.create_volume(name, labels=labels)

    def remove_container(self, container_id: str) -> None:
        """Remove a stopped container (an ended task's, kept as Swarm's history)."""
        with engine_errors(self.socket_path, "container remove"):
            self.api.remove_container(container_id)

    def pause_container(self, container_id: str) -> None:
        """Freeze its processes (the cgroup freezer): they keep their state and connections
        and go on at unpause."""
        with engine_errors(self.socket_path, "container pause"):
            self.api.pause(container_id)

    def unpause_container(self, container_id: str) -> None:
        with engine_errors(self.socket_path, "container unpause"):
            self.api.unpause(container_id)

    def remove_volume(self, name: str) -> None:
        with engine_errors(self.socket_path, "volume remove"):
            self.api.remove_volume(name)

    @property
    def archive_api(self):
        """A client with a long read timeout: an archive's answer comes when all is done."""
        if self._archive_api is None:
            self._archive_api = docker.APIClient(base_url=f"unix://{self.socket_path}",
                                                 version=API_VERSION,
                                                 timeout=ARCHIVE_TIMEOUT_S)
        return self._archive_api

    @contextlib.contextmanager
    def volume_holder(self, volume: str, read_only: bool, transfer_id: str):
        """A created, never started container of the agent's own image (on every node: no
        pull, and nothing runs in it) with `volume` at VOLUME_MOUNT, no network; removed
        on leaving. Yields its id."""
        binds = {volume: {"bind": VOLUME_MOUNT, "mode": "ro" if read_only else "rw"}}
        with engine_errors(self.socket_path, "create"):
            made = self.api.create_container(
                self.helper_image(), command=["true"], entrypoint=[], network_disabled=True,
                labels={TRANSFER_LABEL: transfer_id},
                host_config=self.api.create_host_config(binds=binds, network_mode="none"))
        try:
            yield made["Id"]
        finally:
            with contextlib.suppress(DockerError), engine_errors(self.socket_path, "remove"):
                self.api.remove_container(made["Id"], force=True)

    def read_archive(self, container_id: str, chunk_size: int):
        """The volume's files as a tar stream (chunks), named ./... from its root."""
        with engine_errors(self.socket_path, "archive"):
            stream, _ = self.archive_api.get_archive(container_id, VOLUME_MOUNT + "/.",
                                                     chunk_size=chunk_size)
        with engine_errors(self.socket_path, "archive"):
            yield from stream

    def first_entries(self, container_id: str, count: int) -> list[str]:
        """The names of the first `count` entries of the volume's tar, read no further."""
        with engine_errors(self.socket_path, "archive"):
            answer = self.api._get(self.api._url("/containers/{0}/archive", container_id),
                                   params={"path": VOLUME_MOUNT + "/."}, stream=True)
            self.api._raise_for_status(answer)
            try:
                with tarfile.open(fileobj=answer.raw, mode="r|") as tar:
                    return [m.name for _, m in zip(range(count), tar)]
            finally:
                answer.close()

    def write_archive(self, container_id: str, tar_file) -> None:
        """Extract `tar_file` (an open file: streamed, never read whole) into the volume."""
        with engine_errors(self.socket_path, "archive"):
            if not self.archive_api.put_archive(container_id, VOLUME_MOUNT, tar_file):
                raise DockerError(502, "the engine did not extract the archive")

    def helper_image(self) -> str:
        """The agent's own image (its container found in /proc/self/mountinfo: Docker
        mounts /etc/hostname from /var/lib/docker/containers/<id>/), or the one given."""
        if self._helper_image is None:
            try:
                with open("/proc/self/mountinfo", encoding="utf-8") as f:
                    found = OWN_CONTAINER.search(f.read())
            except OSError:
                found = None
            if not found:
                raise DockerError(503, "the agent cannot find its own container (not in a "
                                       "container?): no image for the volume's helper")
            self._helper_image = self.inspect(found.group(1))["Image"]
        return self._helper_image


class ExecStream:
    """The hijacked connection of one exec: stdin written, frames read until the command
    ends or the deadline, when a timer shuts the socket (the SDK's reader waits in a
    select() without a timeout, so closing it under the reader is what stops it)."""

    def __init__(self, answer, output_limit: int, stdout_limit: int) -> None:
        # The SDK gives a socket.SocketIO on a Unix socket: a socket object of our own on
        # a duplicate of its descriptor has sendall and shutdown (shared with the original).
        self.answer, self.sock = answer, socket.socket(fileno=os.dup(answer.fileno()))
        self.sock.setblocking(True)  # the descriptor came non-blocking (the SDK's timeout)
        self.output_limit, self.stdout_limit = output_limit, stdout_limit
        self.stdout, self._output = bytearray(), bytearray()

    def run(self, stdin: bytes, timeout: float) -> bool:
        """Talk to the command; True when the deadline came first."""
        expired = threading.Event()
        timer = threading.Timer(timeout, self._expire, (expired,))
        timer.start()
        try:
            if stdin:
                self.sock.sendall(stdin)
            self.sock.shutdown(socket.SHUT_WR)  # the command reads EOF after the input
            for stream, payload in frames_iter(self.sock, tty=False):
                self._keep(stream, payload)
        except OSError as e:
            if not expired.is_set():
                raise DockerError(502, f"the exec stream broke: {e}") from e
        finally:
            timer.cancel()
            self.sock.close()
            self.answer.close()
        return expired.is_set()

    def _expire(self, expired: threading.Event) -> None:
        expired.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _keep(self, stream: int, payload: bytes) -> None:
        self._output += payload
        if len(self._output) > 2 * self.output_limit:  # trimmed now and then, not per frame
            del self._output[:-self.output_limit]
        if stream == STDOUT and len(self.stdout) < self.stdout_limit:
            self.stdout += payload

    def output(self) -> bytes:
        """Stdout and stderr as they came, the last `output_limit` bytes."""
        return bytes(self._output[-self.output_limit:]) if self.output_limit else b""
