"""Make OS preparation changes real (the adapter of dragonball.installer.osprep).

`Applier(host, undo).apply(change)` makes one described change, noting first what
it is about to change; every applier is idempotent (it compares before it acts),
so a step killed half-way runs again safely. The `@undoer` functions here take
each kind back for `reset`.
"""

from __future__ import annotations

import logging
import os

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.undo import UndoLog, undoer

log = logging.getLogger(__name__)

COMMENT = "dragonball"  # iptables rules and ufw rules carry it
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"


def proc_sys_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_sysctl(host, key: str) -> str | None:
    text = host.read_text(proc_sys_path(key))
    return " ".join(text.split()) if text is not None else None


class Applier:
    """Applies described changes on `host`, noting each in `undo` first."""

    def __init__(self, host, undo: UndoLog, warn=log.warning) -> None:
        self.host, self.undo, self.warn = host, undo, warn

    def apply(self, change: dict) -> None:
        getattr(self, "_" + change["kind"])(change)

    # --- files -------------------------------------------------------------------------

    def _file(self, change: dict) -> None:
        path, content = change["path"], change["content"]
        write_file(self.host, self.undo, path, content, int(change["mode"], 8))

    def _module(self, change: dict) -> None:
        if self.host.exists(change["present"]):
            return
        done = self.host.run(["modprobe", change["name"]], check=False)
        if not self.host.exists(change["present"]):
            self.warn(f"kernel module {change['name']} could not be loaded "
                      f"({done.describe()}): the engine tries again when it starts")

    # --- sysctl --------------------------------------------------------------------------

    def _sysctl(self, change: dict) -> None:
        values = change["values"]
        before = {key: {"before": read_sysctl(self.host, key), "set": value}
                  for key, value in values.items()}
        self.undo.note("sysctl", {"kind": "sysctl", "values": {
            k: v for k, v in before.items() if v["before"] is not None}})
        if self.host.which("sysctl"):
            # -e: a key this kernel lacks is checked below, not an error of sysctl's own.
            self.host.run(["sysctl", "-e", "-p", change["file"]], check=False)
        else:
            for key, value in values.items():
                if self.host.exists(proc_sys_path(key)):
                    write_proc(self.host, key, value)
        for key, value in values.items():
            now = read_sysctl(self.host, key)
            if now is None:
                self.warn(f"{key} does not exist on this kernel (br_netfilter not loaded?): "
                          "set it once the module is there")
            elif now != value:
                raise InstallerError(f"{key} is {now} after applying {change['file']}, "
                                     f"not {value}", "set it by hand with sysctl -w, or find "
                                     "what sets it back (another file in /etc/sysctl.d)")

    # --- SELinux --------------------------------------------------------------------------

    def _selinux(self, change: dict) -> None:
        if (self.host.read_text(SELINUX_ENFORCE) or "").strip() == "1":
            self.undo.note("selinux.runtime", {"kind": "selinux", "enforcing": True})
            self.host.run(["setenforce", "0"])
        path = change["config"]
        text = self.host.read_text(path)
        if text is None:
            return
        before = osprep.config_value(text, "SELINUX")
        if before and before.lower() == "enforcing":
            self.undo.note("selinux.config", {"kind": "config_value", "path": path,
                                              "key": "SELINUX", "before": before,
                                              "set": change["mode"]})
            self.host.write_text(path, osprep.set_config_value(text, "SELINUX", change["mode"]),
                                 self.host.mode(path) or 0o644)

    # --- firewall --------------------------------------------------------------------------

    def _ports(self, change: dict) -> None:
        name = change["firewall"]
        tool = {"firewalld": "firewall-cmd", "ufw": "ufw", "iptables": "iptables"}[name]
        if not self.host.which(tool):
            self.warn(f"{tool} is not installed: no {name} rules to add for "
                      f"{', '.join(change['ports'])}")
            return
        closed = [p for p in change["ports"] if not port_open(self.host, name, p)]
        self.undo.note(f"ports.{name}", {"kind": "ports", "firewall": name, "opened": closed})
        for port in closed:
            open_port(self.host, name, port)

    # --- ssh ------------------------------------------------------------------------------

    def _authorized_key(self, change: dict) -> None:
        path, line = change["path"], change["key"]
        text = self.host.read_text(path)
        blob = osprep.key_blob(line)
        if text is not None and any(osprep.key_blob(l) == blob for l in text.splitlines()):
            return  # there already (ours from a killed run, or the admin's own)
        folder = os.path.dirname(path)
        self.undo.note(f"authorized_key:{path}", {
            "kind": "authorized_key", "path": path, "key": line, "created_file": text is None,
            "created_dirs": missing_dirs(self.host, folder)})
        self.host.make_dirs(folder, mode=0o700)
        body = text or ""
        if body and not body.endswith("\n"):
            body += "\n"
        self.host.write_text(path, body + line + "\n", self.host.mode(path) or 0o600)


# --- shared by appliers of other steps (engine.config) --------------------------------------

def missing_dirs(host, folder: str) -> list[str]:
    missing = []
    current = os.path.normpath(folder)
    while current not in ("/", "") and not host.exists(current):
        missing.append(current)
        current = os.path.dirname(current)
    return list(reversed(missing))


def write_file(host, undo: UndoLog, path: str, content: str, mode: int = 0o644) -> bool:
    """Make `path` hold `content`, noting what was there first; True if it was written."""
    before = host.read_text(path)
    undo.note(f"file:{path}", {"kind": "file", "path": path, "before": before,
                               "mode": host.mode(path),
                               "created_dirs": missing_dirs(host, os.path.dirname(path))})
    if before == content and host.mode(path) == mode:
        return False
    host.write_text(path, content, mode)
    return True


def write_proc(host, key: str, value: str) -> None:
    try:
        with open(host.path(proc_sys_path(key)), "w") as f:
            f.write(value + "\n")
    except OSError as e:
        raise InstallerError(f"cannot set {key}={value}: {e.strerror}") from e


def iptables_rule(port: str) -> list[str]:
    number, protocol = port.split("/")
    return ["INPUT", "-p", protocol, "--dport", number, "-m", "comment", "--comment", COMMENT,
            "-j", "ACCEPT"]


def port_open(host, firewall: str, port: str) -> bool:
    if firewall == "firewalld":
        runtime = host.run(["firewall-cmd", f"--query-port={port}"], check=False).ok
        permanent = host.run(["firewall-cmd", "--permanent", f"--query-port={port}"],
                             check=False).ok
        return runtime and permanent
    if firewall == "ufw":
        added = host.run(["ufw", "show", "added"], check=False).out
        return any(line.split()[:3] == ["ufw", "allow", port] for line in added.splitlines()
                   if line.strip())
    return host.run(["iptables", "-w", "-C", *iptables_rule(port)], check=False).ok


def open_port(host, firewall: str, port: str) -> None:
    if firewall == "firewalld":
        host.run(["firewall-cmd", f"--add-port={port}"])
        host.run(["firewall-cmd", "--permanent", f"--add-port={port}"])
    elif firewall == "ufw":
        host.run(["ufw", "allow", port, "comment", COMMENT])
    else:
        rule = iptables_rule(port)
        host.run(["iptables", "-w", "-I", rule[0], "1", *rule[1:]])


def close_port(host, firewall: str, port: str) -> None:
    if firewall == "firewalld":
        host.run(["firewall-cmd", f"--remove-port={port}"], check=False)
        host.run(["firewall-cmd", "--permanent", f"--remove-port={port}"], check=False)
    elif firewall == "ufw":
        host.run(["ufw", "delete", "allow", port], check=False)
    else:
        while host.run(["iptables", "-w", "-C", *iptables_rule(port)], check=False).ok:
            host.run(["iptables", "-w", "-D", *iptables_rule(port)])


# --- undo ------------------------------------------------------------------------------------

@undoer("file")
def undo_file(host, entry: dict) -> None:
    """The file as it was: its old content and mode, or gone (with the folders made for it)."""
    if entry["before"] is None:
        host.remove(entry["path"])
        host.remove_empty_dirs(entry.get("created_dirs") or [])
    else:
        host.write_text(entry["path"], entry["before"], entry.get("mode") or 0o644)


@undoer("sysctl")
def undo_sysctl(host, entry: dict) -> None:
    """Each value back, unless something else changed it since (then it is theirs)."""
    for key, value in entry["values"].items():
        now = read_sysctl(host, key)
        if now == value["set"] and value["before"] != value["set"]:
            write_proc(host, key, value["before"])


@undoer("selinux")
def undo_selinux(host, entry: dict) -> None:
    if entry.get("enforcing") and (host.read_text(SELINUX_ENFORCE) or "").strip() == "0":
        host.run(["setenforce", "1"])


@undoer("config_value")
def undo_config_value(host, entry: dict) -> None:
    text = host.read_text(entry["path"])
    if text is not None and osprep.config_value(text, entry["key"]) == entry["set"]:
        host.write_text(entry["path"], osprep.set_config_value(text, entry["key"], entry["before"]),
                        host.mode(entry["path"]) or 0o644)


@undoer("ports")
def undo_ports(host, entry: dict) -> None:
    tool = {"firewalld": "firewall-cmd", "ufw": "ufw", "iptables": "iptables"}[entry["firewall"]]
    if not host.which(tool):
        return  # the firewall went away with the engine's packages: nothing left to close
    for port in entry["opened"]:
        close_port(host, entry["firewall"], port)


@undoer("link")
@undoer("portal_link")  # the name of the kind in journals of earlier releases
def undo_link(host, entry: dict) -> None:
    """A symbolic link install made, removed when it still points where install set it."""
    link = host.path(entry["path"])
    if os.path.islink(link) and os.readlink(link) == entry["target"]:
        os.unlink(link)
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("authorized_key")
def undo_authorized_key(host, entry: dict) -> None:
    """Our key's line out; the file and folder gone if we made them and they are empty."""
    path = entry["path"]
    text = host.read_text(path)
    if text is None:
        return
    blob = osprep.key_blob(entry["key"])
    kept = [l for l in text.splitlines() if osprep.key_blob(l) != blob]
    if entry.get("created_file") and not any(l.strip() for l in kept):
        host.remove(path)
        host.remove_empty_dirs(entry.get("created_dirs") or [])
    elif len(kept) != len(text.splitlines()):
        host.write_text(path, "".join(l + "\n" for l in kept), host.mode(path) or 0o600)
