"""`dragonball password`: change the portal admin's password through the API, with the
login kept here (`dragonball login`). Every other session and token of the admin ends;
this machine's login stays.

Both passwords are read from a terminal (getpass, the new one twice) or, with
`--password-stdin`, as two lines of standard input (the current one, then the new one):
never from the command line, the environment or a file name an argument would show.
Exit status: 0 changed, 2 a new password the rule refuses, 5 cannot reach the portal, 6
not logged in or a wrong current password.
"""

from __future__ import annotations

import getpass
import json
import sys

from dragonball.commands.remote import client
from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.portal_client import PortalInvalid
from dragonball.shared import passwords


def register(commands) -> None:
    parser = commands.add_parser(
        "password", help="change the portal admin's password (ends every other login)",
        description="Change the portal admin's password through the portal's API. Every "
                    "other browser session and API token of the admin ends.")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the current and the new password as two lines of stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=password_command)


def read_passwords(args, stdin=None, ask=None) -> tuple[str, str]:
    """(current, new) from stdin or a terminal; the new one checked against the rule."""
    stdin, ask = stdin or sys.stdin, ask or getpass.getpass
    if args.password_stdin:
        current, new = (stdin.readline().rstrip("\r\n") for _ in range(2))
    elif stdin.isatty():
        current = ask("current password: ")
        new = ask("new password: ")
        if ask("new password again: ") != new:
            raise PortalInvalid("the two new passwords differ", "type the same one twice")
    else:
        raise PortalInvalid("no terminal to ask the passwords on",
                            "pipe them in with --password-stdin: the current one, then the "
                            "new one, one per line")
    if not current or not new:
        raise PortalInvalid("a password is empty", "give the current and the new password")
    verdict = passwords.verdict(new)
    if verdict is not True:
        raise PortalInvalid(f"the new password is {verdict}" if verdict.startswith("too")
                            else f"the new password: {verdict}", "choose another one")
    return current, new


def password_command(args) -> int:
    current, new = read_passwords(args)
    with client(args) as portal:
        answer = portal.change_password(current, new)
    if args.json:
        console.print_json(json.dumps({"ok": True, "ended": answer.get("ended", 0)}))
    else:
        console.print(f"[green]password changed[/green]; {answer.get('ended', 0)} other "
                      "session(s) and token(s) ended (this login stays)")
    return ExitStatus.OK
