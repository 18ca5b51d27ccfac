"""Mutual TLS of the agent's port: the server context (who may call is decided here, in the
handshake), hypercorn's settings with it, and the fatal alert a refused client must get.

A refused client (no certificate, another CA's, one without the clientAuth usage) is told
why by a TLS alert, as the blocking ssl module does: the portal's client then reports "TLS
with the agent failed: ... unknown ca" instead of "cannot reach the agent". Python's
asyncio (3.11 here, bookworm's) drops that alert: SSLProtocol closes the connection without
sending what OpenSSL wrote for the peer (CPython gh-98078, fixed upstream by PR 153620 in
2026 and not in 3.11). `send_handshake_alerts` applies that fix's handshake part.
"""

from __future__ import annotations

import socket
import ssl
from asyncio import sslproto

from hypercorn.config import Config


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate signed by `ca`, and
    trusts nothing else: not the system's CAs, not $SSL_CERT_FILE (MACHINE.md)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class ServerConfig(Config):
    """hypercorn's settings for one socket bound by the agent (so a port taken fails at
    start, and port 0 is known), with the agent's TLS context when `context` is given:
    hypercorn's own create_ssl_context starts from ssl.create_default_context(), which
    would also trust the system's CAs (ca-certificates is in the image) for clients."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext | None = None,
                 handshake_timeout_s: float = 10, idle_timeout_s: float = 30,
                 grace_s: float = 2) -> None:
        self.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the descriptor from here
        self.context = context
        self.ssl_handshake_timeout = handshake_timeout_s
        self.keep_alive_timeout = idle_timeout_s
        self.graceful_timeout = grace_s
        self.include_server_header = False
        self.loglevel = "WARNING"  # the agent's own lines say what matters

    @property
    def ssl_enabled(self) -> bool:
        return self.context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self.context


def send_handshake_alerts(refused=None) -> bool:
    """Make asyncio send the fatal alert of a failed handshake before it closes the
    connection (gh-98078), and tell `refused(peer address, reason)`, which asyncio does not
    (it only logs in debug mode); True when applied. On a Python that has the fix it sends
    nothing twice (the second flush finds nothing to send); asyncio internals other than
    3.11's are left alone."""
    protocol = sslproto.SSLProtocol
    if not all(hasattr(protocol, name) for name in ("_process_outgoing",
                                                    "_on_handshake_complete")) or \
            not hasattr(sslproto, "SSLAgainErrors"):
        return False

    def _do_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except sslproto.SSLAgainErrors:
            self._process_outgoing()
        except ssl.SSLError as exc:
            self._process_outgoing()  # the alert OpenSSL wrote for the peer: the fix
            if refused is not None:
                transport = getattr(self, "_transport", None)
                refused(transport.get_extra_info("peername") if transport else None,
                        exc.reason or str(exc))
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)
    protocol._do_handshake = _do_handshake
    return True
