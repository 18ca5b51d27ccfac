"""`python -m dragonball.wizard [--answers FILE] [--yes]`: ask (or read) the install answers
on this server, confirm them, and print them as YAML with the password masked.
Changes nothing: it is the installer's first phase alone, for trying the questions. It ends
as `dragonball install` would before any change: the error's category's exit status, 130 on
Ctrl-C (it sits below dragonball.cli, so it says so itself)."""

from __future__ import annotations

import argparse
import os
import sys

from rich.markup import escape

from dragonball.console import console, err_console
from dragonball.errors import ExitStatus
from dragonball.wizard import collect_answers, host, summary
from dragonball.wizard.errors import AnswersInvalid, WizardError
from dragonball.wizard.options import add_answer_options, problem_table


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dragonball.wizard",
        description="Ask (or read) the install answers on this server, confirm them, and "
                    "print them as YAML, the password masked. Changes nothing.")
    parser.add_argument("--answers", metavar="FILE", help="read the answers from FILE")
    parser.add_argument("--yes", action="store_true", help="accept them without confirming")
    add_answer_options(parser)
    options = parser.parse_args(argv)
    # prompt_toolkit asks the terminal where its cursor is and warns when no answer comes
    # (some serial consoles, a pty in tests); these prompts do not need to know.
    os.environ.setdefault("PROMPT_TOOLKIT_NO_CPR", "1")
    try:
        answers = collect_answers(options, host.live_facts())
    except AnswersInvalid as e:  # a table of the problems, not the message's list
        err_console.print(problem_table(e.source, e.problems))
        err_console.print(f"hint: {escape(e.hint)}")
        return e.exit_status
    except WizardError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        return e.exit_status
    except KeyboardInterrupt as e:  # Ctrl-C, and the wizard's Cancelled
        err_console.print(escape(str(e) or "interrupted"))
        return ExitStatus.INTERRUPTED
    console.print(summary.masked_yaml(answers), end="", markup=False)
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
