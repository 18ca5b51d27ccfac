"""What an upgrade changes, from the installed release to the new one (pure).

Releases are compared by their manifests (builder/manifest.py: the runtime's SHA-256, each
image's ID, the engine's packages) and their app specs; the app's services come in start
order (leaves first), each with what changes in it: its image (by image ID: a module whose
files did not change keeps its ID and is not restarted), its spec, and its parameters
added, removed or retyped. `Plan.rows()` is what the command prints and `--json` says.

    plan = make_plan(old_manifest, new_manifest, old_spec_text, new_spec_text)
    plan.changes        [Change(part, name, before, after, detail)]
    plan.empty          nothing to do: the same release, byte for byte

Versions compare as dotted numbers ("0.10.0" > "0.9.1"); a suffix after a number
("1.0.0rc1") sorts before the plain number, as PEP 440 and semver both have it.
"""

from __future__ import annotations

import dataclasses
import re

#: DragonBall's own images: part name -> the repository in the release's images.
PLATFORM = {"registry": "dragonball/registry", "agent": "dragonball/agent",
            "keepalived": "dragonball/keepalived", "etcd": "dragonball/etcd"}
_PART = re.compile(r"^(\d+)(.*)$")


def version_key(version: str) -> tuple:
    """A sort key of a release version: numbers compare as numbers, a suffix sorts first."""
    key = []
    for part in str(version).split("."):
        match = _PART.match(part)
        number, rest = (int(match.group(1)), match.group(2)) if match else (-1, part)
        key.append((number, 0 if rest else 1, rest))
    return tuple(key)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is before, the same as, or after `b`."""
    ka, kb = version_key(a), version_key(b)
    width = max(len(ka), len(kb))
    ka += ((0, 1, ""),) * (width - len(ka))
    kb += ((0, 1, ""),) * (width - len(kb))
    return (ka > kb) - (ka < kb)


@dataclasses.dataclass(frozen=True)
class Change:
    """One thing the upgrade changes: `part` runtime|portal|agent|registry|keepalived|etcd|
    engine|app; `name` what (a package, a service); before and after as a person reads
    them; `detail` the rest (parameters added, removed, retyped)."""

    part: str
    name: str
    before: str
    after: str
    detail: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Plan:
    changes: tuple

    @property
    def empty(self) -> bool:
        return not self.changes

    def parts(self) -> set:
        return {c.part for c in self.changes}

    def app_services(self) -> list[str]:
        return [c.name for c in self.changes if c.part == "app"]

    def rows(self) -> list[dict]:
        return [c.to_dict() for c in self.changes]


def make_plan(old: dict, new: dict, old_spec, new_spec) -> Plan:
    """The changes from manifest `old` to `new`; `old_spec`, `new_spec`: the apps as they
    run and as the new release has them (`AppSpec`, or None when there is none)."""
    return Plan(tuple(dragonball_changes(old, new) + app_changes(old, new, old_spec,
                                                                      new_spec)))


def dragonball_changes(old: dict, new: dict) -> list[Change]:
    """The runtime (and with it the portal and the CLI), DragonBall's images, the engine."""
    changes = []
    old_rt, new_rt = old.get("runtime") or {}, new.get("runtime") or {}
    if old_rt.get("sha256") != new_rt.get("sha256"):
        changes.append(Change("runtime", "dragonball", _runtime_label(old_rt),
                              _runtime_label(new_rt),
                              "every server's, carried by the node agents' image"))
        changes.append(Change("portal", "dragonball-portal", _runtime_label(old_rt),
                              _runtime_label(new_rt), "restarted on each manager, one by one"))
    old_ids, new_ids = image_ids(old), image_ids(new)
    for part, repository in PLATFORM.items():
        before, after = by_repository(old_ids, repository), by_repository(new_ids, repository)
        if before != after and after:
            changes.append(Change(part, repository, _short(before), _short(after)))
    old_pk, new_pk = engine_packages(old), engine_packages(new)
    for name in sorted(set(old_pk) | set(new_pk)):
        if old_pk.get(name) != new_pk.get(name):
            changes.append(Change("engine", name, old_pk.get(name) or "-",
                                  new_pk.get(name) or "-"))
    return changes


def app_changes(old: dict, new: dict, old_spec, new_spec) -> list[Change]:
    """Each service and job of the new app that changes, leaves first, then those that go."""
    if new_spec is None:
        return []
    from dragonball.app import graph
    from dragonball.app import plan as app_plan
    old_ids, new_ids = image_ids(old), image_ids(new)
    before = old_spec.members() if old_spec is not None else {}
    changes = []
    for wave in graph.waves(app_plan.start_order(new_spec)):
        for name in sorted(wave):
            member = new_spec.members()[name]
            was = before.get(name)
            if was is None:
                changes.append(Change("app", name, "-", member.image, "new"))
                continue
            detail = parameter_changes(was.parameters, member.parameters)
            image_before = old_ids.get(was.image) or ""
            image_after = new_ids.get(member.image) or ""
            if was.image != member.image or image_before != image_after or detail:
                if image_before == image_after and image_before and was.image != member.image:
                    detail = "; ".join(filter(None, ["same image ID: not restarted for it",
                                                     detail]))
                changes.append(Change("app", name, f"{was.image} {_short(image_before)}",
                                      f"{member.image} {_short(image_after)}", detail))
    for name in sorted(set(before) - set(new_spec.members())):
        changes.append(Change("app", name, before[name].image, "-", "removed: stopped"))
    return changes


def parameter_changes(old: dict, new: dict) -> str:
    """'added motd (string); removed x; retyped port int -> string' (empty: none)."""
    added = [f"{k} ({_type(new[k])})" for k in sorted(set(new) - set(old))]
    removed = sorted(set(old) - set(new))
    retyped = [f"{k} {_type(old[k])} -> {_type(new[k])}" for k in sorted(set(old) & set(new))
               if _type(old[k]) != _type(new[k])]
    parts = []
    for label, names in (("added", added), ("removed", removed), ("retyped", retyped)):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return "; ".join(parts)


def image_ids(manifest: dict) -> dict:
    """ref -> image ID (sha256:...) of a manifest's images."""
    return {i["ref"]: i.get("image_id", "") for i in manifest.get("images") or []}


def engine_packages(manifest: dict) -> dict:
    return {p["name"]: p.get("version", "") for p in
            (manifest.get("engine") or {}).get("packages") or []}


def by_repository(ids: dict, repository: str) -> str | None:
    """The image ID of `repository`'s image among `ids` (ref -> ID), None when none."""
    return next((i for ref, i in ids.items() if ref.rsplit(":", 1)[0] == repository), None)


def _type(entry) -> str:
    kind = getattr(entry, "type", None)
    shared = getattr(entry, "shared", None)
    return kind or (f"shared {shared}" if shared else "?")


def _runtime_label(runtime: dict) -> str:
    if not runtime:
        return "-"
    version = runtime.get("version") or "?"
    return f"{version} ({str(runtime.get('sha256', ''))[:12]})"


def _short(image_id: str | None) -> str:
    if not image_id:
        return "-"
    return image_id.split(":", 1)[-1][:12] if image_id.startswith("sha256:") else image_id
