"""Run the portal: uvicorn over HTTPS (the portal's certificate from the cluster CA) on the
portal's own address.

The socket is bound here, on the address the settings name (never "localhost": uvicorn
resolved it to ::1 and failed where there is no IPv6, MACHINE.md), so a held port or a
foreign address is a clear error rather than uvicorn's exit. The event loop and HTTP
parser are pinned to asyncio and h11 (pure Python): nothing optional to freeze.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading

from dragonball.errors import DragonBallError, Failed, PortalError
from dragonball.orchestrator import notify
from dragonball.portal import firewall, strangers, versions, wiring
from dragonball.portal.api import create_app
from dragonball.portal.leadership import AlwaysLeader, Leadership
from dragonball.portal.settings import Settings
from dragonball.portal.statelog import open_store
from dragonball.portal.store import Store
from dragonball.swarm import Swarm

log = logging.getLogger("dragonball.portal")

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "dragonball": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


#: On SIGTERM, how long open connections may take to finish. A TLS connection a client keeps
#: alive waits for the client's close_notify (asyncio gives it 30 s): stop waiting sooner.
GRACE_S = 5
#: The request line and headers together, at most (refused with 400 beyond); bodies: bodylimit.
MAX_HEAD_BYTES = 16 * 1024
#: How often the serving portal looks whether its certificate file was renewed.
CERT_POLL_S = 5.0
#: How often every portal applies the replicated state's new entries (a standby's reads).
FOLLOW_S = 1.0
#: How often the leading portal looks whether the replicated log needs a snapshot.
SNAPSHOT_POLL_S = 60.0


class ServeError(PortalError, Failed):
    """The portal cannot start serving."""


def bind(address: str, port: int) -> socket.socket:
    """A listening TCP socket on exactly `address`:`port`."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets of that protocol, and with
    # it on every kept-alive answer waited ~40 ms for the client's delayed ACK (bench)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ServeError(f"cannot listen on {address}:{port}: {e.strerror}",
                         "check that the address is this server's ('ip -br addr') and that "
                         f"nothing else listens on port {port} ('ss -ltnp')") from e
    sock.set_inheritable(True)
    return sock


def _stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def watch_certificate(config, stop: threading.Event, interval: float = CERT_POLL_S) -> None:
    """Load a renewed certificate into the serving TLS context (`dragonball certs renew`):
    connections from then on get the new one, open ones keep theirs: no restart, no outage.
    uvicorn makes `config.ssl` when it starts; a file half written is tried again later."""
    seen = _stamp(config.ssl_certfile)
    while not stop.wait(interval):
        now = _stamp(config.ssl_certfile)
        if now == seen or getattr(config, "ssl", None) is None:
            continue
        try:
            config.ssl.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            log.warning("the renewed certificate %s cannot be loaded yet: %s",
                        config.ssl_certfile, e)
            continue
        seen = now
        log.info("renewed certificate %s loaded: new connections use it", config.ssl_certfile)


def leadership(store: Store) -> AlwaysLeader | Leadership:
    """Who does the background work: the holder of the leader key in etcd, or this portal
    alone when the state is not replicated."""
    if store.replica is None:
        return AlwaysLeader()
    return Leadership(store.replica.etcd, store.replica.prefix + "leader")


def follow(store: Store, leader, stop: threading.Event, interval: float = FOLLOW_S,
           snapshot_every_s: float = SNAPSHOT_POLL_S) -> None:
    """Apply the replicated state's new entries every `interval`; the leader also takes the
    log's snapshots (dragonball.portal.snapshots)."""
    polls, snapshot_polls = 0, max(1, round(snapshot_every_s / interval))
    while not stop.wait(interval):
        polls += 1
        try:
            store.catch_up()
            if store.replica is not None and leader.is_leader() and \
                    polls % snapshot_polls == 0:
                store.replica.snapshot(store)
        except DragonBallError as e:
            log.warning("replicated state: %s", e.message)
        except Exception:  # never let one bad round end the loop
            log.exception("replicated state: unexpected error")


def serve(settings: Settings, store: Store | None = None, app=None,
          notifications: bool = True) -> None:
    """Serve until SIGINT or SIGTERM; meanwhile, tell services when what they depend on
    changes state (dragonball.orchestrator.notify)."""
    import uvicorn  # only the serving portal needs it

    for path in (settings.tls_cert, settings.tls_key, settings.ca_cert):
        try:
            open(path, "rb").close()
        except OSError as e:
            raise ServeError(f"cannot read {path}: {e.strerror}",
                             "run the portal install again: it writes the certificates") from e
    store = store or open_store(settings)
    app = app or create_app(store, settings)
    sock = bind(settings.address, settings.port)
    config = uvicorn.Config(app, ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key,
                            log_config=LOG_CONFIG, loop="asyncio", http="h11", ws="none",
                            lifespan="off", server_header=False, proxy_headers=False,
                            timeout_keep_alive=5, timeout_graceful_shutdown=GRACE_S,
                            h11_max_incomplete_event_size=MAX_HEAD_BYTES)
    log.info("portal %s serving %s (store %s)", settings.hostname or settings.address,
             settings.url, settings.db_path)
    stop = threading.Event()
    threading.Thread(target=watch_certificate, name="certificate", daemon=True,
                     args=(config, stop)).start()
    leader = leadership(store)
    threading.Thread(target=leader.run, name="leadership", daemon=True, args=(stop,)).start()
    if store.replica is not None:
        threading.Thread(target=follow, name="follower", daemon=True,
                         args=(store, leader, stop)).start()
    if notifications:
        # its node says which DragonBall and release run here (after an upgrade: the new)
        threading.Thread(target=versions.label_own_node, name="versions", daemon=True,
                         args=(Swarm(settings.docker_socket),)).start()
        threading.Thread(target=notify.run_forever, name="notifications", daemon=True,
                         args=(lambda: wiring.control(settings, store=store), stop),
                         kwargs={"active": leader.is_leader}).start()
        threading.Thread(target=strangers.run_forever, name="strangers", daemon=True,
                         args=(lambda: strangers.Watch(
                             wiring.swarm(settings), store.devices,
                             lambda kind, detail: store.record(kind, "portal", None, detail),
                             store.pending_joins),
                             stop, leader.is_leader)).start()
        members = getattr(app.state, "firewall", None)  # create_app's (portal/firewall.py)
        if members is not None:
            threading.Thread(target=firewall.run_forever, name="firewall", daemon=True,
                             args=(members, stop, leader.is_leader)).start()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        stop.set()
        leader.resign()
        sock.close()
        store.close()
