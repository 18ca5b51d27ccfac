"""YAML from people we do not trust: bounded, and every refusal with its line.

An app spec and an answers file come from a person, a script or the REST API, maybe an
attacker's. PyYAML alone answers some inputs with a traceback, minutes of work or gigabytes:
aliases expand without bound (a few hundred bytes of "billion laughs" grow past 1.5 GB),
the pure-Python parser takes minutes on 50 MB, deep nesting ends in RecursionError, a custom
tag (``!Ref``) or a core tag with a bad value (``!!int "three"``, a date that does not
exist) raises from the constructor, and a NUL byte is reported by position, not by line.

`compose` reads in this order, each step refusing before the next can cost anything:
1. the size, before decoding or parsing (`Limits.max_bytes`);
2. UTF-8, a wrong byte named by its offset and line;
3. characters YAML cannot hold (NUL and the other control characters), by line and column;
4. libyaml's events (C, fast), composed here without recursion into PyYAML's nodes, counting
   depth (`max_depth`) and the values the aliases would expand to (`max_values`: an alias
   counts as everything it names, so a bomb is refused while it is still a few hundred
   bytes, and an alias inside what it names, a loop, is refused too);
5. tags: only YAML's core ones (str, int, float, bool, null, seq, map) are understood, and
   each scalar is constructed once here, so a bad value is a problem with a line.

The answer is the root node (PyYAML's own `ScalarNode`, `SequenceNode`, `MappingNode`, with
their marks) or problems (`dragonball.errors.Problem`, without a file: the caller names it
and wraps them in its own InvalidInput). `scalar(node)` gives a scalar's value; it cannot
fail on a node `compose` returned.
"""

from __future__ import annotations

import dataclasses
import re

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dragonball.errors import Problem

_CORE = "tag:yaml.org,2002:"
STR, NULL = _CORE + "str", _CORE + "null"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_IMPLICIT_TEXT = {_CORE + "merge", _CORE + "value"}  # '<<' and '=': read as their text
_TIMESTAMP = _CORE + "timestamp"  # only as resolved from a plain date, never written
_CONSTRUCT = SafeConstructor()
#: What YAML cannot hold (its printable set, inverted): C0 controls but tab and line
#: breaks, DEL, C1 controls but NEL, surrogates, U+FFFE and U+FFFF.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
PLAIN_HINT = ("write plain YAML: mappings, lists, quoted or plain strings, numbers, "
              "true/false")
_SHOWN = 5  # control characters named one by one; the rest are counted


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much one input may hold (docs/security.md, "Hostile input")."""

    max_bytes: int
    max_depth: int = 32          # mappings and lists within each other
    max_values: int = 100_000    # values once every alias is expanded
    what: str = "this file"      # how problems name the input: "an app spec"


@dataclasses.dataclass
class Composed:
    """The root node (None: empty, or refused) and every problem found."""

    root: Node | None = None
    problems: list = dataclasses.field(default_factory=list)


class _Refused(Exception):
    """Stops composing: a limit is reached, the problem already recorded."""


def compose(data: str | bytes, limits: Limits) -> Composed:
    """The one document in `data` (the file's bytes, or text from the API), or problems."""
    found = Composed()
    text, found.problems = text_of(data, limits)
    if text is None or _unprintable(text, found.problems):
        return found
    try:
        found.root = _Composer(text, limits, found.problems).document()
    except _Refused:
        found.root = None
    except yaml.YAMLError as e:
        found.problems.append(_syntax(e))
    if found.problems:
        found.root = None
    return found


def scalar(node: ScalarNode) -> object:
    """The value of a scalar `compose` returned (str, int, float, bool, None, a date)."""
    return _CONSTRUCT.yaml_constructors[node.tag](_CONSTRUCT, node)


def read_file(path: str, limits: Limits) -> tuple[bytes | None, list]:
    """(at most max_bytes + 1 bytes of the file, []), or (None, [why it cannot be read]):
    a 50 MB file is refused after reading a little more than the limit, not all of it."""
    try:
        with open(path, "rb") as f:
            return f.read(limits.max_bytes + 1), []
    except OSError as e:
        return None, [Problem(f"cannot read it: {e.strerror or e}", "give the path of a "
                              "readable file")]


# --- before parsing ------------------------------------------------------------------------

def text_of(data: str | bytes, limits: Limits) -> tuple[str | None, list]:
    """(the text, []) when `data` is within the size limit and UTF-8; else (None, why)."""
    problems: list = []
    return _text(data, limits, problems), problems


def _text(data: str | bytes, limits: Limits, problems: list) -> str | None:
    size = len(data) if isinstance(data, bytes) else (
        len(data) if len(data) > limits.max_bytes else len(data.encode("utf-8", "surrogatepass")))
    if size > limits.max_bytes:
        problems.append(Problem(f"{limits.what} may hold at most {_size(limits.max_bytes)} "
                                "and this one holds more",
                                "split it, or remove what it does not need"))
        return None
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        problems.append(Problem(f"is not UTF-8: byte {e.start} (line {line}) is "
                                f"0x{data[e.start]:02x}", "save the file as UTF-8",
                                line=line))
        return None


def _size(count: int) -> str:
    return f"{count // 1024} KiB" if count < 1 << 20 else f"{count / (1 << 20):g} MiB"


def _unprintable(text: str, problems: list) -> bool:
    found = 0
    for match in _UNPRINTABLE.finditer(text):
        found += 1
        if found <= _SHOWN:
            line, column = _place(text, match.start())
            problems.append(Problem(
                f"column {column} holds {_named(match.group())}, which YAML cannot hold",
                "remove it (a file saved by a word processor, or binary data?)", line=line))
    if found > _SHOWN:
        problems.append(Problem(f"and {found - _SHOWN} more such characters", "remove them"))
    return found > 0


def _place(text: str, index: int) -> tuple[int, int]:
    """(line, column), both from 1, of `text[index]`."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _named(char: str) -> str:
    return "a NUL byte (\\0)" if char == "\0" else f"the character U+{ord(char):04X}"


def _syntax(error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" (column {mark.column + 1})" if mark else ""
    return Problem(f"is not valid YAML: {what}{where}",
                   "check the indentation and quote values holding ': ' or '#'",
                   line=mark.line + 1 if mark else None)


# --- composing ---------------------------------------------------------------------------

class _Composer:
    """libyaml's events into nodes, with an explicit stack (no recursion) and the limits."""

    def __init__(self, text: str, limits: Limits, problems: list) -> None:
        self.parser = yaml.CSafeLoader(text) if yaml.__with_libyaml__ else yaml.SafeLoader(text)
        self.resolver = yaml.resolver.Resolver()
        self.limits, self.problems = limits, problems
        self.anchors: dict = {}   # anchor -> [node, values it expands to; None while open]
        self.values = 0           # values so far, aliases expanded
        self.aliases = 0          # aliases so far

    def document(self) -> Node | None:
        parser = self.parser
        try:
            parser.get_event()  # StreamStart
            if parser.check_event(yaml.StreamEndEvent):
                return None
            parser.get_event()  # DocumentStart
            root = self._nodes()
            parser.get_event()  # DocumentEnd
            if not parser.check_event(yaml.StreamEndEvent):
                event = parser.get_event()
                self._refuse(event, f"{self.limits.what} must hold one YAML document; another "
                             "starts here", "remove the second '---' and what follows it")
            return root
        finally:
            parser.dispose()

    def _nodes(self) -> Node:
        """The node of the next events: collections are built on a stack."""
        stack: list = []  # [node, values at its start, pending key or None, its anchor]
        while True:
            event = self.parser.get_event()
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, start, _, anchor = stack.pop()
                node.end_mark = event.end_mark
                if anchor is not None:
                    self.anchors[anchor][1] = self.values - start
                done = node
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append(self._open(event, len(stack)))
                continue
            else:
                done = self._leaf(event)
            if not stack:
                return done
            self._attach(stack[-1], done)

    def _open(self, event, depth: int) -> list:
        if depth >= self.limits.max_depth:
            self._refuse(event, f"nests more than {self.limits.max_depth} mappings and lists "
                         "within each other", "flatten it: no DragonBall input nests so deep")
        mapping = isinstance(event, yaml.MappingStartEvent)
        kind, wanted = (MappingNode, _CORE + "map") if mapping else (SequenceNode, _CORE + "seq")
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(kind, None, event.implicit)
        elif tag != wanted:
            self._bad_tag(event, tag, "a mapping" if mapping else "a list")
            tag = wanted
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self._count(event, 1)
        if event.anchor is not None:
            self.anchors[event.anchor] = [node, None]
        return [node, self.values - 1, None, event.anchor]

    def _leaf(self, event) -> Node:
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event)
        if not isinstance(event, yaml.ScalarEvent):  # libyaml's order is known: defensive
            self._refuse(event, "is not valid YAML here", PLAIN_HINT)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(ScalarNode, event.value, event.implicit)
            tag = STR if tag in _IMPLICIT_TEXT else tag
        elif tag not in _SCALAR_TAGS:
            self._bad_tag(event, tag, "a value")
            tag = STR
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if tag not in (STR, NULL):  # text is always itself; the others may not construct
            self._check_value(event, node)
        self._count(event, 1)
        if event.anchor is not None:
            self.anchors[event.anchor] = [node, 1]
        return node

    def _alias(self, event) -> Node:
        known = self.anchors.get(event.anchor)
        if known is None:
            self._refuse(event, f"is not valid YAML: the alias *{event.anchor} names no "
                         f"anchor (&{event.anchor}) written before it",
                         f"define the anchor first, or quote the value: '*{event.anchor}'")
        if known[1] is None:
            self._refuse(event, f"the alias *{event.anchor} is inside what it names: it "
                         "would never end", "write the value itself")
        self.aliases += 1
        self._count(event, known[1])
        return known[0]

    def _attach(self, top: list, node: Node) -> None:
        parent = top[0]
        if isinstance(parent, SequenceNode):
            parent.value.append(node)
        elif top[2] is None:
            top[2] = node
        else:
            parent.value.append((top[2], node))
            top[2] = None

    def _count(self, event, values: int) -> None:
        self.values += values
        if self.values <= self.limits.max_values:
            return
        if self.aliases:
            self._refuse(event, f"{self.limits.what} holds more than "
                         f"{self.limits.max_values} values once its aliases (*name) are "
                         "expanded", "write fewer aliases, or each value once: an alias "
                         "repeats all it names")
        self._refuse(event, f"{self.limits.what} holds more than {self.limits.max_values} "
                     "values", "split it, or remove what it does not need")

    def _check_value(self, event, node: ScalarNode) -> None:
        try:
            scalar(node)
        except Exception as e:  # each constructor fails its own way: ValueError, KeyError...
            kind = node.tag[len(_CORE):]
            written = "written " if event.tag not in (None, "!") else "read "
            self._problem(event, f"{event.value[:40]!r} is {written}as {_article(kind)} "
                          f"(!!{kind}) but is not one",
                          "quote it to keep it text, or correct the value")
            node.tag = STR

    def _bad_tag(self, event, tag: str, what: str) -> None:
        shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
        self._problem(event, f"the tag {shown} on {what} is not understood here",
                      f"remove it: {PLAIN_HINT}")

    def _problem(self, event, message: str, hint: str) -> None:
        self.problems.append(Problem(message, hint, line=event.start_mark.line + 1))
        if len(self.problems) >= 20:
            self._refuse(event, "and more problems like these: reading stopped here",
                         "fix the ones above first")

    def _refuse(self, event, message: str, hint: str) -> None:
        self.problems.append(Problem(message, hint, line=event.start_mark.line + 1))
        raise _Refused()


def _article(kind: str) -> str:
    return {"int": "an int", "timestamp": "a date"}.get(kind, f"a {kind}")
