"""Where the values of `dragonball params set` come from (issue 15: a secret typed on the
command line is in the process list and the shell's history):

    KEY=VALUE      the text as it is
    KEY=@PATH      the whole file PATH (UTF-8; one trailing newline dropped)
    KEY=@@TEXT     the literal text @TEXT: a value that begins with @ doubles it
    KEY=-          standard input until its end (one trailing newline dropped); on a
                   terminal, one line typed without echo
    --stdin KEY, --from-file KEY=FILE   the same, as options

Standard input gives one value per command (`KEY=-` or `--stdin KEY`, once); a literal
`-` is given from a file or through stdin. Each value is at most `LIMIT` (the parser's own:
params.MAX_TEXT, 64 KiB). A file that cannot be read, or one too large, is an error naming
the key and the path, before anything is sent.

Resolved here, on the machine the command runs on, before the one KEY=VALUE parser
(params.assignments): the API and the Services page take a value as the text it is (a
form's `@/etc/shadow` never reads the portal's file). A value read here is never printed:
problems name its key and where it came from (`Given.source`), and the parser is told not
to quote it.
"""

from __future__ import annotations

import dataclasses
import getpass
import sys

from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator.params import ParamsInvalid

LIMIT = params_mod.MAX_TEXT
STDIN = "standard input"
HINT = ("KEY=@PATH reads a file, KEY=- standard input, KEY=@@TEXT is the literal @TEXT "
        "(dragonball params set --help)")


@dataclasses.dataclass(frozen=True)
class Given:
    """One value given: its key, its text, and where it was read from ("" when it was
    typed on the command line, STDIN, or a file's path). An argument that is no KEY=VALUE
    has no key; its text is the argument, for the parser to say so."""

    key: str
    text: str
    source: str = ""

    def assignment(self) -> str:
        """The KEY=VALUE text the parser takes."""
        return f"{self.key}={self.text}" if self.key else self.text


class Sources:
    """Reads the values that are not typed on the command line; stdin once per command.
    `stdin` and `ask_hidden` (a prompt that does not echo) are injected for tests."""

    def __init__(self, stdin=None, ask_hidden=None) -> None:
        self.stdin = stdin or sys.stdin
        self.ask_hidden = ask_hidden or getpass.getpass
        self.stdin_key: str | None = None

    def from_stdin(self, key: str) -> Given:
        if self.stdin_key is not None:
            raise ParamsInvalid(f"standard input gives one value per command: {self.stdin_key} "
                                f"and {key} both ask for it",
                                "read the others from files: KEY=@PATH")
        self.stdin_key = key
        if self.stdin.isatty():
            text = self.ask_hidden(f"{key} (not shown): ")
        else:
            text = self.stdin.read(LIMIT + 2)
        return _checked(Given(key, _chomp(text), STDIN))

    def from_file(self, key: str, path: str) -> Given:
        if not path:
            raise ParamsInvalid(f"{key}=@ names no file", "give KEY=@PATH; " + HINT)
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read(LIMIT + 2)   # + a CRLF, dropped
        except (OSError, UnicodeDecodeError) as e:
            raise ParamsInvalid(f"{key}: cannot read the file {path}: "
                                f"{getattr(e, 'strerror', None) or e}; nothing was set",
                                "give a readable UTF-8 text file; " + HINT) from None
        return _checked(Given(key, _chomp(text), path))


def resolve(assignments: list[str], stdin_key: str | None = None, from_files=(),
            sources: Sources | None = None) -> list[Given]:
    """Every value given, read: the KEY=VALUE arguments (`@PATH`, `@@`, `-` resolved), then
    `--stdin KEY`, then each `--from-file KEY=FILE`. ParamsInvalid for a file that cannot be
    read, a value over LIMIT, stdin asked for twice. An argument that is no KEY=VALUE is
    left as it is, for the parser to list with the other problems."""
    sources = sources or Sources()
    found = [_argument(item, sources) for item in assignments]
    if stdin_key:
        found.append(sources.from_stdin(stdin_key.strip()))
    for item in from_files:
        key, sep, path = item.partition("=")
        if not sep or not key.strip() or not path:
            raise ParamsInvalid(f"--from-file {item!r}: give KEY=FILE",
                                "e.g. --from-file password=/root/db.secret")
        found.append(sources.from_file(key.strip(), path))
    return found


def _argument(item: str, sources: Sources) -> Given:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        return Given("", item)
    if text == "-":
        return sources.from_stdin(key)
    if text.startswith("@@"):
        return Given(key, text[1:])
    if text.startswith("@"):
        return sources.from_file(key, text[1:])
    return Given(key, text)


def _chomp(text: str) -> str:
    """`text` without one trailing newline (\\n or \\r\\n)."""
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _checked(given: Given) -> Given:
    if len(given.text) > LIMIT:
        raise ParamsInvalid(f"{given.key}: the value from {given.source} is over "
                            f"{LIMIT // 1024} KiB; nothing was set",
                            "a parameter is a setting, not a payload: give a shorter value")
    return given
