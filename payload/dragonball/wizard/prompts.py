"""The questions, asked with questionary; each answer checked on the spot.

Every prompt uses the pure validators of `validators` (the same an answers file
meets), plus the injected remote checks once the format is right. A wrong answer
shows why in the prompt's bottom line and the person types again. Ctrl-C (or the
end of input) raises `Cancelled` before anything changes.
"""

from __future__ import annotations

import questionary
from questionary import Choice

from dragonball.installer import DATA_DIR
from dragonball.wizard import enrollment, validators
from dragonball.wizard.answers import build_answers, remote_verdict
from dragonball.wizard.errors import AnswersInvalid, Cancelled
from dragonball.wizard.model import Answers, Checks, Facts
from dragonball.wizard.terminal import Io

_TYPE_ADDRESS = "type"  # the value of the select's "another address" choice


class Prompter:
    """Asks one question at a time on the injected terminal."""

    def __init__(self, io: Io, facts: Facts, checks: Checks = Checks()) -> None:
        self.io, self.facts, self.checks = io, facts, checks

    def typed(self) -> dict:
        """Options of a prompt the person types into: checked on Enter, not per keystroke
        (a remote check per keystroke would flood the portal; a half-typed password is
        not worth a red message)."""
        return dict(validate_while_typing=False, **self.io.prompt_kwargs())

    def ask(self, question: questionary.Question):
        try:
            return question.unsafe_ask()
        except (KeyboardInterrupt, EOFError) as e:
            raise Cancelled("cancelled before the summary was confirmed: nothing was changed",
                            "run the installer again when ready") from e

    def role(self) -> str:
        return self.ask(questionary.select("What will this server be?", choices=[
            Choice("the portal: the first server of a new cluster", value="portal"),
            Choice("a device: join an existing portal", value="device"),
        ], **self.io.prompt_kwargs()))

    def address(self) -> str:
        choices = [Choice(f"{i.address}  ({i.name})", value=i.address)
                   for i in self.facts.interfaces]
        if choices:
            picked = self.ask(questionary.select(
                "This server's address, as the other servers reach it:",
                choices=choices + [Choice("type another address", value=_TYPE_ADDRESS)],
                **self.io.prompt_kwargs()))
            if picked != _TYPE_ADDRESS:
                return picked
        return self.ask(questionary.text(
            "This server's address:", validate=lambda text: validators.address(
                text, self.facts.interfaces), **self.typed())).strip()

    def portal(self) -> str:
        return validators.normalize_portal(self.ask(questionary.text(
            "The portal's address (HOST or HOST:PORT):", validate=self._portal_verdict,
            **self.typed())))

    def _portal_verdict(self, text: str):
        verdict = validators.portal(text, self.facts.addresses)
        if verdict is True and self.checks.check_portal:
            return remote_verdict(self.checks.check_portal, validators.normalize_portal(text))
        return verdict

    def ca_fingerprint(self, portal: str) -> str:
        def verdict(text: str):
            found = validators.ca_fingerprint(text)
            if found is True and self.checks.check_fingerprint:
                return remote_verdict(self.checks.check_fingerprint, portal,
                                      validators.normalize_ca_fingerprint(text))
            return found
        return validators.normalize_ca_fingerprint(self.ask(questionary.text(
            "The portal's CA fingerprint (SHA256:..., printed with the code):",
            validate=verdict, **self.typed())))

    def enrollment_code(self, portal: str) -> str:
        def verdict(text: str):
            found = enrollment.validate(text)
            if found is True and self.checks.check_code:
                return remote_verdict(self.checks.check_code, portal, enrollment.normalize(text))
            return found
        return enrollment.normalize(self.ask(questionary.text(
            f"The enrollment code the portal printed (like {enrollment.EXAMPLE}):",
            validate=verdict, **self.typed())))

    def admin_password(self) -> str:
        """Asked twice; when the two differ, both are asked again."""
        hostnames = (self.facts.hostname,)
        while True:
            first = self.ask(questionary.password(
                f"The portal's admin password (at least {validators.MIN_PASSWORD} characters):",
                validate=lambda text: validators.password(text, hostnames), **self.typed()))
            again = self.ask(questionary.password("The same password again:", **self.typed()))
            if first == again:
                return first
            self.io.console().print("[red]The two passwords differ:[/red] type them again.")

    def data_dir(self) -> str:
        return self.ask(questionary.text(
            "Where should DragonBall keep its data?", default=DATA_DIR,
            validate=validators.data_dir, **self.typed())).strip()

    def confirm(self, question: str) -> bool:
        return self.ask(questionary.confirm(question, default=False,
                                            **self.io.prompt_kwargs()))


def ask_answers(prompter: Prompter) -> Answers:
    """Every question for the chosen role, then the same checks as an answers file."""
    raw = {"role": prompter.role()}
    raw["address"] = prompter.address()
    if raw["role"] == "device":
        raw["portal"] = prompter.portal()
        raw["ca_fingerprint"] = prompter.ca_fingerprint(raw["portal"])
        raw["enrollment_code"] = prompter.enrollment_code(raw["portal"])
    else:
        raw["admin_password"] = prompter.admin_password()
    raw["data_dir"] = prompter.data_dir()
    # The remote checks ran on the spot: not again here.
    answers, problems = build_answers(raw, prompter.facts)
    if problems:
        raise AnswersInvalid("your answers", problems)
    return answers
