"""`collect_answers`: the installer's one call to get valid, confirmed answers.

    from an answers file, unattended   --answers FILE --yes
    from the command line, unattended  --role device --portal P --code-file F
                                       --ca-fingerprint F --yes
    from either, confirmed             (without --yes; needs a terminal)
    asked, then confirmed              (nothing)

Answers on the command line (what `dragonball enroll` prints) complete a file's, or
spare their questions. Without a terminal the wizard never reads stdin (a pipe would
be taken as keystrokes, /dev/null ends in EOFError): it refuses with what to run.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from dragonball.wizard import answers_file, summary
from dragonball.wizard.answers import build_answers
from dragonball.wizard.errors import AnswersInvalid, Declined, NoTerminal, UsageError
from dragonball.wizard.model import Answers, Checks, Facts
from dragonball.wizard.prompts import Prompter, ask_answers
from dragonball.wizard.terminal import Io

log = logging.getLogger(__name__)

#: The installer's options that carry answers (option attribute -> answer). Never the
#: password: a command line is visible to every user of the server (ps).
COMMAND_LINE = {"role": "role", "address": "address", "portal": "portal",
                "ca_fingerprint": "ca_fingerprint", "code": "enrollment_code",
                "data_dir": "data_dir"}
COMMAND_LINE_SOURCE = "the command line"


@dataclasses.dataclass(frozen=True)
class Options:
    """The installer options the wizard reads (an argparse Namespace does as well)."""

    answers: str | None = None
    yes: bool = False
    role: str | None = None
    address: str | None = None
    portal: str | None = None
    ca_fingerprint: str | None = None
    code: str | None = None
    code_file: str | None = None
    data_dir: str | None = None


def command_line_answers(options) -> dict:
    """{answer: text} of the answers given as options (absent ones left out); the code
    read from --code-file FILE when given."""
    found = {field: getattr(options, option, None) for option, field in COMMAND_LINE.items()}
    path = getattr(options, "code_file", None)
    if path:
        found["enrollment_code"] = read_code_file(path)
    return {field: str(value) for field, value in found.items() if value is not None}


def read_code_file(path: str) -> str:
    """The enrollment code a file holds (its first line); UsageError saying why not."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--code-file: cannot read {path}: "
                         f"{getattr(e, 'strerror', None) or e}",
                         "give the file the code was saved in (the code alone)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise UsageError(f"--code-file: {path} holds no code",
                         "put the code 'dragonball enroll' printed in it")
    return lines[0]


def collect_answers(options, facts: Facts, io: Io | None = None,
                    checks: Checks = Checks()) -> Answers:
    """Valid answers the person confirmed (or --yes did), or a WizardError.

    Raises AnswersInvalid (every problem), NoTerminal, UsageError, Declined (each with the
    exit status of its category) or Cancelled (a KeyboardInterrupt: 130). Nothing is
    changed on this server.
    """
    io = io or Io()
    path, yes = getattr(options, "answers", None), bool(getattr(options, "yes", False))
    given = command_line_answers(options)
    if yes and not path and not given:
        raise UsageError("--yes answers the confirmation only: the questions need "
                         "--answers FILE", f"run: {io.install_command()} --answers FILE --yes "
                         "(docs/answers.md; examples in wizard/)")
    answers = None
    if path or yes:
        answers = _unattended(path, given, facts, checks)
    if not yes and not io.is_terminal():
        raise NoTerminal(*_no_terminal(io, path, given, answers))
    prompter = Prompter(io, facts, checks, given)
    if answers is None:
        answers = ask_answers(prompter)
    io.console().print(summary.table(answers, facts))
    if yes:
        log.info("answers from %s accepted by --yes", path or COMMAND_LINE_SOURCE)
        return answers
    if not prompter.confirm("Install DragonBall with these answers?"):
        raise Declined("not confirmed: nothing was changed",
                       "run the installer again to give other answers")
    return answers


def _unattended(path, given: dict, facts: Facts, checks: Checks) -> Answers:
    """Every answer from the file and/or the command line: nothing asked."""
    if path:
        return answers_file.load(path, facts, checks, given)
    answers, problems = build_answers(given, facts, checks)
    if problems:
        raise AnswersInvalid(COMMAND_LINE_SOURCE, problems,
                             "fix each one on the command line (docs/answers.md)")
    return answers


def _no_terminal(io: Io, path, given: dict, answers) -> tuple[str, str]:
    """(message, hint) when a terminal is needed and missing."""
    reason = io.not_terminal_reason()
    if answers is not None:
        again = ("run the same command with --yes added" if given else
                 f"run: {io.install_command()} --answers {os.path.abspath(path)} --yes")
        return (f"the answers in {path} are valid, but {reason} to confirm them on",
                f"to install without confirmation, {again}")
    if given:
        return (f"cannot ask the remaining questions: {reason}",
                "add --yes to install with the command line's answers alone (every answer "
                "the role needs, docs/answers.md), or give --answers FILE --yes")
    return (f"cannot ask the install questions: {reason}",
            "write an answers file (docs/answers.md; examples in wizard/) and run: "
            f"{io.install_command()} --answers FILE --yes")
