"""The installer's questions: asked on a terminal (questionary) or read from an answers
file (docs/answers.md), checked by the same pure validators, confirmed on a summary.

The installer calls `collect_answers(options, facts, io, checks)`; `dragonball answers
check FILE` checks a file alone (`commands.answers`); `python -m dragonball.wizard` runs the
questions and prints the answers (password masked).
"""

from dragonball.wizard.collect import Options, collect_answers
from dragonball.wizard.errors import (AnswersInvalid, Cancelled, Declined, NoTerminal,
                                      UsageError, WizardError)
from dragonball.wizard.model import Answers, Checks, Facts, Interface, Problem
from dragonball.wizard.terminal import Io

__all__ = ["Answers", "AnswersInvalid", "Cancelled", "Checks", "Declined", "Facts",
           "Interface", "Io", "NoTerminal", "Options", "Problem", "UsageError",
           "WizardError", "collect_answers"]
