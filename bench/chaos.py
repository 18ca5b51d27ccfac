#!/usr/bin/env python3
"""Chaos on an installed lab cluster under bounded load through the app's Service.

    .venv/bin/python bench/chaos.py                          # a 3-server lab, installed, all five
    .venv/bin/python bench/chaos.py --lab dblab --scenario c,d   # a lab already installed
    .venv/bin/python bench/chaos.py --spec new.app.yaml --baseline examples/notes.app.yaml

Scenarios (issue 11, point 5; tests/lab/faults.py injects them):

    a  power loss of every server (docker kill of all, held --hold s, then all booted)
    b  loss of each server in turn (one killed, held --hold s, brought back)
    c  dockerd killed (-9) on the store's server; systemd restarts it
    d  the store's server cut off from the others (iptables DROP both ways), held --hold s
    e  the store's server's data disk full (its storage volume on a small loop-mounted
       ext4, the store restarted onto it first, then filled for --hold s, then freed)

For each, a load (tests/load.py: --threads workers, --rate requests/s, a read every 4th,
the rest writes of uniquely keyed records) runs through the Service from --warmup s
before the fault until the app has fully recovered (or --recover s have passed), and
its ledger (tests/ledger.py) gives: failed requests, the longest gap without a good
answer, acknowledged writes lost (read back at the end; must be 0), the first good
answer after the fault ended, the full recovery (every service healthy, writes and reads
answered, the last read listing every acknowledged write it covers) with no human
action, and what `dragonball status` and the dashboard showed meanwhile (polled every
--watch s). Cases that issue 12 owns (losing s1, the portal and the app's address:
docs/DESIGN day-2 answer 2) are run and marked so.

The app: --spec (default: examples/notes.app.yaml placed as the e2e tests place it: web
on s1, store on s2, api x3), applied with the installed `dragonball apply`. With
--baseline, the same scenarios run again with that spec applied instead, and a ratio
table compares the two. --workload names the app's HTTP API for the load (notes).

The lab: --lab NAME attaches a lab that has DragonBall installed already (Lab.attach);
without it a lab named --name (internal, --servers servers) is brought up and installed
from the real .bin (built unless --skip-build or --bin), and taken down at the end unless
--keep. Prints a table and its markdown (--markdown FILE writes it too; the per-sample
status and dashboard texts go to --log FILE as JSON). Run as root (scripts/setup.sh).
Traffic goes only to the lab's addresses from this machine; nothing leaves it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import install_cluster  # noqa: E402  (bench/: the .bin build it does)
from tests.lab import Lab, LabError  # noqa: E402
from tests.lab import disk_fault, faults  # noqa: E402
from tests.lab.install import LabCluster  # noqa: E402
from tests.ledger import Ledger  # noqa: E402
from tests.load import Load, NotesWorkload  # noqa: E402

from chaos_watch import Watch, condense  # noqa: E402  (bench/: status and dashboard)

console = Console(highlight=False, width=160)
SCENARIOS = {
    "a": "power loss of every server",
    "b": "loss of each server in turn",
    "c": "dockerd killed on the store's server",
    "d": "the store's server cut off from the others",
    "e": "the store's server's data disk full",
}
WORKLOADS = {"notes": NotesWorkload}
SPEC_ON_LAB = "/root/chaos.app.yaml"
ISSUE_12 = "issue 12 (s1: portal and the app's address)"


# --- the cluster and the app ------------------------------------------------------------------

def default_spec() -> dict:
    from tests.e2e.apps import lab_spec   # the e2e tests' placement of the example
    return lab_spec()


def load_spec(path: str | None) -> dict:
    """The spec to run; a Service with published ports that the spec does not place goes on
    s1, as in the default spec: the app's address is s1 in every variant (losing it is
    issue 12's case), so the variants differ only in what they mean to compare."""
    if path is None:
        return default_spec()
    spec = yaml.safe_load(pathlib.Path(path).read_text())
    for service in (spec.get("services") or {}).values():
        if isinstance(service, dict) and service.get("kind") == "service" and \
                service.get("ports") and not service.get("placement"):
            service["placement"] = {"servers": ["s1"]}
    return spec


def bring_up(args) -> tuple[Lab, LabCluster, bool]:
    """(lab, cluster, made here): attached, or brought up and installed now."""
    if args.lab:
        lab = Lab.attach(args.lab)
        return lab, LabCluster(lab, args.bin or "DragonBall.bin"), False
    with tempfile.TemporaryDirectory(prefix="dragonball-chaos-") as folder:
        bin_path = pathlib.Path(args.bin) if args.bin else install_cluster.build(
            args.skip_build, folder)
        lab = Lab(args.name, servers=args.servers, internal=True)
        console.print(f"lab {args.name}: {args.servers} servers (internal) ...")
        lab.up()
        try:
            cluster = LabCluster(lab, bin_path)
            began = time.monotonic()
            cluster.install_cluster()
            console.print(f"installed from {bin_path.name} in {time.monotonic() - began:.0f} s")
        except BaseException:
            if not args.keep:
                lab.down()
            raise
    return lab, cluster, True


def apply(cluster: LabCluster, spec: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        local = pathlib.Path(folder) / pathlib.Path(SPEC_ON_LAB).name
        local.write_text(yaml.safe_dump(spec, sort_keys=False))
        cluster.lab.copy_in(cluster.portal, local, "/root")
    began = time.monotonic()
    run = cluster.dragonball("apply", SPEC_ON_LAB, check=False, timeout=900)
    if run.returncode != 0:
        raise LabError(f"dragonball apply failed ({run.returncode}):\n"
                       f"{(run.stdout + run.stderr)[-3000:]}")
    console.print(f"app {spec['app']} applied in {time.monotonic() - began:.0f} s")


def services(cluster: LabCluster, app: str) -> list[dict] | None:
    """`dragonball services --json` on the portal; None when it does not answer."""
    try:
        run = cluster.dragonball("services", "--app", app, "--json", check=False, timeout=30)
        return json.loads(run.stdout)["services"] if run.returncode == 0 else None
    except (LabError, ValueError, KeyError):
        return None


def all_healthy(rows: list[dict] | None) -> bool:
    return bool(rows) and all(r.get("desired", 0) > 0 and r.get("healthy") == r.get("desired")
                              for r in rows)


def server_of(cluster: LabCluster, app: str, service: str) -> str:
    """The server running `service`'s (first) task (or its first slot's: `store-1`)."""
    for row in services(cluster, app) or []:
        if service in (row.get("service"), row.get("of")):
            running = [t["server"] for t in row.get("tasks", []) if t.get("state") == "running"]
            if running:
                return running[0]
    raise LabError(f"no running task of {service!r} in app {app!r}",
                   "is the app applied and healthy? dragonball services")


def web_url(cluster: LabCluster, spec: dict, app: str) -> str:
    """http://<server of the Service>:<its published port>."""
    for name, service in spec["services"].items():
        if service.get("kind") == "service" and service.get("ports"):
            port = service["ports"][0]["published"]
            return f"http://{cluster.lab.ip(server_of(cluster, app, name))}:{port}"
    raise LabError("the spec has no Service with a published port", "give --url")


def store_container(cluster: LabCluster, server: str, app: str, store: str) -> str:
    """The id of the store's task container on `server` (a Swarm task of `<app>_<store>`
    or of one of its slots `<app>_<store>-<n>`)."""
    out = cluster.docker(server, "ps", "--format",
                         '{{.ID}} {{.Label "com.docker.swarm.service.name"}}').stdout
    for line in out.splitlines():
        cid, _, name = line.partition(" ")
        if name == f"{app}_{store}" or name.startswith(f"{app}_{store}-"):
            return cid
    raise LabError(f"no container of {app}_{store} on {server}")


def storage_path(cluster: LabCluster, server: str, container: str) -> str:
    """Where the container's storage/ folder lives on its server (the volume's folder)."""
    mounts = json.loads(cluster.docker(server, "inspect", "--format", "{{json .Mounts}}",
                                       container).stdout)
    for mount in mounts:
        if mount.get("Destination", "").rstrip("/").endswith("/storage"):
            return mount["Source"]
    raise LabError(f"container {container[:12]} on {server} has no storage/ mount: "
                   f"{[m.get('Destination') for m in mounts]}")


# --- what status and the dashboard say ---------------------------------------------------------

@dataclasses.dataclass
class Context:
    lab: Lab
    cluster: LabCluster
    spec: dict
    variant: str
    url: str
    watch: Watch
    args: argparse.Namespace

    @property
    def app(self) -> str:
        return self.spec["app"]

    def store_server(self) -> str:
        return server_of(self.cluster, self.app, self.args.store)


@dataclasses.dataclass
class Result:
    scenario: str
    case: str
    variant: str
    summary: dict
    fault_s: float
    recovery_s: float | None
    status: list[str]
    dashboard: list[str]
    notes: str = ""


def measure(ctx: Context, scenario: str, case: str, inject: Callable[[], object],
            end: Callable[[], object], notes: str = "", hold: float | None = None) -> Result:
    """Load from warm-up to full recovery around one fault: `inject()` starts it, it is
    held `hold` s (default --hold; 0 for a fault that ends by itself), `end()` ends it
    (or waits for its end)."""
    args = ctx.args
    hold = args.hold if hold is None else hold
    workload = WORKLOADS[args.workload]()
    ledger = Ledger()
    load = Load(ctx.url, workload, ledger, threads=args.threads, rate=args.rate,
                seconds=args.warmup + hold + args.recover + 600, budget=args.budget,
                allowed=[str(ctx.lab.subnet)])
    total_before = load.total()
    console.print(f"[bold]{scenario}[/bold] {case} ({ctx.variant}): load "
                  f"{args.threads}x{args.rate:g}/s for {args.warmup:g} s ...")
    load.start()
    try:
        time.sleep(args.warmup)
        began = time.monotonic()
        ledger.mark("fault", began)
        inject()
        if hold > 0:
            time.sleep(max(0.0, hold - (time.monotonic() - began)))
        end()
        ended = time.monotonic()
        ledger.mark("fault ended", ended)
        console.print(f"  fault held {ended - began:.1f} s; waiting for full recovery ...")
        recovered = wait_recovered(ctx, ledger, ended)
        time.sleep(args.tail)
    finally:
        load.stop()
    readback = load.read_back(timeout=60)
    summary = ledger.summary(readback, fault=(began, ended), total_before=total_before)
    if readback is None:
        summary["writes_lost"] = "no read-back"
    result = Result(scenario, case, ctx.variant, summary, ended - began,
                    None if recovered is None else recovered - ended,
                    ctx.watch.between(load.started, load.stopped, "status"),
                    ctx.watch.between(load.started, load.stopped, "dashboard"), notes)
    show_one(result)
    return result


def wait_recovered(ctx: Context, ledger: Ledger, since: float) -> float | None:
    """When the app had fully recovered (monotonic time), or None within --recover s:
    every service healthy by `dragonball services`, a write and a read answered well in
    the last few seconds, and the latest read listing every acknowledged write it covers."""
    deadline = since + ctx.args.recover
    while time.monotonic() < deadline:
        now = time.monotonic()
        recent = [a for a in ledger.attempts if a.done >= max(since, now - 5)]
        writes_ok = any(a.kind == "write" and a.ok for a in recent)
        reads = [a for a in recent if a.kind == "read" and a.ok]
        stale = {id(r) for r, _ in ledger.stale_reads()}
        if writes_ok and reads and id(reads[-1]) not in stale and \
                all_healthy(services(ctx.cluster, ctx.app)):
            return time.monotonic()
        time.sleep(2)
    return None


# --- the scenarios --------------------------------------------------------------------------------

def scenario_a(ctx: Context) -> list[Result]:
    fault = faults.power_loss(ctx.lab)
    result = measure(ctx, "a", "every server", fault.do, fault.undo)
    result.notes = _boots(fault)
    return [result]


def scenario_b(ctx: Context) -> list[Result]:
    results = []
    for server in ctx.lab.servers:
        fault = faults.lose_server(ctx.lab, server)
        note = ISSUE_12 if server == ctx.cluster.portal else ""
        result = measure(ctx, "b", f"{server} lost", fault.do, fault.undo, note)
        result.notes = "; ".join(filter(None, [note, _boots(fault)]))
        results.append(result)
    return results


def scenario_c(ctx: Context) -> list[Result]:
    server = ctx.store_server()
    fault = faults.kill_dockerd(ctx.lab, server)
    result = measure(ctx, "c", f"on {server}", fault.do, fault.undo, hold=0)
    restarted, ready = fault.timings.get("restarted_s"), fault.timings.get("ready_s")
    result.notes = (f"systemd restarted dockerd {restarted or 0:.1f} s after the kill; "
                    f"docker info answered at {ready or 0:.1f} s")
    return [result]


def scenario_d(ctx: Context) -> list[Result]:
    server = ctx.store_server()
    fault = faults.partition(ctx.lab, server)
    note = ISSUE_12 if server == ctx.cluster.portal else ""
    return [measure(ctx, "d", f"{server} | others", fault.do, fault.undo, note)]


def scenario_e(ctx: Context) -> list[Result]:
    server = ctx.store_server()
    container = store_container(ctx.cluster, server, ctx.app, ctx.args.store)
    path = storage_path(ctx.cluster, server, container)
    disk = disk_fault.fill_disk(ctx.lab, server, path, size_mib=ctx.args.disk_mib)
    try:
        disk.mount()
    except faults.FaultUnavailable as e:
        console.print(f"[yellow]scenario e cannot run here:[/yellow] {e}")
        return []
    try:
        restart_store(ctx, server, container)   # so the store opens its data on the small disk
        result = measure(ctx, "e", f"{server}:{path}", disk.fill, disk.free,
                         f"{ctx.args.disk_mib} MiB ext4; a write then: ")
        result.notes += disk.timings.get("write_error", "?").split(":")[-1].strip()
    finally:
        # Freeze the store while its data is copied back, then restart it on the original.
        running = store_container_or_none(ctx, server)
        if running:
            ctx.cluster.docker(server, "pause", running, check=False)
        disk.undo()
        if running:
            ctx.cluster.docker(server, "unpause", running, check=False)
            restart_store(ctx, server, running)
    return [result]


def store_container_or_none(ctx: Context, server: str) -> str | None:
    try:
        return store_container(ctx.cluster, server, ctx.app, ctx.args.store)
    except LabError:
        return None


def restart_store(ctx: Context, server: str, container: str) -> None:
    """Stop the store's task container; Swarm starts a new task (its placement keeps it on
    `server`); wait until every service is healthy again."""
    ctx.cluster.docker(server, "stop", container, check=False, timeout=60)
    deadline = time.monotonic() + ctx.args.recover
    while time.monotonic() < deadline:
        if store_container_or_none(ctx, server) not in (None, container) and \
                all_healthy(services(ctx.cluster, ctx.app)):
            return
        time.sleep(2)
    raise LabError(f"the store did not come back healthy on {server} after a restart")


def _boots(fault) -> str:
    boots = fault.timings.get("boot_s") or {}
    return ("booted " + ", ".join(f"{s} {t:.0f} s" for s, t in boots.items())) if boots else ""


RUNNERS = {"a": scenario_a, "b": scenario_b, "c": scenario_c, "d": scenario_d, "e": scenario_e}


# --- reporting ----------------------------------------------------------------------------------

COLUMNS = ("scenario", "case", "app", "requests", "failed", "longest gap s", "acked writes lost",
           "first good answer after s", "full recovery s", "dragonball status said",
           "dashboard showed", "notes")


def row(r: Result) -> list[str]:
    s = r.summary
    lost = s.get("writes_lost", "?")
    extra = [f"{s['writes_unverified']} unverified"] if s.get("writes_unverified") else []
    if s.get("stale_reads"):
        extra.append(f"{s['stale_reads']} reads missed acked write(s) "
                     f"{', '.join(map(str, s.get('stale_reads_missed', [])))}")
    if extra:
        lost = f"{lost} ({'; '.join(extra)})"
    first = s.get("first_good_after_fault_s")
    return [f"({r.scenario}) {SCENARIOS[r.scenario]}", r.case, r.variant, str(s["requests"]),
            str(s["failed"]), f"{s['longest_gap_s']:.1f}", str(lost),
            "never" if first is None else f"{first:.1f}",
            "no (within --recover)" if r.recovery_s is None else f"{r.recovery_s:.1f}",
            condense(r.status), condense(r.dashboard), r.notes]


def show_one(r: Result) -> None:
    cells = dict(zip(COLUMNS, row(r)))
    console.print("  " + ", ".join(f"{k}: {cells[k]}" for k in COLUMNS[3:9]))
    if r.summary.get("failures"):
        console.print(f"  failures by reason: {r.summary['failures']}")


def table(results: list[Result]) -> Table:
    out = Table(title="chaos under load through the Service", title_justify="left")
    for column in COLUMNS:
        out.add_column(column, overflow="fold")
    for r in results:
        out.add_row(*row(r))
    return out


def markdown(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row(r)) + " |")
    return "\n".join(lines)


def ratios(results: list[Result], app: str, baseline: str) -> list[list[str]]:
    """Per case: baseline against app for failed requests, longest gap, writes lost, recovery."""
    found = []
    by = {(r.scenario, r.case, r.variant): r for r in results}
    for (scenario, case, variant), r in by.items():
        if variant != app or (scenario, case, baseline) not in by:
            continue
        b = by[(scenario, case, baseline)]

        def ratio(x, y) -> str:
            if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
                return f"{x} / {y}"
            return f"{x:g} / {y:g}" + (f" ({x / y:.1f}×)" if y else "")
        found.append([f"({scenario}) {case}",
                      ratio(b.summary["failed"], r.summary["failed"]),
                      ratio(b.summary["longest_gap_s"], r.summary["longest_gap_s"]),
                      ratio(b.summary.get("writes_lost"), r.summary.get("writes_lost")),
                      ratio(b.recovery_s and round(b.recovery_s, 1),
                            r.recovery_s and round(r.recovery_s, 1))])
    return found


# --- main ----------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="abcde",
                        help="which scenarios, e.g. 'a,c' or 'ce' (default: all five)")
    parser.add_argument("--lab", help="attach this lab, DragonBall installed already")
    parser.add_argument("--name", default="dbchaos", help="the lab to bring up (no --lab)")
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--bin", help="install from this .bin (default: build one)")
    parser.add_argument("--skip-build", action="store_true", help="use dist/ as it is")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--spec", help="the app spec to test (default: the example, placed)")
    parser.add_argument("--baseline", help="a second spec to run the same scenarios with")
    parser.add_argument("--no-apply", action="store_true",
                        help="the app of --spec is applied already: do not apply it")
    parser.add_argument("--url", help="the Service's address (default: from the spec)")
    parser.add_argument("--workload", default="notes", choices=sorted(WORKLOADS))
    parser.add_argument("--store", default="store", help="the service whose server is "
                        "\"the store's server\" (default: store)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second, all "
                        "threads together (default 10)")
    parser.add_argument("--budget", type=int, default=20_000, help="requests per scenario at most")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds a fault is held")
    parser.add_argument("--recover", type=float, default=180.0,
                        help="seconds to wait for full recovery after the fault ended")
    parser.add_argument("--tail", type=float, default=5.0,
                        help="seconds of load after the recovery")
    parser.add_argument("--watch", type=float, default=5.0,
                        help="poll status and the dashboard every this many seconds")
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--markdown", help="also write the markdown table to this file")
    parser.add_argument("--log", help="write every result with its samples as JSON here")
    args = parser.parse_args(argv)
    args.scenario = [c for c in args.scenario.replace(",", "") if c.strip()]
    unknown = [c for c in args.scenario if c not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}: choose from "
                     f"{', '.join(SCENARIOS)}")
    return args


def run_variant(lab, cluster, watch, spec: dict, label: str, args,
                apply_first: bool) -> list[Result]:
    if apply_first:
        apply(cluster, spec)
    url = args.url or web_url(cluster, spec, spec["app"])
    ctx = Context(lab, cluster, spec, label, url, watch, args)
    results = []
    for key in args.scenario:
        if not all_healthy(services(cluster, spec["app"])):
            console.print("[yellow]waiting for the app to be healthy before the next "
                          "scenario[/yellow]")
            wait_recovered(ctx, Ledger(), time.monotonic())
        results += RUNNERS[key](ctx)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    lab, cluster, made = bring_up(args)
    watch = Watch(cluster, args.watch)
    results: list[Result] = []
    try:
        spec = load_spec(args.spec)
        if not args.no_apply:
            apply(cluster, spec)
        watch.prepare()
        watch.start()
        results += run_variant(lab, cluster, watch, spec, "app", args, apply_first=False)
        if args.baseline:
            results += run_variant(lab, cluster, watch, load_spec(args.baseline), "baseline",
                                   args, apply_first=True)
    except KeyboardInterrupt:
        console.print("interrupted: the fault in effect was undone; reporting what ran")
    finally:
        watch.stop()
        if made and not args.keep:
            lab.down()
    if not results:
        return 1
    console.print(table(results))
    if args.baseline:
        compare = Table(title="baseline / app", title_justify="left")
        for column in ("case", "failed requests", "longest gap s", "acked writes lost",
                       "full recovery s"):
            compare.add_column(column)
        for cells in ratios(results, "app", "baseline"):
            compare.add_row(*cells)
        console.print(compare)
    text = markdown(results)
    console.print("\nmarkdown for README:\n" + text, markup=False)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    if args.log:
        pathlib.Path(args.log).write_text(json.dumps(
            {"results": [dataclasses.asdict(r) for r in results],
             "samples": watch.samples}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
