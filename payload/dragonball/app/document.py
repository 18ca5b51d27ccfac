"""YAML read with the line of every path, so each problem can name its line.

The text is composed by `shared.safe_yaml` within `SPEC_LIMITS` (size, depth, values once
aliases are expanded, core tags only: docs/app-spec.md, "Limits"), which keeps each node's
``start_mark``; we build plain Python data from the nodes ourselves and record,
for every path such as ``("services", "web", "backends", 0)``, the line it starts
on. A key written twice in one mapping is a problem here: ``safe_load`` would keep
the last one silently, and a service defined twice is a mistake worth naming.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from dragonball.shared import safe_yaml

#: What one app spec may hold. 256 KiB is some 25 times the largest spec we know of (100
#: services), and is read, checked and planned well within a second; the values bound keeps
#: what aliases expand to near what the bytes themselves could hold.
#: Problems listed at most: past them, checking stops (a file of thousands of mistakes is
#: fixed a hundred at a time, and listing them all costs more than a second).
MAX_PROBLEMS = 100
SPEC_LIMITS = safe_yaml.Limits(max_bytes=256 * 1024, max_depth=32, max_values=100_000,
                               what="an app spec")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (file, line, path), what, and how to fix it."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str

    def to_dict(self) -> dict:
        return {"line": self.line, "path": self.path, "message": self.message,
                "hint": self.hint}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(file)'}: {self.message}\n    hint: {self.hint}"


def dotted(path: tuple) -> str:
    """('services', 'web', 'backends', 0) -> 'services.web.backends[0]'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class Document:
    """The data of one YAML file, the line of each path in it, and problems so far."""

    file: str
    data: object = None
    lines: dict = field(default_factory=dict)  # path tuple -> 1-based line
    problems: list = field(default_factory=list)

    def line(self, path: tuple) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    @property
    def full(self) -> bool:
        """Whether MAX_PROBLEMS are listed: checks stop looking for more."""
        return len(self.problems) >= MAX_PROBLEMS

    def problem(self, path: tuple, message: str, hint: str, line: int | None = None) -> None:
        if self.full:
            return
        self.problems.append(Problem(self.file, line or self.line(path), dotted(path),
                                     message, hint))


def read(text: str | bytes, file: str) -> Document:
    """Parse `text` (the content of `file`: its bytes, or text); what cannot be read as
    bounded, plain YAML (safe_yaml) is the problems, and no data."""
    doc = Document(file)
    composed = safe_yaml.compose(text, SPEC_LIMITS)
    for found in composed.problems:
        doc.problem((), found.message, found.hint, found.line)
    root = composed.root
    if root is not None:
        doc.lines[()] = root.start_mark.line + 1
        doc.data = _build(root, (), doc)
    return doc


def _build(node: yaml.Node, path: tuple, doc: Document) -> object:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc) for i, item in enumerate(node.value)]
    return safe_yaml.scalar(node)


def _mapping(node: yaml.MappingNode, path: tuple, doc: Document) -> dict:
    result: dict = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            doc.problem(path, "a key must be a plain word", "write 'name: value'", line)
            continue
        key = key_node.value  # the text written: 'on:' is the key 'on', not True
        if key in result:
            doc.problem(path + (key,), f"{key!r} is written twice (first on line "
                        f"{doc.lines[path + (key,)]})", "keep one of the two", line)
            continue
        doc.lines[path + (key,)] = line
        result[key] = _build(value_node, path + (key,), doc)
    return result
