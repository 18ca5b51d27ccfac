"""A client of etcd's v3 API through its JSON gateway (etcd 3.4, Debian's etcd-server).

Why etcd (docs/portal-ha.md): the portal's committed state must survive the loss of any one
server, and consensus is a hard problem with a well-kept answer. etcd is Raft, in Debian,
speaks TLS with client certificates, and answers compare-and-swap transactions, which is all
the portal's replicated store needs (dragonball.portal.statelog). Its gRPC gateway speaks
JSON over HTTPS, so `requests` is enough: no gRPC stack in the runtime.

    etcd = Etcd(["https://127.0.0.1:2379"], ca, cert, key)
    etcd.health()                                # True when the member has a quorum
    etcd.create("log/00000001", b"...")          # False when the key exists already
    etcd.get_prefix("log/", after="log/00000001")  # [(key, value), ...] in key order
    etcd.members()  /  etcd.add_member(peer_url, learner=True)  /  etcd.promote_member(id)
    etcd.remove_member(member_id)

Keys and values travel base64 in the gateway's JSON; 64-bit numbers come as strings. Every
call has a timeout: a write that cannot reach a quorum fails with `EtcdUnavailable` (etcd
itself answers "request timed out" after its own election timeouts), never hangs.
requests with `trust_env = False`, as for the agents: the machine's proxies and CA bundle
must not decide where the portal's state goes.
"""

from __future__ import annotations

import base64
import dataclasses

import requests

from dragonball.errors import ClientError, Conflict, Failed, Unavailable

TIMEOUT_S = 8.0
#: A member whose host is gone answers no SYN: try the next one soon.
CONNECT_TIMEOUT_S = 2.0


class EtcdFailed(ClientError, Failed):
    """etcd answered an error."""


class EtcdUnavailable(ClientError, Unavailable):
    """No member answered, or the members have no quorum: nothing was written."""


class EtcdConflict(ClientError, Conflict):
    """A compare-and-swap lost: another writer was first."""


#: Every error of this client, to catch them all (one category per class: no common base).
EtcdError = (EtcdFailed, EtcdUnavailable, EtcdConflict)


@dataclasses.dataclass(frozen=True)
class Member:
    id: str          # etcd's 64-bit member ID, as the decimal string the gateway gives
    name: str        # "" until the member started
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False  # added as a learner: no vote until promoted


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


#: The gateway's base64, for callers that build a `txn` of their own.
encode, decode = _b64, _unb64


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix` (etcd's convention)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return "\0"
    raw[-1] += 1
    return raw.decode("latin-1")


class Etcd:
    """One client for the members at `endpoints`, tried in order until one answers."""

    def __init__(self, endpoints: list[str], ca: str, cert: str, key: str,
                 timeout: float = TIMEOUT_S) -> None:
        self.endpoints, self.timeout = list(endpoints), timeout
        self._http = requests.Session()
        self._http.trust_env = False
        self._http.verify, self._http.cert = ca, (cert, key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Etcd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the calls -------------------------------------------------------------------

    def health(self) -> bool:
        """Whether a member answers and its cluster has a leader (a quorum)."""
        try:
            return self._call("GET", "/health").get("health") == "true"
        except EtcdError:
            return False

    def create(self, key: str, value: bytes, lease: str | None = None) -> bool:
        """Put `key` only if it does not exist yet: True if this call created it. With a
        `lease` (`grant`), the key goes when the lease ends."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = lease
        answer = self._call("POST", "/v3/kv/txn", {
            "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": put}]})
        return bool(answer.get("succeeded"))

    def txn(self, compare: list[dict], success: list[dict],
            failure: list[dict] = ()) -> dict:
        """One transaction as the gateway takes it (keys and values base64: `encode`);
        its answer: "succeeded" and the "responses" of the branch that ran."""
        return self._call("POST", "/v3/kv/txn", {"compare": compare, "success": success,
                                                 "failure": list(failure)})

    def compact(self, revision: int) -> None:
        """Forget the history before `revision` (deleted keys stop taking space)."""
        self._call("POST", "/v3/kv/compaction", {"revision": str(revision)})

    def delete_range(self, key: str, range_end: str) -> int:
        """Delete the keys from `key` up to `range_end` (excluded): how many went."""
        answer = self._call("POST", "/v3/kv/deleterange",
                            {"key": _b64(key), "range_end": _b64(range_end)})
        return int(answer.get("deleted") or 0)

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_range(prefix, prefix_end(prefix))

    # --- leases (leader election, dragonball.portal.leadership) ----------------------

    def grant(self, ttl_s: int) -> str:
        """A new lease of `ttl_s` seconds: its ID."""
        return str(self._call("POST", "/v3/lease/grant", {"TTL": str(ttl_s)})["ID"])

    def keepalive(self, lease: str) -> int:
        """Renew the lease: the seconds it has from now, 0 when it has ended already."""
        answer = self._call("POST", "/v3/lease/keepalive", {"ID": lease})
        return int((answer.get("result") or answer).get("TTL") or 0)

    def revoke(self, lease: str) -> None:
        """End the lease now (its keys go with it); an ended lease is not an error."""
        try:
            self._call("POST", "/v3/lease/revoke", {"ID": lease})
        except EtcdError as e:
            if "not found" not in e.message:
                raise

    def put(self, key: str, value: bytes) -> None:
        self._call("POST", "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def get(self, key: str) -> bytes | None:
        kvs = self._call("POST", "/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        return _unb64(kvs[0].get("value")) if kvs else None

    def get_prefix(self, prefix: str, after: str | None = None,
                   limit: int = 0) -> list[tuple[str, bytes]]:
        """The keys under `prefix` (only those after `after`, if given), in key order."""
        start = (after + "\0") if after else prefix
        body = {"key": _b64(start), "range_end": _b64(prefix_end(prefix)),
                "sort_order": "ASCEND", "sort_target": "KEY"}
        if limit:
            body["limit"] = str(limit)
        kvs = self._call("POST", "/v3/kv/range", body).get("kvs") or []
        return [(_unb64(kv["key"]).decode(), _unb64(kv.get("value"))) for kv in kvs]

    def last_key(self, prefix: str) -> str | None:
        """The greatest key under `prefix`, or None."""
        body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)), "limit": "1",
                "sort_order": "DESCEND", "sort_target": "KEY", "keys_only": True}
        kvs = self._call("POST", "/v3/kv/range", body).get("kvs") or []
        return _unb64(kvs[0]["key"]).decode() if kvs else None

    def members(self) -> list[Member]:
        answer = self._call("POST", "/v3/cluster/member/list", {})
        return [Member(m.get("ID", ""), m.get("name", ""), tuple(m.get("peerURLs") or ()),
                       tuple(m.get("clientURLs") or ()), bool(m.get("isLearner")))
                for m in answer.get("members") or []]

    def add_member(self, peer_url: str, learner: bool = False) -> list[Member]:
        """Add a member by its peer URL (as a learner: it counts for no quorum until
        promoted); the members after the change (for its --initial-cluster). An existing
        member with that URL is not added twice."""
        if any(peer_url in m.peer_urls for m in self.members()):
            return self.members()
        self._call("POST", "/v3/cluster/member/add", {"peerURLs": [peer_url],
                                                      "isLearner": learner})
        return self.members()

    def promote_member(self, member_id: str) -> None:
        """A learner made a voting member; EtcdError while it has not caught up yet."""
        self._call("POST", "/v3/cluster/member/promote", {"ID": member_id})

    def remove_member(self, member_id: str) -> None:
        self._call("POST", "/v3/cluster/member/remove", {"ID": member_id})

    # --- the transport ---------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        failures = []
        for endpoint in self.endpoints:
            try:
                answer = self._http.request(method, endpoint + path, json=body,
                                            timeout=(min(CONNECT_TIMEOUT_S, self.timeout),
                                                     self.timeout))
            except requests.RequestException as e:
                failures.append(f"{endpoint}: {type(e).__name__}")
                continue
            try:
                data = answer.json()
            except ValueError:
                data = {}
            if answer.status_code == 200 and "error" not in data:
                return data
            message = data.get("message") or data.get("error") or answer.text[:200]
            if answer.status_code in (503, 504) or "timed out" in str(message) \
                    or "no leader" in str(message):
                failures.append(f"{endpoint}: {message}")
                continue
            raise EtcdFailed(f"etcd refused {path}: {message}",
                            "see `journalctl -u dragonball-etcd` (or the container's log) "
                            "on the manager")
        raise EtcdUnavailable(
            "the portal's state store (etcd on the managers) has no quorum or does not "
            f"answer ({'; '.join(failures) or 'no endpoint'}); nothing was written",
            "bring back enough managers for a majority (2 of 3), then try again; "
            "`dragonball status` on a manager says which are down")
