"""Check a module folder against the module spec and describe what it holds."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from dragonball.errors import ModuleError
from dragonball.module.timeouts import TimeoutPolicy, parse_policy

EVENTS = ("config_change", "info", "start", "status", "stop")
TOP_LEVEL = ("action", "log", "module", "storage", "module.json")
MANIFEST = "module.json"
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
SCRIPT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Entry:
    """What the spec needs to know of one path: its kind, x bit, first bytes."""

    kind: str  # "file", "dir" or "other"
    executable: bool = False
    head: bytes = b""


@dataclass(frozen=True)
class Listing:
    """A module folder as read from disk: paths relative to `root`."""

    root: str
    entries: dict  # relative path -> Entry (top level, action/, action/<event>/)
    manifest: str | None = None  # module.json text


@dataclass(frozen=True)
class Problem:
    """One way a module breaks the spec: where, what, and how to fix it."""

    path: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.hint})"


@dataclass(frozen=True)
class Module:
    """A valid module: its scripts per event in run order, and their timeouts."""

    name: str
    root: str
    scripts: dict = field(default_factory=dict)  # event -> tuple of names, ASCII order
    timeouts: TimeoutPolicy = field(default_factory=TimeoutPolicy)

    def script_path(self, event: str, script: str) -> str:
        return os.path.join(self.root, "action", event, script)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)


def _entry(path: str) -> Entry:
    st = os.stat(path)  # follows links: a linked script is judged by its target
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir")
    if not stat.S_ISREG(st.st_mode):
        return Entry("other")
    with open(path, "rb") as f:
        head = f.read(4)
    return Entry("file", bool(st.st_mode & 0o111), head)


def scan(root: str) -> Listing:
    """Read what the spec checks from the folder `root` (the only disk access)."""
    root = os.path.abspath(root)
    entries = {}

    def walk(rel: str) -> None:
        for name in sorted(os.listdir(os.path.join(root, rel))):
            path = os.path.join(rel, name) if rel else name
            try:
                entries[path] = _entry(os.path.join(root, path))
            except OSError:  # a dangling link, or unreadable
                entries[path] = Entry("other")
            if entries[path].kind == "dir" and path.count(os.sep) < 2 and (
                    path == "action" or path.startswith("action" + os.sep)):
                walk(path)

    if os.path.isdir(root):
        walk("")
    manifest = None
    if entries.get(MANIFEST, Entry("dir")).kind == "file":
        with open(os.path.join(root, MANIFEST), encoding="utf-8", errors="replace") as f:
            manifest = f.read()
    return Listing(root, entries, manifest)


def validate(listing: Listing) -> tuple[Module | None, list[Problem]]:
    """Every problem of `listing` at once; the Module when there are none."""
    name = os.path.basename(listing.root.rstrip(os.sep))
    if not listing.entries and not os.path.isdir(listing.root):
        return None, [Problem(listing.root, "is not a folder",
                              "give the path of the module folder (the one holding action/)")]
    problems = _name_problems(name) + _top_level_problems(listing)
    scripts = {}
    for event in EVENTS:
        found, more = _event_scripts(listing, event)
        scripts[event] = found
        problems += more
    policy, manifest_problems = parse_policy(listing.manifest, scripts)
    problems += [Problem(f"{MANIFEST}:{key}" if key else MANIFEST, message,
                         "see 'Timeouts' in docs/module-spec.md")
                 for key, message in manifest_problems]
    if problems:
        return None, problems
    return Module(name, listing.root, scripts, policy), []


def _name_problems(name: str) -> list[Problem]:
    if NAME_RE.match(name):
        return []
    return [Problem(name, "is not a valid module name",
                    "rename the folder: a lower-case letter, then up to 62 of a-z 0-9 _ -")]


def _top_level_problems(listing: Listing) -> list[Problem]:
    problems = []
    for path, entry in listing.entries.items():
        if os.sep in path or path.startswith("."):
            continue
        if path not in TOP_LEVEL:
            problems.append(Problem(path, "is not part of the module spec",
                                    "keep only action/ log/ module/ storage/ module.json; "
                                    "put the module's own files in module/"))
        elif (entry.kind == "file") != (path == MANIFEST):
            want = "a file" if path == MANIFEST else "a folder"
            problems.append(Problem(path, f"must be {want}", f"replace it with {want}"))
    if listing.entries.get("action", Entry("file")).kind != "dir":
        return problems + [Problem("action/", "is missing",
                                   "create action/ with config_change/ info/ start/ status/ stop/")]
    for path in listing.entries:
        parts = path.split(os.sep)
        if len(parts) == 2 and parts[0] == "action" and not parts[1].startswith("."):
            if parts[1] not in EVENTS:
                problems.append(Problem(path + "/", "is not an event folder",
                                        f"events are {', '.join(EVENTS)}; rename or remove it"))
    return problems


def _event_scripts(listing: Listing, event: str) -> tuple[tuple, list[Problem]]:
    folder = os.path.join("action", event)
    if "action" not in listing.entries:
        return (), []  # reported once as "action/ is missing"
    if listing.entries.get(folder, Entry("file")).kind != "dir":
        return (), [Problem(folder + "/", "is missing",
                            "create it; it may stay empty (add a .gitkeep so git keeps it)")]
    names, problems = [], []
    prefix = folder + os.sep
    for path, entry in listing.entries.items():
        script = path[len(prefix):]
        if not path.startswith(prefix) or script.startswith("."):
            continue
        problems += _script_problems(path, script, entry)
        names.append(script)
    # ASCII (byte) order, whatever the locale: the spec promises it
    return tuple(sorted(names, key=lambda n: n.encode())), problems


def _script_problems(path: str, script: str, entry: Entry) -> list[Problem]:
    if not SCRIPT_RE.match(script):
        return [Problem(path, "is not a valid script name",
                        "use only A-Z a-z 0-9 . _ - and start with a letter or digit")]
    if entry.kind != "file":
        return [Problem(path, "is not a regular file",
                        "an event folder holds only scripts; move it under module/")]
    if not entry.executable:
        return [Problem(path, "is not executable", f"chmod +x {path}")]
    if not entry.head.startswith((b"#!", ELF_MAGIC)):
        return [Problem(path, "has no '#!' line, so it cannot be run",
                        "start it with a line like #!/bin/sh")]
    return []


def load_module(root: str) -> Module:
    """The valid module at `root`, or ModuleError listing every problem."""
    module, problems = validate(scan(root))
    if problems:
        raise ModuleError(root, problems)
    return module
