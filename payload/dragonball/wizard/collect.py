"""`collect_answers`: the installer's one call to get valid, confirmed answers.

    from an answers file, unattended   --answers FILE --yes
    from an answers file, confirmed    --answers FILE          (needs a terminal)
    asked, then confirmed              (nothing)               (needs a terminal)

Without a terminal the wizard never reads stdin (a pipe would be taken as keystrokes,
/dev/null ends in EOFError): it refuses with the exact command to run instead.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from dragonball.wizard import answers_file, summary
from dragonball.wizard.errors import Declined, NoTerminal, UsageError
from dragonball.wizard.model import Answers, Checks, Facts
from dragonball.wizard.prompts import Prompter, ask_answers
from dragonball.wizard.terminal import Io

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
    """The installer options the wizard reads (an argparse Namespace does as well)."""

    answers: str | None = None
    yes: bool = False


def collect_answers(options, facts: Facts, io: Io | None = None,
                    checks: Checks = Checks()) -> Answers:
    """Valid answers the person confirmed (or --yes did), or a WizardError.

    Raises AnswersInvalid (every problem of the file), NoTerminal, UsageError, Declined
    or Cancelled; each has an `exit_status`. Nothing is changed on this server.
    """
    io = io or Io()
    path, yes = getattr(options, "answers", None), bool(getattr(options, "yes", False))
    if yes and not path:
        raise UsageError("--yes answers the confirmation only: the questions need "
                         "--answers FILE", f"run: {io.install_command()} --answers FILE --yes "
                         "(docs/answers.md; examples in wizard/)")
    if path:
        answers = answers_file.load(path, facts, checks)
        if not yes and not io.is_terminal():
            raise NoTerminal(f"the answers in {path} are valid, but {io.not_terminal_reason()}"
                             " to confirm them on", "to install without confirmation, run: "
                             f"{io.install_command()} --answers {os.path.abspath(path)} --yes")
    elif not io.is_terminal():
        raise NoTerminal(f"cannot ask the install questions: {io.not_terminal_reason()}",
                         "write an answers file (docs/answers.md; examples in wizard/) and "
                         f"run: {io.install_command()} --answers FILE --yes")
    prompter = Prompter(io, facts, checks)
    if not path:
        answers = ask_answers(prompter)
    io.console().print(summary.table(answers, facts))
    if yes:
        log.info("answers from %s accepted by --yes", path)
        return answers
    if not prompter.confirm("Install DragonBall with these answers?"):
        raise Declined("not confirmed: nothing was changed",
                       "run the installer again to give other answers")
    return answers
