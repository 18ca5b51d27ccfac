#!/usr/bin/env python3
"""A replicated store slot: redis-server plus redis-sentinel, one of each per slot.

    ha.py prepare     start: decide this slot's role; write replication.conf and sentinel.conf
    ha.py settle      start, once redis and the sentinel run: ask for a failover if prepare
                      found this slot's data gone; lift a restarted primary's write fence once
                      the peers' sentinels see it again
    ha.py status      exit 0 when redis answers with a known role (a replica: in sync with its
                      primary) and the sentinel answers
    ha.py info        the slot, its role, the sentinels' view
    ha.py notify      a peer slot changed: log it; on "scaled", follow the quorum
    ha.py handover    stop: a primary hands its role to an in-sync replica first (at most 5 s)
    ha.py live OLD    config_change: apply a new down_after_ms to the sentinel

Only for a replicated slot (DRAGONBALL_PEERS names 2 or more slots, slots.py); a single slot
never runs this. The rules, in docs/module-spec.md ("Stateful slots and replication") and
examples/README.md:

- The role comes from the sentinels: the answer with the newest configuration epoch among
  the peers' sentinels and this slot's own saved view (storage/sentinel/sentinel.conf). With no
  view anywhere (the group's first boot) slot 1 is the primary, the others its replicas.
- A slot the view names as primary starts as primary only with its own data. With no data
  of its own while a peer has some (a lost or replaced disk), it starts as a replica and asks
  the sentinels for a failover: an empty primary would make every replica drop its data.
- A restarted primary starts fenced (it refuses writes) until the peers' sentinels see it up
  again, so a failover that started while it was down cannot leave two primaries that both
  acknowledged writes. While the sentinels are failing over from this slot, prepare waits.

The password goes over the sockets (AUTH) and into 0600 files only, never into a command
line, the environment or a log line.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pwd
import sys
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis_conf  # noqa: E402
import slots  # noqa: E402
from resp import Resp, RespError, info_fields, pairs  # noqa: E402

RUN_DIR = redis_conf.RUN_DIR
DECISION = os.path.join(RUN_DIR, "decision.json")
WATCHER_PID = os.path.join(RUN_DIR, "peers-watch.pid")
FAILOVER_TIMEOUT_MS = 10000
ASK_TIMEOUT_S = 1.0
DOWN_FLAGS = frozenset({"s_down", "o_down", "failover_in_progress"})


def say(message: str) -> None:
    print(f"store: {message}", flush=True)


def storage_dir() -> str:
    return os.environ.get("DRAGONBALL_STORAGE_DIR", os.path.join(os.getcwd(), "storage"))


def sentinel_dir() -> str:
    return os.path.join(storage_dir(), "sentinel")


def sentinel_conf() -> str:
    return os.path.join(sentinel_dir(), "sentinel.conf")


# -- the views: pure ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class View:
    """Who a sentinel (a peer's, or this slot's saved one) says the primary is."""

    epoch: int
    host: str
    port: int
    flags: frozenset = frozenset()
    source: str = "saved"  # the peer whose sentinel answered, or "saved"


@dataclasses.dataclass(frozen=True)
class PeerRedis:
    role: str  # master | slave
    offset: int  # master_repl_offset: > 0 once the slot took part in replication


@dataclasses.dataclass(frozen=True)
class Decision:
    role: str  # primary | replica
    master: str  # the slot to replicate from (a replica) or this slot (a primary)
    epoch: int
    reason: str
    fenced: bool = False
    request_failover: bool = False
    watched: str = ""  # the primary of the view, when it is not `master`


def newest(views: list[View]) -> View | None:
    """The view with the highest configuration epoch; a live peer's wins a tie."""
    if not views:
        return None
    return max(views, key=lambda v: (v.epoch, v.source != "saved"))


def failing_over_from(me: str, views: list[View]) -> bool:
    """A peer's sentinel holds this slot as a primary it finds down or is failing over from."""
    best = newest([v for v in views if v.source != "saved"])
    return best is not None and best.host == me and bool(best.flags & DOWN_FLAGS)


def decide(slot, saved: View | None, views: list[View], peers: dict[str, PeerRedis],
           has_data: bool) -> Decision:
    """This slot's role at start, from what the sentinels and the peers' redis say."""
    best = newest(views + ([saved] if saved else []))
    if best is not None:
        master, epoch = best.host, best.epoch
        source = "this slot's saved view" if best.source == "saved" else f"{best.source}'s sentinel"
        why = f"the primary is {master} (epoch {epoch}, from {source})"
    else:
        masters = sorted((info.offset, name) for name, info in peers.items() if info.role == "master")
        master, epoch = (masters[-1][1] if masters else slot.peers[0]), 0
        why = (f"no sentinel knows the group yet; {master} runs as primary" if masters else
               f"no sentinel or primary answers: the group's first boot, slot 1 ({master}) "
               "is the primary")
    if master != slot.name:
        return Decision("replica", master, epoch, why)
    with_data = sorted((info.offset, name) for name, info in peers.items() if info.offset > 0)
    if not has_data and with_data:
        source = with_data[-1][1]
        return Decision("replica", source, epoch,
                        f"{why}, but this slot has no data while {source} has: it joins as a "
                        "replica and asks the sentinels for a failover (an empty primary would "
                        "make every replica drop its data)", request_failover=True,
                        watched=slot.name)
    answered = bool(views) or bool(peers)
    return Decision("primary", slot.name, epoch, why, fenced=has_data and answered)


# -- sentinel.conf: pure -----------------------------------------------------------------------
def tokens(line: str) -> list[str]:
    """A redis config line's words; "double quoted" words with \\xHH, \\n, \\" escapes."""
    out, i, n = [], 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] == '"':
            i += 1
            word = bytearray()
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    nxt = line[i + 1]
                    if nxt == "x" and i + 3 < n:
                        word.append(int(line[i + 2:i + 4], 16))
                        i += 4
                        continue
                    word += {"n": b"\n", "r": b"\r", "t": b"\t"}.get(nxt, nxt.encode())
                    i += 2
                    continue
                word += line[i].encode()
                i += 1
            out.append(word.decode("utf-8", "replace"))
            i += 1
        else:
            j = i
            while j < n and not line[j].isspace():
                j += 1
            out.append(line[i:j])
            i = j
    return out


def saved_state(text: str, name: str) -> dict:
    """What a sentinel learned and wrote to its file, for master `name`."""
    state = {"myid": None, "current_epoch": 0, "config_epoch": 0, "leader_epoch": 0,
             "monitor": None, "replicas": [], "sentinels": []}
    for line in text.splitlines():
        words = tokens(line)
        if len(words) < 3 or words[0].lower() != "sentinel":
            continue
        key, rest = words[1].lower(), words[2:]
        try:
            if key == "myid":
                state["myid"] = rest[0]
            elif key == "current-epoch":
                state["current_epoch"] = int(rest[0])
            elif rest[0] != name:
                continue
            elif key == "monitor" and len(rest) >= 3:
                state["monitor"] = (rest[1], int(rest[2]))
            elif key == "config-epoch":
                state["config_epoch"] = int(rest[1])
            elif key == "leader-epoch":
                state["leader_epoch"] = int(rest[1])
            elif key in ("known-replica", "known-slave") and len(rest) >= 3:
                state["replicas"].append((rest[1], int(rest[2])))
            elif key == "known-sentinel" and len(rest) >= 4:
                state["sentinels"].append((rest[1], int(rest[2]), rest[3]))
        except (IndexError, ValueError):
            continue
    return state


def render_sentinel(p: dict, slot, decision: Decision, state: dict, directory: str) -> str:
    """sentinel.conf: our settings, then the state the sentinel had learned (kept)."""
    q, name = redis_conf.quote, p["master_name"]
    lines = [
        "# Rendered by store/module/ha.py at every start of this slot from the parameters and",
        "# the state below, which the sentinel keeps up to date itself. Edits are lost.",
        f"port {p['sentinel_port']}",
        "bind 0.0.0.0",
        "protected-mode no",
        "daemonize no",
        'logfile ""',
        f"dir {q(directory)}",
        # Slots are DNS names on the app network; their addresses change when they restart.
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        f"sentinel announce-ip {q(slot.name)}",
        f"sentinel announce-port {p['sentinel_port']}",
        "sentinel deny-scripts-reconfig yes",
    ]
    if p["password"]:
        lines += [f"requirepass {q(p['password'])}", f"sentinel sentinel-pass {q(p['password'])}"]
    if state.get("myid"):
        lines.append(f"sentinel myid {state['myid']}")
    # The sentinel watches the primary of the view, even while this slot replicates from a
    # peer because its own data is gone (then the sentinels fail over from it).
    watched = decision.watched or decision.master
    lines.append(f"sentinel monitor {name} {watched} {p['port']} {slot.quorum}")
    if p["password"]:
        lines.append(f"sentinel auth-pass {name} {q(p['password'])}")
    lines += [
        f"sentinel down-after-milliseconds {name} {p['down_after_ms']}",
        f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {name} 1",
        f"sentinel config-epoch {name} {decision.epoch}",
        f"sentinel leader-epoch {name} {state.get('leader_epoch', 0)}",
        f"sentinel current-epoch {max(decision.epoch, state.get('current_epoch', 0))}",
    ]
    # Every slot but the primary is its replica, this one included: a sentinel that restarted
    # knows them all at once, not only after its next INFO of the primary (10 s). A sentinel
    # elected leader in between would leave an unknown replica on the dead primary (measured:
    # 17 s of refused writes, until another sentinel fixed it after failover-timeout).
    replicas = list(state.get("replicas", []))
    replicas += [(peer, p["port"]) for peer in slot.peers if (peer, p["port"]) not in replicas]
    for host, port in replicas:
        if host != watched:
            lines.append(f"sentinel known-replica {name} {host} {port}")
    for host, port, runid in state.get("sentinels", []):
        if host != slot.name:
            lines.append(f"sentinel known-sentinel {name} {host} {port} {runid}")
    return "\n".join(lines) + "\n"


def replication_conf(decision: Decision, p: dict, slot) -> str:
    lines = [f"# Written by store/module/ha.py at start: {decision.reason}."]
    if decision.role == "replica":
        lines.append(f"replicaof {redis_conf.quote(decision.master)} {p['port']}")
    elif decision.fenced:
        # More replicas than there are peers: every write is refused until `ha.py settle`
        # (or `status`, as a backstop) lifts the fence with CONFIG SET.
        lines.append(f"min-replicas-to-write {len(slot.peers)}")
    return "\n".join(lines) + "\n"


# -- the world ---------------------------------------------------------------------------------
class Context:
    """The parameters, the slot, and the way to reach redis and sentinels."""

    def __init__(self) -> None:
        self.p = params.load()
        found = redis_conf.problems(self.p)
        if found:
            raise SystemExit(say("invalid parameters: " + "; ".join(found)) or 1)
        try:
            self.slot = slots.from_environ(os.environ)
        except slots.SlotError as e:
            raise SystemExit(say(f"slot: {e}") or 1) from e
        if self.slot is None or not self.slot.replicated:
            raise SystemExit(say("not a replicated slot (no DRAGONBALL_PEERS): nothing to do") or 0)
        self.name = self.p["master_name"]

    def redis(self, host: str = "127.0.0.1", timeout: float = ASK_TIMEOUT_S) -> Resp:
        return Resp(host, self.p["port"], self.p["password"], timeout)

    def sentinel(self, host: str = "127.0.0.1", timeout: float = ASK_TIMEOUT_S) -> Resp:
        return Resp(host, self.p["sentinel_port"], self.p["password"], timeout)

    def sentinel_view(self, peer: str) -> View:
        with self.sentinel(peer) as s:
            m = pairs(s.call("SENTINEL", "MASTER", self.name))
        return View(int(m.get("config-epoch", 0)), m["ip"], int(m["port"]),
                    frozenset(m.get("flags", "").split(",")), peer)

    def peer_redis(self, peer: str) -> PeerRedis:
        with self.redis(peer) as r:
            f = info_fields(r.call("INFO", "replication"))
        return PeerRedis(f.get("role", "?"), int(f.get("master_repl_offset", 0) or 0))

    def ask_peers(self) -> tuple[list[View], dict[str, PeerRedis]]:
        """Every peer's sentinel and redis, in parallel, each within ASK_TIMEOUT_S."""
        others = self.slot.others
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * len(others)) as pool:
            views = {peer: pool.submit(self.sentinel_view, peer) for peer in others}
            redis = {peer: pool.submit(self.peer_redis, peer) for peer in others}
            got_views, got_redis = [], {}
            for peer, future in views.items():
                try:
                    got_views.append(future.result())
                except (RespError, KeyError, ValueError) as e:
                    say(f"no view from {peer}'s sentinel: {e}")
            for peer, future in redis.items():
                try:
                    got_redis[peer] = future.result()
                except (RespError, ValueError) as e:
                    say(f"no answer from {peer}'s redis: {e}")
        return got_views, got_redis

    def saved(self) -> tuple[View | None, dict]:
        try:
            with open(sentinel_conf(), encoding="utf-8") as f:
                state = saved_state(f.read(), self.name)
        except FileNotFoundError:
            return None, saved_state("", self.name)
        view = (View(state["config_epoch"], *state["monitor"]) if state["monitor"] else None)
        return view, state

    def has_data(self) -> bool:
        data = os.path.join(storage_dir(), "redis")
        for _root, _dirs, files in os.walk(data):
            if any(f.endswith((".rdb", ".aof")) for f in files):
                return True
        return False


def redis_owner() -> int | None:
    try:
        return pwd.getpwnam("redis").pw_uid if os.geteuid() == 0 else None
    except KeyError:
        return None


# -- commands ----------------------------------------------------------------------------------
def prepare(ctx: Context) -> int:
    saved, state = ctx.saved()
    has_data = ctx.has_data()
    deadline = time.monotonic() + max(10.0, 3 * ctx.p["down_after_ms"] / 1000)
    while True:
        views, peers = ctx.ask_peers()
        if not failing_over_from(ctx.slot.name, views) or time.monotonic() > deadline:
            break
        say(f"the peers' sentinels are failing over from {ctx.slot.name}: waiting for the new "
            "primary before choosing a role")
        time.sleep(1.0)
    decision = decide(ctx.slot, saved, views, peers, has_data)
    uid = redis_owner()
    redis_conf.write_private(redis_conf.REPLICATION_CONF,
                             replication_conf(decision, ctx.p, ctx.slot), uid)
    os.makedirs(sentinel_dir(), mode=0o700, exist_ok=True)
    if uid is not None:
        os.chown(sentinel_dir(), uid, -1)
    redis_conf.write_private(sentinel_conf(),
                             render_sentinel(ctx.p, ctx.slot, decision, state, sentinel_dir()), uid)
    fence_until = time.time() + 2 * ctx.p["down_after_ms"] / 1000 + 20
    with open(DECISION, "w", encoding="utf-8") as f:
        json.dump({**dataclasses.asdict(decision), "fence_until": fence_until}, f)
    if len(ctx.slot.peers) == 2:
        say("2 slots: every acknowledged write is on both, but electing a new primary needs a "
            "majority of the 2 sentinels, so losing either server stops writes until it is "
            "back (no automatic failover); 3 slots fail over by themselves")
    role = "primary" if decision.role == "primary" else f"replica of {decision.master}"
    say(f"slot {ctx.slot.number} of {len(ctx.slot.peers)} ({ctx.slot.name}) starts as {role}: "
        f"{decision.reason}" + ("; writes fenced until the peers' sentinels see it" if
                                decision.fenced else ""))
    return 0


def read_decision() -> dict:
    try:
        with open(DECISION, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def lift_fence(ctx: Context, why: str) -> bool:
    try:
        with ctx.redis() as r:
            r.call("CONFIG", "SET", "min-replicas-to-write", "1")
    except RespError as e:
        say(f"cannot lift the write fence yet: {e}")
        return False
    decision = read_decision()
    decision["fenced"] = False
    with open(DECISION, "w", encoding="utf-8") as f:
        json.dump(decision, f)
    say(f"write fence lifted: {why}")
    return True


def seen_by_peers(ctx: Context) -> tuple[bool, str]:
    """Every peer sentinel that answers holds this slot as a primary that is up."""
    views, _ = ctx.ask_peers()
    if not views:
        return True, "no peer sentinel answers, so none can fail over"
    for view in views:
        if view.host != ctx.slot.name:
            return False, f"{view.source}'s sentinel holds {view.host} as the primary"
        if view.flags & DOWN_FLAGS:
            return False, f"{view.source}'s sentinel still flags it {','.join(sorted(view.flags))}"
    return True, f"{len(views)} peer sentinel(s) see {ctx.slot.name} up as the primary"


def follow_new_primary(ctx: Context, seconds: float) -> None:
    """Once the sentinels named a primary other than this slot, replicate from it directly
    (the sentinels would re-point this slot too, but only after failover-timeout)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            with ctx.sentinel() as s:
                primary = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ctx.name)
        except RespError:
            continue
        if not primary or primary[0] == ctx.slot.name:
            continue
        try:
            fields = replication(ctx)
            if fields.get("master_host") != primary[0]:
                with ctx.redis() as r:
                    r.call("REPLICAOF", primary[0], primary[1])
            say(f"the sentinels made {primary[0]} the primary; this slot replicates from it")
        except RespError as e:
            say(f"cannot replicate from the new primary {primary[0]} yet: {e}")
        return
    say(f"no failover within {seconds:.0f} s; the sentinels will re-point this slot later")


def settle(ctx: Context) -> int:
    decision = read_decision()
    if decision.get("request_failover"):
        for peer in ctx.slot.others:
            try:
                with ctx.sentinel(peer) as s:
                    s.call("SENTINEL", "FAILOVER", ctx.name)
                say(f"asked {peer}'s sentinel for a failover to a replica that has the data")
                break
            except RespError as e:
                say(f"{peer}'s sentinel did not start a failover: {e}")
        follow_new_primary(ctx, FAILOVER_TIMEOUT_MS / 1000 + 5)
    if not decision.get("fenced"):
        return 0
    deadline = decision.get("fence_until", 0)
    while time.time() < deadline:
        try:
            with ctx.redis() as r:
                role = r.call("ROLE")[0]
        except RespError:
            role = "?"
        if role == "slave":
            lift_fence(ctx, "the sentinels made this slot a replica")
            return 0
        ok, why = seen_by_peers(ctx)
        if ok:
            lift_fence(ctx, why)
            return 0
        say(f"write fence kept: {why}")
        time.sleep(1.0)
    lift_fence(ctx, "no failover came within the fence's time")
    return 0


def replication(ctx: Context) -> dict:
    with ctx.redis() as r:
        return info_fields(r.call("INFO", "replication"))


def replicas_of(fields: dict) -> list[dict]:
    """The `slaveN:ip=...,port=...,state=...,offset=...,lag=...` lines of a primary's INFO."""
    found = []
    for key, value in sorted(fields.items()):
        if key.startswith("slave") and key[5:].isdigit():
            found.append(dict(item.split("=", 1) for item in value.split(",") if "=" in item))
    return found


def describe_role(fields: dict) -> tuple[bool, str]:
    role = fields.get("role")
    if role == "master":
        replicas = replicas_of(fields)
        online = [r for r in replicas if r.get("state") == "online"]
        names = ", ".join(f"{r.get('ip')} (lag {r.get('lag', '?')} s)" for r in online)
        return True, (f"primary, {len(online)} of {len(replicas)} replica(s) in sync"
                      + (f": {names}" if names else ""))
    if role == "slave":
        master = fields.get("master_host", "?")
        if fields.get("master_link_status") != "up":
            return False, f"replica of {master}: link down"
        if fields.get("master_sync_in_progress") not in (None, "0"):
            return False, f"replica of {master}: initial sync in progress"
        return True, f"replica of {master}, in sync (offset {fields.get('slave_repl_offset', '?')})"
    return False, f"unknown role {role!r}"


def watcher_alive() -> bool:
    try:
        with open(WATCHER_PID, encoding="ascii") as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def status(ctx: Context) -> int:
    try:
        fields = replication(ctx)
    except RespError as e:
        say(f"redis-server does not answer on port {ctx.p['port']}: {e}")
        return 1
    ok, text = describe_role(fields)
    try:
        with ctx.sentinel() as s:
            s.call("PING")
    except RespError as e:
        say(f"{text}; the sentinel does not answer on port {ctx.p['sentinel_port']}: {e}")
        return 1
    if not watcher_alive():
        say(f"{text}; the slot address watcher (module/peers.py) is not running")
        return 1
    decision = read_decision()
    if decision.get("fenced") and time.time() > decision.get("fence_until", 0):
        lift_fence(ctx, "its time is over (backstop of settle)")
    print(f"{text}; sentinel up")
    return 0 if ok else 1


def info(ctx: Context) -> int:
    s = ctx.slot
    print(f"slot: {s.number} of {len(s.peers)} ({s.name}); peers {','.join(s.peers)}")
    try:
        print(f"replication: {describe_role(replication(ctx))[1]}")
    except RespError as e:
        print(f"replication: redis-server does not answer: {e}")
    try:
        with ctx.sentinel() as sent:
            m = pairs(sent.call("SENTINEL", "MASTER", ctx.name))
            try:
                quorum = sent.call("SENTINEL", "CKQUORUM", ctx.name)
            except RespError as e:
                quorum = str(e)
        print(f"sentinel: port {ctx.p['sentinel_port']}, primary {m.get('ip')}:{m.get('port')} "
              f"(epoch {m.get('config-epoch')}), {int(m.get('num-other-sentinels', 0)) + 1} "
              f"sentinels, quorum {m.get('quorum')}: {quorum}")
    except RespError as e:
        print(f"sentinel: does not answer on port {ctx.p['sentinel_port']}: {e}")
    print(f"durability: appendfsync {ctx.p['appendfsync']}; a write needs 1 replica within "
          f"{redis_conf.MIN_REPLICAS_MAX_LAG_S} s (min-replicas-to-write)")
    return 0


def notify(ctx: Context) -> int:
    path = os.environ.get("DRAGONBALL_NOTIFICATION_FILE", "")
    try:
        with open(path, encoding="utf-8") as f:
            note = json.load(f)
    except (OSError, ValueError) as e:
        say(f"cannot read the notification {path!r}: {e}")
        return 1
    replicas = note.get("replicas") or {}
    say(f"notified (seq {note.get('seq')}: {note.get('service')} {note.get('event')}, running "
        f"{replicas.get('running', '?')} of {replicas.get('desired', '?')} desired): the "
        "sentinels find the peers and fail over by themselves")
    own_service = ctx.slot.name.rsplit("-", 1)[0]
    desired = replicas.get("desired")
    if note.get("event") == "scaled" and note.get("service") == own_service and \
            isinstance(desired, int) and desired >= 2:
        quorum = desired // 2 + 1
        try:
            with ctx.sentinel() as s:
                s.call("SENTINEL", "SET", ctx.name, "quorum", str(quorum))
            say(f"sentinel quorum set to {quorum} of {desired}")
        except RespError as e:
            say(f"cannot set the sentinel quorum: {e}")
            return 1
    return 0


def peers_agree(ctx: Context, primary: str, deadline: float) -> str:
    """Wait until every peer sentinel that answers names `primary`; say how it went."""
    pending = list(ctx.slot.others)
    while pending and time.monotonic() < deadline:
        for peer in list(pending):
            try:
                with ctx.sentinel(peer) as s:
                    named = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ctx.name)
            except RespError:
                pending.remove(peer)  # not answering: it learns the view when it comes back
                continue
            if named and named[0] == primary:
                pending.remove(peer)
        if pending:
            time.sleep(0.2)
    if pending:
        return f"the sentinels of {', '.join(pending)} did not name it yet"
    return "the peers' sentinels name it"


def handover(ctx: Context, seconds: float = 5.0) -> int:
    try:
        fields = replication(ctx)
    except RespError as e:
        say(f"no handover: redis-server does not answer: {e}")
        return 0
    if fields.get("role") != "master":
        return 0
    if not any(r.get("state") == "online" for r in replicas_of(fields)):
        say("no handover: no replica is in sync")
        return 0
    # A failover the sentinel forces does not stop the old primary: writes it takes after the
    # sentinel chose a replica (and that another replica confirms) would be dropped when the
    # replicas resync from the new primary. So: pause writes here, let every replica catch up,
    # then hand over. Paused clients get -READONLY once this slot is a replica (the api then
    # asks the sentinels again and writes to the new primary).
    deadline = time.monotonic() + seconds
    handed = False
    try:
        with ctx.redis() as r:
            # Long enough to outlast this slot's shutdown: once a replica is promoted, a write
            # let through here would be acknowledged on the old primary and then dropped.
            r.call("CLIENT", "PAUSE", str(int(seconds * 1000) + 8000), "WRITE")
            while time.monotonic() < deadline:
                fields = info_fields(r.call("INFO", "replication"))
                offset = fields.get("master_repl_offset")
                online = [x for x in replicas_of(fields) if x.get("state") == "online"]
                if online and all(x.get("offset") == offset for x in online):
                    break
                time.sleep(0.05)
            with ctx.sentinel() as s:
                s.call("SENTINEL", "FAILOVER", ctx.name)
                while time.monotonic() < deadline and not handed:
                    time.sleep(0.1)
                    primary = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ctx.name)
                    handed = bool(primary) and primary[0] != ctx.slot.name
            if handed:
                # This sentinel led the failover; stopped before the others learn the new
                # configuration (its hello messages, every 2 s), they would see the old primary
                # go down and fail over again, demoting the new one (measured: 10.8 s).
                agreed = peers_agree(ctx, primary[0], deadline)
                say(f"handed the primary role over to {primary[0]} (writes paused here until "
                    f"this slot stops); {agreed}")
                return 0
            say(f"the handover did not finish within {seconds:.0f} s; stopping anyway")
    except RespError as e:
        say(f"no handover: {e}")
    try:
        with ctx.redis() as r:
            r.call("CLIENT", "UNPAUSE")
    except RespError:
        pass
    return 0


def live(ctx: Context, old_path: str) -> int:
    """config_change: what the sentinel applies live (port, sentinel_port, master_name and
    password were refused by redis_conf.py: every slot must change them together)."""
    old = {**params.defaults(), **params.read_file(old_path)}
    if ctx.p["down_after_ms"] == old["down_after_ms"]:
        return 0
    try:
        with ctx.sentinel() as s:
            s.call("SENTINEL", "SET", ctx.name, "down-after-milliseconds",
                   str(ctx.p["down_after_ms"]))
    except RespError as e:
        say(f"live change failed: {e}")
        return 1
    say(f"down_after_ms {old['down_after_ms']} -> {ctx.p['down_after_ms']} (applied live)")
    return 0


def main(argv: list[str]) -> int:
    commands = {"prepare": prepare, "settle": settle, "status": status, "info": info,
                "notify": notify, "handover": handover}
    if argv[:1] == ["live"] and len(argv) == 2:
        return live(Context(), argv[1])
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](Context())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
