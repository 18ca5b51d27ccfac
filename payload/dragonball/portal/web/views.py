"""What the pages show, made from plain data: store rows and agents' metrics dicts in,
view models out. Pure functions (no store, no network, no clock of their own), so the
pages' logic is tested in milliseconds with data written in the test.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json

#: What a server that does not say its versions shows (installed before they were labelled).
UNKNOWN = "unknown"
#: Above these a device is flagged on the dashboard.
MEMORY_ALERT_PERCENT = 90.0
CPU_ALERT_PERCENT = 90.0


@dataclasses.dataclass(frozen=True)
class MetricsView:
    """One agent's answer, ready to print."""

    cpu: str
    cpu_percent: float
    memory: str
    memory_percent: float
    io: str
    connections: str
    load: str

    @property
    def cpu_bar(self) -> int:
        return bar_step(self.cpu_percent)

    @property
    def memory_bar(self) -> int:
        return bar_step(self.memory_percent)


@dataclasses.dataclass(frozen=True)
class DeviceRow:
    id: int
    hostname: str
    address: str
    role: str
    state: str
    labels: list[str]
    metrics: MetricsView | None
    agent_error: str | None   # why there are no metrics (None when there are)
    images: str = ""          # "3/3": the applied apps' images it holds ("" no app)
    images_missing: str = ""  # the names it lacks, or why they cannot be listed
    version: str = UNKNOWN    # DragonBall's version on it (its node's label)
    release: str = UNKNOWN    # the release it runs: "notes 0.1.0"


@dataclasses.dataclass(frozen=True)
class Alert:
    level: str       # "warning" or "error"
    subject: str     # a device's hostname, or "cluster"
    text: str


@dataclasses.dataclass(frozen=True)
class EventRow:
    id: int
    at: str
    kind: str
    actor: str
    client: str
    detail: str


@dataclasses.dataclass(frozen=True)
class ImageRow:
    repository: str
    tags: list[str]


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"; binary units, one decimal from KiB up."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # not reached


def bar_step(percent: float) -> int:
    """A percentage as a bar width class: 0, 5, ..., 100 (portal.css has .w0 to .w100)."""
    return int(max(0.0, min(100.0, percent)) // 5 * 5)


def utc(timestamp: float | None) -> str:
    """A store time as ``2026-01-31 12:00:05 UTC``; "" for None."""
    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def metrics_view(metrics: dict) -> MetricsView:
    """An agent's /v1/metrics answer (docs/agent.md, schema 1) as text for the table."""
    cpu, memory = metrics.get("cpu", {}), metrics.get("memory", {})
    io, connections = metrics.get("io", {}), metrics.get("connections", {})
    load = metrics.get("load", {})
    return MetricsView(
        cpu=f"{cpu.get('busy_percent', 0.0):.0f}% of {cpu.get('cores', '?')} cores",
        cpu_percent=float(cpu.get("busy_percent", 0.0)),
        memory=(f"{human_bytes(memory.get('used_bytes', 0))} / "
                f"{human_bytes(memory.get('total_bytes', 0))}"),
        memory_percent=float(memory.get("used_percent", 0.0)),
        io=(f"r {human_bytes(io.get('read_bytes_per_s', 0))}/s · "
            f"w {human_bytes(io.get('written_bytes_per_s', 0))}/s"),
        connections=(f"{connections.get('established', 0)} established · "
                     f"{connections.get('total', 0)} total"),
        load=f"{load.get('1m', 0.0):.2f}")


def device_rows(devices, metrics: dict, holdings: dict | None = None,
                versions: dict | None = None) -> list[DeviceRow]:
    """A row per device; `metrics` maps an address to its agent's dict or an exception,
    `holdings` a hostname to its images row (orchestrator.images.holdings), or it is a
    message saying why none can be had; `versions` a device id to its (DragonBall version,
    release) texts."""
    rows, versions = [], versions or {}
    for device in devices:
        answer = metrics.get(device.address)
        error = None
        if isinstance(answer, Exception):
            error = getattr(answer, "message", None) or str(answer)
        elif answer is None and device.state == "joined":
            error = "not asked"
        rows.append(DeviceRow(
            id=device.id, hostname=device.hostname, address=device.address, role=device.role,
            state=device.state, labels=[f"{k}={v}" for k, v in sorted(device.labels.items())],
            metrics=metrics_view(answer) if isinstance(answer, dict) else None,
            agent_error=error, **images_view(device.hostname, holdings or {}),
            **dict(zip(("version", "release"), versions.get(device.id, ())))))
    return rows


def images_view(hostname: str, holdings) -> dict:
    """The Images cell of a device: {images, images_missing} (pure)."""
    if isinstance(holdings, str):
        return {"images": "?", "images_missing": holdings}
    row = holdings.get(hostname)
    if row is None:
        return {}
    if row.get("error"):
        return {"images": "?", "images_missing": row["error"]}
    missing = row.get("missing") or []
    return {"images": f"{len(row.get('held') or [])}/{row.get('total', 0)}",
            "images_missing": ("missing " + ", ".join(missing)) if missing else ""}


def state_counts(devices) -> dict[str, int]:
    """{"total": n, "joined": n, "enrolled": n}: devices by state."""
    counts = {"total": 0, "joined": 0, "enrolled": 0}
    for device in devices:
        counts["total"] += 1
        counts[device.state] = counts.get(device.state, 0) + 1
    return counts


def alerts(rows: list[DeviceRow]) -> list[Alert]:
    """What needs a person's eye: devices not joined, agents not answering, resources full."""
    found = []
    for row in rows:
        if row.state != "joined":
            found.append(Alert("warning", row.hostname, f"enrolled but not joined yet "
                               f"(state {row.state}): is its install still running?"))
        elif row.agent_error:
            found.append(Alert("error", row.hostname, f"its agent does not answer: "
                               f"{row.agent_error}"))
        if row.metrics and row.metrics.memory_percent >= MEMORY_ALERT_PERCENT:
            found.append(Alert("warning", row.hostname,
                               f"memory {row.metrics.memory_percent:.0f}% used"))
        if row.metrics and row.metrics.cpu_percent >= CPU_ALERT_PERCENT:
            found.append(Alert("warning", row.hostname,
                               f"cpu {row.metrics.cpu_percent:.0f}% busy"))
    return found


def version_summary(rows: list[DeviceRow]) -> dict:
    """What the dashboard says of the joined servers' versions (pure): {"release",
    "version": what most of those that say run; "differ": a warning Alert naming the others,
    or None; "silent": the hostnames whose node does not say (installed before the labels:
    not a difference)}."""
    joined = [r for r in rows if r.state == "joined"]
    known = [r for r in joined if r.version != UNKNOWN]
    silent = [r.hostname for r in joined if r.version == UNKNOWN]
    if not known:
        return {"release": UNKNOWN, "version": UNKNOWN, "differ": None, "silent": silent}
    pairs = collections.Counter((r.release, r.version) for r in known)
    release, version = pairs.most_common(1)[0][0]
    others = [f"{r.hostname} runs {r.release} (DragonBall {r.version})" for r in known
              if (r.release, r.version) != (release, version)]
    differ = Alert("warning", "cluster", (
        f"the servers do not all run the same release: most run {release} (DragonBall "
        f"{version}); {'; '.join(others)}. An upgrade that stopped half way? Run it again, "
        "or 'dragonball rollback'")) if others else None
    return {"release": release, "version": version, "differ": differ, "silent": silent}


def certificate_alerts(report: dict) -> list[Alert]:
    """The certificates' warnings (portal.certificates.report) as dashboard alerts."""
    found = [Alert(w["level"], w["subject"], f"{w['text']}: {w['hint']}")
             for w in report.get("warnings") or []]
    if report.get("note"):
        found.append(Alert("warning", "certificates", report["note"]))
    return found


def event_rows(events: list[dict]) -> list[EventRow]:
    """Store events (newest first) as table rows; the detail as ``key=value`` pairs."""
    return [EventRow(id=e["id"], at=utc(e["at"]), kind=e["kind"], actor=e["actor"],
                     client=e.get("client") or "", detail=_detail(e.get("detail") or {}))
            for e in events]


def _detail(detail: dict) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in sorted(detail.items()))


def page_of(items: list, limit: int) -> tuple[list, bool]:
    """(the first `limit` items, whether there were more): fetch limit + 1 to know."""
    return items[:limit], len(items) > limit


def image_rows(catalog: dict[str, list[str]]) -> list[ImageRow]:
    """{repository: tags} as rows, repositories and tags sorted."""
    return [ImageRow(repository, sorted(tags)) for repository, tags in sorted(catalog.items())]
