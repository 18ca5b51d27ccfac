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
import socket
import threading
import time

import docker
import requests
from docker.utils.socket import STDOUT, frames_iter

API_VERSION = "1.41"     # Docker 20.10: the oldest engine DragonBall installs
REQUEST_TIMEOUT_S = 10


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
                 timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        # version= given: the client does not ask the engine for it when it is made
        self.client = docker.DockerClient(base_url=f"unix://{socket_path}",
                                          version=API_VERSION, timeout=timeout)
        self.api = self.client.api

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
