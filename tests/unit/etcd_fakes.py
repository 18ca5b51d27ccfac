"""An in-memory etcd with dragonball.etcd.Etcd's interface: keys with create revisions and
leases, the gateway's transactions (compare CREATE/VALUE; put, range, delete), and switches a
test turns: `down` (no quorum: every call fails as the real client does) and `before_txn`
(a hook run before a transaction: another portal's write at the same moment)."""

from __future__ import annotations

import base64
import itertools

from dragonball.etcd import EtcdUnavailable, prefix_end


def _d(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _e(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeEtcd:
    def __init__(self) -> None:
        self.kv: dict[bytes, tuple[bytes, int, str | None]] = {}
        self.revision = 1
        self.leases: dict[str, int] = {}
        self.down = False
        self.before_txn = None
        self.calls = 0
        self._ids = itertools.count(1000)

    # --- the switch ------------------------------------------------------------------

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise EtcdUnavailable("the portal's state store (etcd on the managers) has no "
                                  "quorum or does not answer (fake: down); nothing was written",
                                  "bring back enough managers for a majority (2 of 3)")

    # --- kv ------------------------------------------------------------------------------

    def _put(self, key: bytes, value: bytes, lease: str | None = None) -> None:
        self.revision += 1
        created = self.kv[key][1] if key in self.kv else self.revision
        self.kv[key] = (value, created, lease)

    def _range(self, key: bytes, end: bytes | None) -> list[bytes]:
        if end is None:
            return [key] if key in self.kv else []
        return sorted(k for k in self.kv if key <= k and (end == b"\0" or k < end))

    def txn(self, compare, success, failure=()):
        self._check()
        if self.before_txn is not None and compare:  # a write, not a read
            hook, self.before_txn = self.before_txn, None
            hook()
        ok = all(self._compare(c) for c in compare)
        responses = [self._op(op) for op in (success if ok else failure)]
        return {"succeeded": ok, "responses": responses,
                "header": {"revision": str(self.revision)}}

    def _compare(self, c: dict) -> bool:
        held = self.kv.get(_d(c["key"]))
        if c["target"] == "CREATE":
            return (held[1] if held else 0) == int(c["create_revision"])
        if held is None:
            return False
        value, wanted = held[0], _d(c["value"])
        return {"LESS": value < wanted, "EQUAL": value == wanted,
                "GREATER": value > wanted}[c["result"]]

    def _op(self, op: dict) -> dict:
        if "request_put" in op:
            put = op["request_put"]
            self._put(_d(put["key"]), _d(put["value"]), put.get("lease"))
            return {"response_put": {}}
        if "request_delete_range" in op:
            r = op["request_delete_range"]
            return {"response_delete_range": {"deleted": self._delete(
                _d(r["key"]), _d(r["range_end"]) if r.get("range_end") else None)}}
        r = op["request_range"]
        keys = self._range(_d(r["key"]), _d(r["range_end"]) if r.get("range_end") else None)
        if r.get("sort_order") == "DESCEND":
            keys.reverse()
        if int(r.get("limit") or 0):
            keys = keys[:int(r["limit"])]
        return {"response_range": {"kvs": [{"key": _e(k), "value": _e(self.kv[k][0])}
                                           for k in keys]}}

    def _delete(self, key: bytes, end: bytes | None) -> int:
        keys = self._range(key, end)
        for k in keys:
            del self.kv[k]
        self.revision += 1
        return len(keys)

    def create(self, key: str, value: bytes, lease: str | None = None) -> bool:
        self._check()
        if key.encode() in self.kv:
            return False
        self._put(key.encode(), value, lease)
        return True

    def put(self, key: str, value: bytes) -> None:
        self._check()
        self._put(key.encode(), value)

    def get(self, key: str) -> bytes | None:
        self._check()
        held = self.kv.get(key.encode())
        return held[0] if held else None

    def get_prefix(self, prefix: str, after: str | None = None, limit: int = 0):
        self._check()
        start = (after + "\0") if after else prefix
        keys = self._range(start.encode(), prefix_end(prefix).encode("latin-1"))
        return [(k.decode(), self.kv[k][0]) for k in keys[:limit or None]]

    def last_key(self, prefix: str) -> str | None:
        self._check()
        keys = self._range(prefix.encode(), prefix_end(prefix).encode("latin-1"))
        return keys[-1].decode() if keys else None

    def delete_range(self, key: str, range_end: str) -> int:
        self._check()
        return self._delete(key.encode(), range_end.encode("latin-1"))

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_range(prefix, prefix_end(prefix))

    def compact(self, revision: int) -> None:
        self._check()

    # --- leases ----------------------------------------------------------------------------

    def grant(self, ttl_s: int) -> str:
        self._check()
        lease = str(next(self._ids))
        self.leases[lease] = ttl_s
        return lease

    def keepalive(self, lease: str) -> int:
        self._check()
        return self.leases.get(lease, 0)

    def revoke(self, lease: str) -> None:
        self._check()
        self.expire(lease)

    def expire(self, lease: str) -> None:
        """The lease ends (its TTL passed without a renewal): its keys go."""
        self.leases.pop(lease, None)
        for key in [k for k, held in self.kv.items() if held[2] == lease]:
            del self.kv[key]

    def keys(self, prefix: str) -> list[str]:
        return [k.decode() for k in sorted(self.kv) if k.decode().startswith(prefix)]
