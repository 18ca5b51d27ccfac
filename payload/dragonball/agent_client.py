"""The portal's side of the node agents (docs/agent.md): their certificates and a client.

Every server runs the agent (`dragonball-agent`, a global Swarm service) on port 9443 with
mutual TLS:

- each agent has a certificate of its own (its server's identity) from the cluster CA,
  naming its server's address (an IP SAN) and its hostname: the key is made on that server
  and never leaves it (a device sends a signing request at enrollment; the portal's own
  server issues its own at install), and lives in `/etc/dragonball/agent/identity`, mounted
  read-only into the agent's task there. The client connects to a node's address and checks
  the certificate against the CA **and that address**: one server's key cannot answer for
  another's. Given `pins` (the portal's: address -> the SHA-256 of the certificate it signed
  for the server there, `portal.identity_pins`), the client accepts at that address only
  that very certificate (urllib3's `assert_fingerprint`, after the CA check): a removed
  server's certificate, or one signed before a `rejoin`, is refused even at its old
  address. An address without a pin (a server enrolled by an earlier release) gets the CA
  and address check alone;
- the portal proves itself with a client certificate (`CLIENT_NAME`, extended key usage
  clientAuth only) from the agents' clients CA (installer.agent: a CA that signs only the
  controllers' certificates), issued at install next to the portal's certificates
  (`CLIENT_CERT`, `CLIENT_KEY`, 0600). An agent refuses, in the TLS handshake, a
  connection without a client certificate of that CA (the cluster CA's are refused too).

    with AgentClient() as agents:               # the portal's files under /etc/dragonball
        agents.health("10.0.0.2")               # {"status": "ok", "hostname": ..., ...}
        agents.metrics("10.0.0.2")              # cpu, memory, io, connections, load, uptime
        agents.metrics_of(["10.0.0.1", ...])    # {address: metrics or AgentError}, at once
        agents.tasks("10.0.0.2")                # the application's containers there
        agents.exec("10.0.0.2", cid, "config_change", {"level": 3})   # run.sh inside
        agents.logs("10.0.0.2", cid, tail=100)
        agents.put_params("10.0.0.2", "notes", "api", 7, {...})       # 409: older revision
        agents.delete_params("10.0.0.2", "notes", "api")
        agents.put_firewall("10.0.0.2", ["10.0.0.1", ...])  # the cluster's members
        agents.volumes("10.0.0.2")              # the app's volumes there, who uses them
        # export_volume, new_transfer, read_transfer, write_transfer, import_volume,
        # delete_transfer, delete_volume: dragonball.volume_copy.copy_volume uses them

requests with `trust_env = False`: the machine's REQUESTS_CA_BUNDLE and proxies must not
decide whom we trust or where the connection goes (MACHINE.md).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import threading
from collections.abc import Callable, Iterable, Iterator

import requests
from requests.adapters import HTTPAdapter

from dragonball import pki
from dragonball.errors import ClientError, Unavailable
from dragonball.shared import paths, ports
from dragonball.shared.addresses import host_port

CLIENT_NAME = "dragonball-portal"   # the portal's client certificate's common name
ETC = paths.ETC
CA_CERT = paths.CA_CERT             # the cluster CA, at the same path on every server
CLIENT_CERT = f"{paths.PORTAL_CONFIG_DIR}/agent-client.crt"
CLIENT_KEY = f"{paths.PORTAL_CONFIG_DIR}/agent-client.key"
TIMEOUT_S = 10.0
EXEC_GRACE_S = 15.0   # an exec's answer may come this long after its own timeout
PULL_TIMEOUT_S = 900.0  # a pull's answer comes once every layer is in
ARCHIVE_TIMEOUT_S = 3600.0     # an export or import answers once the whole volume is done
TRANSFER_CHUNK_BYTES = 1 << 20


class AgentError(ClientError, Unavailable):
    """An agent cannot be reached, refused us, or answered an error: then `status` is its
    HTTP status and `body` its JSON answer. For whoever asked the portal, the part of the
    cluster that should have answered did not (503)."""


# --- certificates (pure) ----------------------------------------------------------------------

def issue_agent_cert(ca: pki.KeyPair, address: str, hostname: str,
                     days: int = pki.SERVER_DAYS,
                     now: datetime.datetime | None = None) -> pki.KeyPair:
    """A server's agent identity, key included (the portal's own server, made there): its
    address as the only IP SAN, its hostname as common name; serverAuth and clientAuth."""
    return pki.issue_peer_cert(ca, hostname, ips=[address], days=days, now=now)


def sign_agent_csr(ca: pki.KeyPair, csr: bytes | str, address: str, hostname: str,
                   days: int = pki.SERVER_DAYS,
                   now: datetime.datetime | None = None) -> bytes:
    """A device's agent certificate for the key it made (its enrollment's CSR): the names
    are the portal's to give (the address and hostname it enrolled), not the request's."""
    return pki.sign_peer_csr(ca, csr, hostname, ips=[address], days=days, now=now)


def issue_client_cert(ca: pki.KeyPair, common_name: str = CLIENT_NAME,
                      days: int = pki.SERVER_DAYS,
                      now: datetime.datetime | None = None) -> pki.KeyPair:
    """The portal's client certificate for the agents (pki.issue_client_cert)."""
    return pki.issue_client_cert(ca, common_name, days, now)


# --- the client (adapter) --------------------------------------------------------------------

class PinnedAdapter(HTTPAdapter):
    """Connections that accept one certificate only: its SHA-256 (hex), checked by urllib3
    after the chain (`assert_fingerprint`)."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(*args, **kwargs)


def fingerprint(cert_pem: str | bytes) -> str:
    """The SHA-256 (hex) of a certificate's DER: what `pins` answer."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    return hashlib.sha256(x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)) \
        .hexdigest()


class AgentClient:
    """Calls to the agents with the portal's client certificate; each agent's certificate
    verified with the cluster CA and against the address called (its IP SAN), and, where
    `pins` knows the address, against the one certificate the portal signed for it."""

    def __init__(self, ca: str = CA_CERT, cert: str = CLIENT_CERT, key: str = CLIENT_KEY,
                 port: int = ports.AGENT, timeout: float = TIMEOUT_S,
                 pins: Callable[[str], str | None] | None = None) -> None:
        for what, path in (("the cluster CA", ca), ("the portal's agent client certificate",
                                                    cert), ("its key", key)):
            if not os.path.isfile(path):
                raise AgentError(f"{what} is missing: {path}",
                                 "the portal's install makes it (step agent.pki): run "
                                 "the install again on the portal")
        self.ca, self.port, self.timeout, self.pins = ca, port, timeout, pins
        self._pinned: dict[str, tuple[str, requests.Session]] = {}  # address -> (pin, session)
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE, proxies: not for the cluster
        self.session.verify = ca
        self.session.cert = (cert, key)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()
        for _, pinned in self._pinned.values():
            pinned.close()

    def url(self, address: str, path: str) -> str:
        return f"https://{host_port(address, self.port)}{path}"

    def _call(self, method: str, address: str, path: str, body: dict | None = None,
              params: dict | None = None, timeout: float | None = None) -> dict:
        """`method` `path` of the agent on `address`: its JSON, or AgentError saying why
        not (`status`: the agent's HTTP status when it answered one)."""
        answer = self._request(method, address, path, json=body, params=params,
                               timeout=timeout)
        return self._json(answer, method, address, path)

    def _request(self, method: str, address: str, path: str, timeout: float | None = None,
                 **kwargs) -> requests.Response:
        """The agent's answer, whatever its status; AgentError when there is none."""
        url = self.url(address, path)
        where = host_port(address, self.port)
        timeout = self.timeout if timeout is None else timeout
        session = self._session_for(address)
        try:
            return session.request(method, url, timeout=timeout, verify=self.ca, **kwargs)
        except requests.exceptions.SSLError as e:
            raise AgentError(f"TLS with the agent at {where} failed: {_reason(e)}",
                             f"the agent's certificate must come from this cluster's CA and "
                             f"name the address {address} (its server's own, made at its "
                             "enrollment) and be the one the portal signed for that server "
                             "(after a removal or a rejoin, an older one is refused); the "
                             "agent must accept the portal's client certificate "
                             "(docs/agent.md)") from e
        except requests.exceptions.Timeout as e:
            waited = timeout[-1] if isinstance(timeout, tuple) else timeout
            raise AgentError(f"the agent at {where} did not answer within "
                             f"{waited:.0f} s", "see 'docker service ps "
                             "dragonball-agent' on the portal") from e
        except requests.exceptions.ConnectionError as e:
            raise AgentError(f"cannot reach the agent at {where}: {_reason(e)}",
                             "is its task running? 'docker service ps dragonball-agent' on "
                             f"the portal; port {self.port}/tcp must be open") from e
        except requests.RequestException as e:
            raise AgentError(f"the call to the agent at {where} failed: {_reason(e)}") from e

    def _session_for(self, address: str) -> requests.Session:
        """The session for `address`: the common one, or, when `pins` has a pin for it, one
        whose connections accept only that certificate (made again when the pin changes;
        sessions are never changed once made, so threads may share them)."""
        expected = self.pins(address) if self.pins else None
        if expected is None:
            return self.session
        with self._lock:
            found = self._pinned.get(address)
            if found is None or found[0] != expected:
                pinned = requests.Session()
                pinned.trust_env, pinned.cert = False, self.session.cert
                pinned.mount("https://", PinnedAdapter(expected))
                found = self._pinned[address] = (expected, pinned)
            return found[1]

    def _json(self, answer: requests.Response, method: str, address: str, path: str) -> dict:
        """The answer's JSON object when it is a 200, else AgentError with the agent's
        status and its answer (`body`)."""
        where = host_port(address, self.port)
        try:
            answered = answer.json()
        except ValueError:
            answered = None
        if answer.status_code != 200 or not isinstance(answered, dict):
            detail = answered.get("error") if isinstance(answered, dict) else answer.text[:200]
            raise AgentError(f"the agent at {where} answered HTTP {answer.status_code} to "
                             f"{method} {path}: {detail}", status=answer.status_code,
                             body=answered if isinstance(answered, dict) else None)
        return answered

    def get(self, address: str, path: str) -> dict:
        """GET `path` of the agent on `address`: its JSON, or AgentError saying why not."""
        return self._call("GET", address, path)

    def health(self, address: str) -> dict:
        return self.get(address, "/v1/health")

    def metrics(self, address: str) -> dict:
        return self.get(address, "/v1/metrics")

    def tasks(self, address: str) -> list[dict]:
        """The application's containers on that node (labelled io.dragonball.app)."""
        return self.get(address, "/v1/tasks")["tasks"]

    def exec(self, address: str, container: str, action: str, input: dict | None = None,
             timeout: float = 60, replace: bool = False) -> dict:
        """run.sh `action` in `container` on that node, `input` on its stdin: {"exit_code",
        "report", "output", "seconds", ...}. AgentError status 403 (not an application's
        container), 404 (none such), 409 (not running), 504 (`timeout` passed)."""
        body = {"container": container, "action": action, "input": input, "timeout": timeout}
        if replace:
            body["replace"] = True
        return self._call("POST", address, "/v1/exec", body=body,
                          timeout=timeout + EXEC_GRACE_S)

    def logs(self, address: str, container: str, tail: int = 200) -> list[str]:
        return self._call("GET", address, "/v1/logs",
                          params={"container": container, "tail": tail})["lines"]

    def images(self, address: str) -> list[dict]:
        """The images that node's engine holds: [{"id", "tags", "digests"}]."""
        return self.get(address, "/v1/images")["images"]

    def pull_image(self, address: str, reference: str, image_id: str, auth: dict | None,
                   timeout: float = PULL_TIMEOUT_S) -> dict:
        """That node pulls `reference` (pinned by digest), which must give `image_id`:
        {"id", "reference", "pulled", "seconds"} (`pulled` False: it held it already)."""
        return self._call("POST", address, "/v1/images/pull", body={
            "reference": reference, "id": image_id, "auth": auth},
            timeout=(self.timeout, timeout))

    def put_params(self, address: str, app: str, service: str, revision: int,
                   params: dict) -> dict:
        """Write the service's parameters on that node; AgentError status 409 when it holds
        a higher revision already (its `body["revision"]`)."""
        return self._call("PUT", address, "/v1/params", body={
            "app": app, "service": service, "revision": revision, "params": params})

    def put_firewall(self, address: str, members: list[str],
                     timeout: float | None = None) -> dict:
        """The cluster's members, for that server's DRAGONBALL chain (portal/firewall.py)."""
        return self._call("PUT", address, "/v1/firewall", body={"members": list(members)},
                          timeout=timeout)

    def delete_params(self, address: str, app: str, service: str) -> dict:
        return self._call("DELETE", address, "/v1/params",
                          params={"app": app, "service": service})

    def networks(self, address: str) -> list[dict]:
        """The application networks that node's engine still holds (docs/agent.md,
        "Networks"): name, id, app, scope, containers attached."""
        return self.get(address, "/v1/networks")["networks"]

    # --- volumes (docs/agent.md, "Volumes"; dragonball.volume_copy copies one) ---------------

    def volumes(self, address: str, sizes: bool = False) -> list[dict]:
        """The application's volumes on that node (labelled io.dragonball.app): name,
        labels, app, service, slot, created, containers using it, in_use; `size` in bytes
        when `sizes` (docker system df: the engine walks every volume, slow on big hosts)."""
        return self.volume_report(address, sizes)["volumes"]

    def volume_report(self, address: str, sizes: bool = False) -> dict:
        """`volumes` and `free_bytes`: what the engine's disk there has left (None from an
        agent that cannot tell)."""
        return self._call("GET", address, "/v1/volumes", params={"size": "1"} if sizes else None)

    def export_volume(self, address: str, name: str,
                      timeout: float = ARCHIVE_TIMEOUT_S, pause: bool = False) -> dict:
        """Pack the volume into a staged tar there: {"id", "name", "size", "sha256",
        "paused", "paused_s"}. AgentError 409 when a running container uses it (unless
        `pause`: those are paused while it is packed, an upgrade's snapshot), 403 not an
        application's."""
        return self._call("POST", address, "/v1/volumes/export", body={},
                          params={"name": name, **({"pause": "1"} if pause else {})},
                          timeout=(self.timeout, timeout))

    def new_transfer(self, address: str) -> str:
        """An empty staged file there, to write a copy into: its id."""
        return self._call("POST", address, "/v1/transfers", body={})["id"]

    def read_transfer(self, address: str, transfer_id: str, offset: int = 0,
                      length: int | None = None) -> Iterator[bytes]:
        """The staged bytes from `offset` (`length` of them, or to the end), as chunks read
        while they are consumed; AgentError when the stream breaks or ends early."""
        path = f"/v1/transfers/{transfer_id}"
        params = {"offset": offset, **({} if length is None else {"length": length})}
        answer = self._request("GET", address, path, params=params, stream=True)
        try:
            if answer.status_code != 200:
                self._json(answer, "GET", address, path)
            expected, got = int(answer.headers.get("Content-Length", -1)), 0
            for chunk in self._streamed(answer, address, path):
                got += len(chunk)
                yield chunk
            if got != expected:
                raise AgentError(f"the transfer {transfer_id} from {address} ended after "
                                 f"{got} of {expected} bytes")
        finally:
            answer.close()

    def _streamed(self, answer: requests.Response, address: str, path: str):
        try:
            yield from answer.iter_content(TRANSFER_CHUNK_BYTES)
        except requests.RequestException as e:
            raise AgentError(f"reading {path} from the agent at {address} broke: "
                             f"{_reason(e)}") from e

    def transfer_size(self, address: str, transfer_id: str) -> dict:
        """{"id", "size": bytes the staged file there holds (a broken write keeps what
        arrived), "busy": a write still holds it (its size is not final)}."""
        return self._call("GET", address, f"/v1/transfers/{transfer_id}/size")

    def write_transfer(self, address: str, transfer_id: str, offset: int,
                       chunks: Iterable[bytes]) -> dict:
        """Append `chunks` (streamed, at most 64 MiB in one call) to the staged file there,
        which must hold `offset` bytes: {"id", "size"}. AgentError 409 with body["size"]
        when it holds another number, or body["busy"] (a write still running there). After
        a failure, ask transfer_size (until not busy) before writing again."""
        return self._json(self._request("PUT", address, f"/v1/transfers/{transfer_id}",
                                        params={"offset": offset}, data=iter(chunks)),
                          "PUT", address, f"/v1/transfers/{transfer_id}")

    def import_volume(self, address: str, name: str, transfer_id: str, sha256: str,
                      labels: dict, timeout: float = ARCHIVE_TIMEOUT_S) -> dict:
        """The staged tar, checked, into the new volume `name` with `labels`: {"name",
        "sha256", "size"}. AgentError 422 (sha256 differs, or members out of the volume:
        the staged file is gone, copy again), 409 (the volume exists, not empty)."""
        return self._call("POST", address, "/v1/volumes/import",
                          body={"labels": labels}, timeout=(self.timeout, timeout),
                          params={"name": name, "id": transfer_id, "sha256": sha256})

    def delete_transfer(self, address: str, transfer_id: str) -> dict:
        return self._call("DELETE", address, f"/v1/transfers/{transfer_id}")

    def delete_volume(self, address: str, name: str) -> dict:
        """Remove an application's volume no container uses (AgentError 409 otherwise)."""
        return self._call("DELETE", address, "/v1/volumes", params={"name": name})

    def metrics_of(self, addresses, workers: int = 8) -> dict:
        """{address: metrics dict, or the AgentError}, every agent asked at once."""
        addresses = list(dict.fromkeys(addresses))
        if not addresses:
            return {}

        def one(address):
            try:
                return self.metrics(address)
            except AgentError as e:
                return e
        with concurrent.futures.ThreadPoolExecutor(min(workers, len(addresses))) as pool:
            return dict(zip(addresses, pool.map(one, addresses)))


def _reason(error: Exception) -> str:
    """The innermost useful words of a requests/urllib3 error."""
    text = str(error)
    for marker in ("SSLError(", "NewConnectionError(", "ProtocolError("):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:300]
