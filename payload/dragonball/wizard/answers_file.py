"""The answers file (docs/answers.md): YAML read with its line numbers, checked whole.

Values are read as the text written (``admin_password: 123456789012`` is that text,
not a number); ``~``, ``null`` or nothing is "not given". The file is composed by
`shared.safe_yaml` within `ANSWERS_LIMITS` (size, control characters, depth, aliases, core
tags only), as an app spec is. Everything wrong is
collected before anything is refused: syntax, unknown or repeated keys (with a
"did you mean"), values that are lists (but `portal`'s: a list of managers, or a
comma list), file modes, the password file, then every
answer's own rules (`answers.build_answers`).
"""

from __future__ import annotations

import dataclasses
import os
import stat

import yaml

from dragonball.shared import safe_yaml
from dragonball.wizard import validators
from dragonball.wizard.answers import FIELDS, build_answers, file_order
from dragonball.wizard.errors import AnswersInvalid
from dragonball.wizard.model import Answers, Checks, Facts, Problem

PASSWORD_FILE = "admin_password_file"
KEYS = FIELDS + (PASSWORD_FILE,)
FILE = "(file)"  # the field of a problem with the file as a whole
#: Answers that may be a YAML list as well as one value ("a, b" or "- a / - b").
LISTS = ("portal", "firewall_allow")
_NULL = "tag:yaml.org,2002:null"
#: What one answers file may hold: a dozen 'key: value' lines need a few hundred bytes; 64
#: KiB leaves room for comments and stays instant to read (docs/answers.md, "Limits").
ANSWERS_LIMITS = safe_yaml.Limits(max_bytes=64 * 1024, max_depth=8, max_values=10_000,
                                  what="an answers file")


@dataclasses.dataclass
class _Read:
    """What reading the file gave: text values, their lines, and problems so far."""

    raw: dict = dataclasses.field(default_factory=dict)
    lines: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    unreadable: set = dataclasses.field(default_factory=set)  # answers reported already
    whole: bool = True  # False: the file itself could not be read as answers

    def problem(self, field: str, message: str, line: int | None = None,
                unreadable: bool = True) -> None:
        """Record a problem; `unreadable`: the answer's value could not be taken at all."""
        self.problems.append(Problem(field, message, line))
        if field == FILE:
            self.whole = False
        elif unreadable:
            self.unreadable.add(field)


def load(path: str, facts: Facts, checks: Checks = Checks(), given: dict | None = None) -> Answers:
    """The answers in `path`, or AnswersInvalid listing every problem."""
    answers, problems = check(path, facts, checks, given)
    if problems:
        raise AnswersInvalid(path, problems)
    return answers


def check(path: str, facts: Facts, checks: Checks = Checks(),
          given: dict | None = None) -> tuple[Answers | None, list]:
    """(Answers, []) or (None, every problem of the file at `path`).

    `given`: answers from the command line, which complete the file's (an answer in
    both is a problem: which one was meant cannot be guessed).
    """
    read = _Read()
    text, mode = _read_text(path, read)
    if text is not None:
        _parse(text, read)
    if not read.whole:
        return None, read.problems  # the answers' own rules would only add noise
    _add_command_line(given or {}, read)
    if read.raw.get("admin_password") is not None:
        _check_private(path, mode, "admin_password", read)
    if PASSWORD_FILE in read.raw:
        _read_password_file(path, read)
    from_file = PASSWORD_FILE in read.lines and "admin_password" in read.raw
    if PASSWORD_FILE in read.unreadable:
        read.unreadable.add("admin_password")
    answers, problems = build_answers(read.raw, facts, checks, read.lines, read.unreadable)
    if from_file:
        problems = [_from_password_file(p) for p in problems]
    problems = sorted(read.problems + problems, key=file_order)
    return (answers, []) if not problems else (None, problems)


def _read_text(path: str, read: _Read) -> tuple[str | None, int]:
    """The file's text, read no further than the size limit, and its mode."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(ANSWERS_LIMITS.max_bytes + 1)
    except OSError as e:
        read.problem(FILE, f"cannot read {path}: {e.strerror}; give the path of an answers "
                           "file (examples: wizard/portal.yaml, wizard/device.yaml)")
        return None, 0
    text, problems = safe_yaml.text_of(data, ANSWERS_LIMITS)
    for found in problems:
        read.problem(FILE, f"{found.message}: {found.hint}", found.line)
    return text, mode


def _parse(text: str, read: _Read) -> None:
    composed = safe_yaml.compose(text, ANSWERS_LIMITS)
    for found in composed.problems:
        hint = found.hint
        if found.message.startswith("is not valid YAML"):
            hint = "write one 'key: value' per line; quote values with # : * & or leading spaces"
        read.problem(FILE, f"{found.message}: {hint}", found.line)
    root = composed.root
    if composed.problems:
        return
    if root is None:
        read.problem(FILE, "is empty: start from wizard/portal.yaml or wizard/device.yaml")
    elif not isinstance(root, yaml.MappingNode):
        read.problem(FILE, "must be a mapping of 'key: value' lines, like wizard/portal.yaml",
                     root.start_mark.line + 1)
    else:
        for key, value in root.value:
            _entry(key, value, read)


def _entry(key: yaml.Node, value: yaml.Node, read: _Read) -> None:
    line = key.start_mark.line + 1
    name = key.value if isinstance(key, yaml.ScalarNode) else None
    if name not in KEYS:
        _unknown(str(name) if name is not None else "this key", line, read)
    elif name in read.lines:
        read.problem(name, f"is given twice (first on line {read.lines[name]}): keep one", line)
    elif name in LISTS and isinstance(value, yaml.SequenceNode):
        read.lines[name] = line
        items = [v.value for v in value.value if isinstance(v, yaml.ScalarNode)]
        if len(items) != len(value.value):
            read.problem(name, "takes a list of addresses, one per item: '- 10.0.0.1'", line)
        else:
            read.raw[name] = ",".join(items)  # validated as the comma list it equals
    elif not isinstance(value, yaml.ScalarNode):
        read.lines[name] = line
        read.problem(name, "takes one value, not a list or a mapping: write "
                           f"'{name}: VALUE' on one line", line)
    else:
        read.lines[name] = line
        read.raw[name] = None if value.tag == _NULL else value.value


def _add_command_line(given: dict, read: _Read) -> None:
    for field, value in given.items():
        if value is None or read.raw.get(field) == value:
            continue
        if field in read.lines:
            read.problem(field, f"given on the command line too ({value}): keep one of the two",
                         read.lines[field], unreadable=False)
        else:
            read.raw[field] = value


def _unknown(name: str, line: int, read: _Read) -> None:
    meant = validators.closest(name, KEYS)
    if meant is None:
        read.problem(name, f"{name!r} is not an answer: the answers are {', '.join(KEYS)}", line)
        return
    read.problem(name, f"{name!r} is not an answer: did you mean {meant!r}?", line)
    if meant not in read.lines:
        read.unreadable.add(meant)  # its "missing" would say the same thing again


def _check_private(path: str, mode: int, field: str, read: _Read) -> None:
    if mode & 0o077:
        read.problem(field, f"{path} holds a password yet others can read it (mode "
                            f"{stat.S_IMODE(mode):04o}): run chmod 600 {path}",
                     read.lines.get(field), unreadable=False)


def _read_password_file(answers_path: str, read: _Read) -> None:
    named = read.raw.pop(PASSWORD_FILE)
    line = read.lines[PASSWORD_FILE]
    if "admin_password" in read.raw:
        read.problem(PASSWORD_FILE, "admin_password is given too: keep one of the two", line)
        return
    if named is None:
        return
    path = os.path.join(os.path.dirname(os.path.abspath(answers_path)), named)
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            first = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "it is not UTF-8 text"
        read.problem(PASSWORD_FILE, f"cannot read {path}: {reason}; give the path of a file "
                                    "holding the password on its first line", line)
        return
    if mode & 0o077:
        read.problem(PASSWORD_FILE, f"others can read the password in {path} (mode "
                                    f"{stat.S_IMODE(mode):04o}): run chmod 600 {path}", line,
                     unreadable=False)
    if not first:
        read.problem(PASSWORD_FILE, f"{path} is empty: put the password on its first line",
                     line)
        return
    read.raw["admin_password"] = first
    read.lines["admin_password"] = line


def _from_password_file(problem: Problem) -> Problem:
    """A problem of the password read from admin_password_file names that key."""
    if problem.field != "admin_password":
        return problem
    return dataclasses.replace(problem, field=PASSWORD_FILE,
                               message=f"the password in that file: {problem.message}")
