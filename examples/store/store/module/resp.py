"""A minimal RESP2 client for the store's own helpers (ha.py): one connection, one command at
a time, the password sent with AUTH on the socket (never in a command line or the environment).
Standard library only.
"""

from __future__ import annotations

import socket


class RespError(Exception):
    """No answer (connection, timeout), or an error reply; `code` is the reply's first word."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Resp:
    def __init__(self, host: str, port: int, password: str = "", timeout: float = 1.0) -> None:
        self.where = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout)
        except OSError as e:
            raise RespError(f"cannot reach {self.where}: {e}") from e
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def __enter__(self) -> "Resp":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def call(self, *args):
        payload = b"*%d\r\n" % len(args)
        for arg in args:
            data = str(arg).encode("utf-8")
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            self.sock.sendall(payload)
            return self._reply()
        except OSError as e:
            raise RespError(f"{self.where}: {e}") from e

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise RespError(f"{self.where} closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            text = rest.decode(errors="replace")
            raise RespError(f"{self.where} answered: {text}", text.split(" ", 1)[0])
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RespError(f"unexpected reply from {self.where}: {line[:40]!r}")


def pairs(reply) -> dict:
    """A flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER) as a dict."""
    return dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else {}


def info_fields(text: str | None) -> dict:
    """INFO's `key:value` lines as a dict."""
    fields = {}
    for line in (text or "").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields
