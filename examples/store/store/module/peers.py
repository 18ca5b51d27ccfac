#!/usr/bin/env python3
"""Pin every slot's last known address in this container's /etc/hosts, and keep it fresh.

    peers.py pin      once, at start: the addresses saved in storage/ and a round of DNS
                      queries (bounded); write the block; exit
    peers.py watch    forever: query DNS every second, rewrite the block when one changes

Why: redis-server (a replica reconnecting to its primary) and redis-sentinel resolve the slots'
names with a blocking lookup in their main loop. When a slot stops, its name leaves the app
network's DNS, and the engine's DNS forwards the question upstream; where the upstream drops
queries (measured on the lab: 17 lookups in 300 of a stopped slot's name took 5.0 s; an offline
site may have no upstream at all), the sentinel's loop stalls past 2 s and it enters TILT mode:
30 s without acting, again and again, so no failover ever happens. With the slots in
/etc/hosts no lookup leaves the container: a stopped slot keeps its last known address
(connecting to it fails without blocking) until DNS names a new one.

The queries go straight to the nameserver of /etc/resolv.conf (they must not read the block
they maintain), over UDP with a 1 s timeout. The block has a fixed size once written, so a
rewrite is one write at the same offset and a reader never sees a half-written file.
Standard library only.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slots  # noqa: E402

HOSTS = os.environ.get("NOTES_STORE_HOSTS_FILE", "/etc/hosts")
RESOLV = os.environ.get("NOTES_STORE_RESOLV_FILE", "/etc/resolv.conf")
BEGIN = "# dragonball store slots (module/peers.py): last known addresses"
END = "# dragonball store slots: end"
WIDTH = 120  # every line of the block is padded to this many characters
QUERY_TIMEOUT_S = 1.0
PERIOD_S = 1.0


def saved_path() -> str:
    storage = os.environ.get("DRAGONBALL_STORAGE_DIR", os.path.join(os.getcwd(), "storage"))
    return os.path.join(storage, "peers.json")


def say(message: str) -> None:
    print(f"store: {message}", flush=True)


# -- DNS: pure encoding and decoding, one UDP exchange -----------------------------------------
def query_packet(name: str, qid: int) -> bytes:
    """A standard query (recursion desired) for the A records of `name`."""
    labels = b"".join(bytes([len(part)]) + part.encode("ascii")
                      for part in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack(">HH", 1, 1)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def answer_addresses(data: bytes, qid: int) -> list[str] | None:
    """The A addresses of a reply; [] for "no such name"; None if it is not our answer."""
    if len(data) < 12:
        return None
    rid, flags, qdcount, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
    if rid != qid or not flags & 0x8000:
        return None
    rcode = flags & 0x000F
    if rcode == 3:  # NXDOMAIN: the slot has no address now
        return []
    if rcode != 0:
        return None
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    found = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        rtype, _rclass, _ttl, length = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(data[offset:offset + 4]))
        offset += length
    return found


def nameserver() -> str:
    try:
        with open(RESOLV, encoding="utf-8") as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    return words[1]
    except OSError:
        pass
    return "127.0.0.1"


def resolve(name: str, server: str, timeout: float = QUERY_TIMEOUT_S) -> list[str] | None:
    """The name's A addresses from `server`; None when it did not answer in time."""
    qid = random.randrange(1 << 16)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query_packet(name, qid), (server, 53))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(4096)
                found = answer_addresses(data, qid)
                if found is not None:
                    return found
        except (OSError, IndexError, struct.error):
            return None
    return None


# -- the block in /etc/hosts: pure -------------------------------------------------------------
def block(names: tuple[str, ...], known: dict[str, str]) -> str:
    lines = [BEGIN]
    for name in names:
        lines.append(f"{known[name]} {name}" if name in known else f"# {name}: no address known yet")
    lines.append(END)
    return "".join(line.ljust(WIDTH - 1)[:WIDTH - 1] + "\n" for line in lines)


def replace_block(text: str, new_block: str) -> tuple[str, int | None]:
    """(the file with our block replaced or appended, the old block's offset if same size)."""
    start = text.find(BEGIN)
    if start >= 0:
        end = text.find(END, start)
        end = text.find("\n", end) + 1 if end >= 0 else len(text)
        head, tail = text[:start], text[end:]
        same_size = (end - start) == len(new_block) and not tail
        return head + new_block + tail, (len(head.encode()) if same_size else None)
    head = text if text.endswith("\n") or not text else text + "\n"
    return head + new_block, None


def write_hosts(new_block: str) -> bool:
    """Put `new_block` in /etc/hosts; True when the file changed. Never renames the file:
    the engine bind-mounts it, so it is rewritten in place."""
    with open(HOSTS, "r+b") as f:
        text = f.read().decode("utf-8", "replace")
        updated, offset = replace_block(text, new_block)
        if updated == text:
            return False
        if offset is not None:
            f.seek(offset)
            f.write(new_block.encode())
        else:
            f.seek(0)
            f.write(updated.encode())
            f.truncate()
    return True


# -- commands ----------------------------------------------------------------------------------
def load_saved() -> dict[str, str]:
    try:
        with open(saved_path(), encoding="utf-8") as f:
            data = json.load(f)
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    except (OSError, ValueError, AttributeError):
        return {}


def save(known: dict[str, str]) -> None:
    tmp = saved_path() + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(known, f)
    os.replace(tmp, saved_path())


def refresh(names: tuple[str, ...], known: dict[str, str], server: str) -> dict[str, str]:
    """Known addresses after one round of queries; a name with no answer keeps its last."""
    fresh = dict(known)
    for name in names:
        found = resolve(name, server)
        if found:
            fresh[name] = found[0]
    return fresh


def main(argv: list[str]) -> int:
    if argv not in (["pin"], ["watch"]):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        slot = slots.from_environ(os.environ)
    except slots.SlotError as e:
        say(f"slot: {e}")
        return 1
    if slot is None or not slot.replicated:
        return 0
    server = nameserver()
    names = slot.peers
    known = {k: v for k, v in load_saved().items() if k in names}
    known = refresh(names, known, server)
    if argv == ["pin"]:
        write_hosts(block(names, known))
        save(known)
        say("slot addresses pinned in /etc/hosts: " +
            ", ".join(f"{n} {known.get(n, '(not known yet)')}" for n in names))
        return 0
    while True:
        if write_hosts(block(names, known)):
            save(known)
            say("slot addresses now: " + ", ".join(f"{n} {known.get(n, '?')}" for n in names))
        time.sleep(PERIOD_S)
        known = refresh(names, known, server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
