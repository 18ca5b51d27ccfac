"""The observed world read from a JSON file (`dragonball plan --observed FILE`).

```json
{"images": ["notes/api:0.1.0"], "servers": ["s1", "s2"],
 "labels": {"s1": {"disk": "ssd"}},
 "addresses": {"s1": "10.0.0.11", "s2": "10.0.0.12"}, "taken": {"10.0.0.90": "shop/web"},
 "running": {"api": {"image": "notes/api:0.1.0", "replicas": 2,
                     "parameters": {"listen_port": 8080}, "needs": ["store"]}}}
```
Every key is optional: what is missing is not known, and not checked.
"""

from __future__ import annotations

import json

from dragonball.app.errors import ObservedInvalid
from dragonball.app.model import Observed
from dragonball.app.plan import Running


def parse(data: dict) -> tuple[Observed, dict]:
    """(Observed for validation, name -> Running for the plan)."""
    try:
        images = data.get("images")
        servers = data.get("servers")
        observed = Observed(frozenset(images) if images is not None else None,
                            frozenset(servers) if servers is not None else None,
                            dict(data.get("labels") or {}),
                            dict(data.get("addresses") or {}), dict(data.get("taken") or {}))
        running = {name: Running.from_dict(r) for name, r in (data.get("running") or {}).items()}
    except (AttributeError, KeyError, TypeError) as e:
        raise ObservedInvalid(f"the observed state is not in the documented shape ({e!r})") from e
    return observed, running


def read(path: str) -> tuple[Observed, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ObservedInvalid(f"cannot read the observed state {path}: {e}") from e
    if not isinstance(data, dict):
        raise ObservedInvalid(f"{path} must hold a JSON object")
    return parse(data)
