"""The local Docker engine through its Unix socket (the adapter): Engine API 1.41 over
http.client, and a hand-made request for `exec start`, whose answer hijacks the
connection (we write the command's stdin on it, then read its multiplexed output).

Every failure leaves here as DockerError (the engine's status and message) or
ExecTimeout; OSError and http.client's errors do not."""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import time
import urllib.parse

from docker_stream import STDOUT, FrameParser, StreamError, Tail, demux, lines_of

API = "/v1.41"
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
    stdout: bytes           # whole, up to STDOUT_LIMIT (the JSON report)
    output: bytes           # stdout and stderr as they came, the last `output_limit` bytes
    seconds: float


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = unix_socket(self.socket_path, self.timeout)


def unix_socket(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def _message(status: int, data: bytes) -> str:
    try:
        return json.loads(data).get("message") or f"HTTP {status}"
    except (ValueError, AttributeError):
        return data.decode(errors="replace").strip()[:300] or f"HTTP {status}"


class Engine:
    """The calls the agent makes; `socket_path` is the engine's socket."""

    STDOUT_LIMIT = 4 << 20

    def __init__(self, socket_path: str = "/var/run/docker.sock",
                 timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.socket_path, self.timeout = socket_path, timeout

    def request(self, method: str, path: str, query: dict | None = None,
                body: dict | None = None) -> bytes:
        """The answer's body; DockerError for a status >= 400 or no engine."""
        url = API + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn = UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, url, body=data, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException) as e:
            raise DockerError(502, f"the Docker engine at {self.socket_path} does not answer "
                                   f"{method} {path}: {e}") from e
        finally:
            conn.close()
        if answer.status >= 400:
            raise DockerError(answer.status, _message(answer.status, payload))
        return payload

    def json(self, method: str, path: str, query: dict | None = None,
             body: dict | None = None):
        return json.loads(self.request(method, path, query, body) or b"null")

    # --- containers ------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict:
        return self.json("GET", f"/containers/{urllib.parse.quote(ref, safe='')}/json")

    def containers(self, label: str) -> list[dict]:
        """The inspection of every container (running or not) carrying `label`."""
        listed = self.json("GET", "/containers/json",
                           {"all": "1", "filters": json.dumps({"label": [label]})})
        found = []
        for item in listed:
            try:
                found.append(self.inspect(item["Id"]))
            except DockerError as e:
                if e.status != 404:  # removed since the list: not an error
                    raise
        return found

    def logs(self, container: dict, tail: int) -> list[str]:
        data = self.request("GET", f"/containers/{container['Id']}/logs",
                            {"stdout": "1", "stderr": "1", "tail": str(tail)})
        if (container.get("Config") or {}).get("Tty"):
            return data.decode("utf-8", errors="replace").splitlines()[-tail:]
        try:
            frames = demux(data)
        except StreamError as e:
            raise DockerError(502, f"the engine's log stream is not readable: {e}") from e
        return lines_of(frames, tail)

    # --- exec ------------------------------------------------------------------------------

    def exec_run(self, container_id: str, argv: list[str], stdin: bytes, timeout: float,
                 output_limit: int) -> ExecResult:
        """Run `argv` in the container with `stdin` as its standard input (never in argv or
        the environment); ExecTimeout after `timeout` seconds."""
        started = time.monotonic()
        created = self.json("POST", f"/containers/{container_id}/exec", body={
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Cmd": argv})
        try:
            stdout, output = self._attach(created["Id"], stdin, started + timeout,
                                          output_limit)
        except ExecTimeout as e:
            e.seconds = round(time.monotonic() - started, 3)
            raise
        return ExecResult(self._exit_code(created["Id"]), stdout, output,
                          round(time.monotonic() - started, 3))

    def _attach(self, exec_id: str, stdin: bytes, deadline: float, output_limit: int):
        body = b'{"Detach": false, "Tty": false}'
        head = (f"POST {API}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode()
        parser, stdout, output = FrameParser(), bytearray(), Tail(output_limit)
        try:
            sock = unix_socket(self.socket_path, self.timeout)
        except OSError as e:
            raise DockerError(502, f"cannot connect to {self.socket_path}: {e}") from e
        try:
            sock.sendall(head + body)
            rest = _read_answer_head(sock)
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            if stdin:
                sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)  # the command reads EOF after the input
            data = rest
            while True:
                for stream, payload in parser.feed(data):
                    output.write(payload)
                    if stream == STDOUT and len(stdout) < self.STDOUT_LIMIT:
                        stdout += payload
                data = sock.recv(65536)
                if not data:
                    return bytes(stdout), output.value()
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
        except socket.timeout as e:
            raise ExecTimeout(0.0, output.value()) from e
        except StreamError as e:
            raise DockerError(502, f"the engine's exec stream is not readable: {e}") from e
        except OSError as e:
            raise DockerError(502, f"the exec stream broke: {e}") from e
        finally:
            sock.close()

    def _exit_code(self, exec_id: str, wait_s: float = 5.0) -> int | None:
        """The engine may report Running for a moment after the stream ends."""
        deadline = time.monotonic() + wait_s
        while True:
            state = self.json("GET", f"/exec/{exec_id}/json")
            if not state.get("Running") or time.monotonic() > deadline:
                return state.get("ExitCode")
            time.sleep(0.05)


def _read_answer_head(sock: socket.socket) -> bytes:
    """Read the HTTP answer's head; the bytes after it (the stream's start) are returned.
    101 (an upgrade) or 200 go on; anything else is the engine's DockerError."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise DockerError(502, "the engine closed the exec connection before answering")
        data += chunk
        if len(data) > 65536:
            raise DockerError(502, "the engine's answer to exec start has no end of head")
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise DockerError(502, f"the engine answered exec start with {status_line!r}") from None
    if status not in (101, 200):
        raise DockerError(status, _message(status, rest))
    return rest
