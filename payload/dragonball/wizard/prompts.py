"""The questions, asked with questionary; each answer checked on the spot.

Every prompt uses the pure validators of `validators` (the same an answers file
meets), plus the injected remote checks once the format is right. A wrong answer
shows why in the prompt's bottom line and the person types again. Ctrl-C (or the
end of input) raises `Cancelled` before anything changes.
"""

from __future__ import annotations

import questionary
from questionary import Choice
from rich.markup import escape

from dragonball.shared.paths import DATA_DIR
from dragonball.shared import codes, fingerprints
from dragonball.wizard import validators
from dragonball.wizard.answers import build_answers, remote_verdict
from dragonball.wizard.errors import AnswersInvalid, Cancelled
from dragonball.wizard.model import Answers, Checks, Facts
from dragonball.wizard.terminal import Io

_TYPE_ADDRESS = "type"  # the value of the select's "another address" choice


class Prompter:
    """Asks one question at a time on the injected terminal.

    `given` holds answers from the command line: each is checked like a typed one
    (format, then the remote checks); a good one is shown and not asked, a bad one is
    shown with its problem and the question is asked with it as the default.
    """

    def __init__(self, io: Io, facts: Facts, checks: Checks = Checks(),
                 given: dict | None = None) -> None:
        self.io, self.facts, self.checks = io, facts, checks
        self.given = {k: v for k, v in (given or {}).items() if v is not None}

    def typed(self, field: str | None = None) -> dict:
        """Options of a prompt the person types into: checked on Enter, not per keystroke
        (a remote check per keystroke would flood the portal; a half-typed password is
        not worth a red message); the command line's answer as the default."""
        default = {"default": self.given[field]} if field in self.given else {}
        return dict(validate_while_typing=False, **default, **self.io.prompt_kwargs())

    def ask(self, question: questionary.Question):
        try:
            return question.unsafe_ask()
        except (KeyboardInterrupt, EOFError) as e:
            raise Cancelled("cancelled before the summary was confirmed: nothing was changed",
                            "run the installer again when ready") from e

    def taken(self, field: str, label: str, verdict) -> str | None:
        """The command line's answer to `field` if `verdict` passes it, else None."""
        value = self.given.get(field)
        if value is None:
            return None
        found = verdict(value)
        if found is True:
            self.io.console().print(f"[green]✓[/green] {label} {escape(value)} "
                                    "[dim](from the command line)[/dim]")
            return value
        self.io.console().print(f"[red]✗[/red] {label} {escape(value)}: {escape(found)}")
        return None

    def role(self) -> str:
        given = self.taken("role", "Role:", validators.role)
        return given or self.ask(questionary.select("What will this server be?", choices=[
            Choice("the portal: the first server of a new cluster", value="portal"),
            Choice("a device: join an existing portal", value="device"),
        ], **self.io.prompt_kwargs()))

    def address(self) -> str:
        def verdict(text: str):
            return validators.address(text, self.facts.interfaces)
        given = self.taken("address", "This server's address:", verdict)
        if given:
            return given.strip()
        choices = [Choice(f"{i.address}  ({i.name})", value=i.address)
                   for i in self.facts.interfaces]
        if choices:
            picked = self.ask(questionary.select(
                "This server's address, as the other servers reach it:",
                choices=choices + [Choice("type another address", value=_TYPE_ADDRESS)],
                **self.io.prompt_kwargs()))
            if picked != _TYPE_ADDRESS:
                return picked
        return self.ask(questionary.text("This server's address:", validate=verdict,
                                         **self.typed("address"))).strip()

    def portal(self) -> str:
        label = "The portal's address (HOST or HOST:PORT; every manager's, comma separated):"
        given = self.taken("portal", label, self._portal_verdict)
        return validators.normalize_portals(given or self.ask(questionary.text(
            label, validate=self._portal_verdict, **self.typed("portal"))))

    def _portal_verdict(self, text: str):
        verdict = validators.portals(text, self.facts.addresses)
        if verdict is True and self.checks.check_portal:
            return remote_verdict(self.checks.check_portal, validators.normalize_portals(text))
        return verdict

    def ca_fingerprint(self, portal: str) -> str:
        def verdict(text: str):
            found = validators.ca_fingerprint(text)
            if found is True and self.checks.check_fingerprint:
                return remote_verdict(self.checks.check_fingerprint, portal,
                                      fingerprints.normalize(text))
            return found
        label = "The portal's CA fingerprint (SHA256:..., printed with the code):"
        given = self.taken("ca_fingerprint", label, verdict)
        return fingerprints.normalize(given or self.ask(questionary.text(
            label, validate=verdict, **self.typed("ca_fingerprint"))))

    def enrollment_code(self, portal: str) -> str:
        def verdict(text: str):
            found = codes.validate(text)
            if found is True and self.checks.check_code:
                return remote_verdict(self.checks.check_code, portal, codes.normalize(text))
            return found
        label = f"The enrollment code the portal printed (like {codes.EXAMPLE}):"
        given = self.taken("enrollment_code", label, verdict)
        return codes.normalize(given or self.ask(questionary.text(
            label, validate=verdict, **self.typed("enrollment_code"))))

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
        label = "Where should DragonBall keep its data?"
        given = self.taken("data_dir", label, validators.data_dir)
        return (given or self.ask(questionary.text(
            label, validate=validators.data_dir,
            **{"default": DATA_DIR, **self.typed("data_dir")}))).strip()

    def selinux_permissive(self) -> str:
        """Consent, asked only on a server where SELinux is enforcing: no means nothing is
        installed (answers.SELINUX_CONSENT says what to do instead)."""
        given = self.given.get("selinux_permissive")
        if given is not None and validators.yes_no(given) is True:
            return given
        agreed = self.ask(questionary.confirm(
            "SELinux is enforcing here; the bundled engine needs it permissive. Set it to "
            "permissive now (recorded; reset sets it back)?", default=False,
            **self.io.prompt_kwargs()))
        return "yes" if agreed else "no"

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
    if prompter.facts.selinux_enforcing:
        raw["selinux_permissive"] = prompter.selinux_permissive()
    # The remote checks ran on the spot: not again here.
    answers, problems = build_answers(raw, prompter.facts)
    if problems:
        raise AnswersInvalid("your answers", problems)
    return answers
