"""What the person confirms: the answers as a table (rich), and as YAML for scripts.
The admin password is always shown as ********."""

from __future__ import annotations

import yaml
from rich.table import Table

from dragonball.wizard.model import MASK, Answers, Facts

_ROLE = {"portal": "portal (the first server: web UI, registry)",
         "device": "device (joins an existing portal)"}


def rows(answers: Answers, facts: Facts) -> list[tuple[str, str]]:
    """(label, value) of every answer that applies to the role, in the wizard's order."""
    shown = [("role", _ROLE[answers.role]),
             ("this server's address", answers.address),
             ("hostname", answers.hostname or f"{facts.hostname} (this server's)")]
    if answers.role == "device":
        shown += [("portal", answers.portal), ("portal's CA", answers.ca_fingerprint),
                  ("enrollment code", answers.enrollment_code)]
    else:
        shown += [("admin password", MASK), ("cluster name", answers.cluster_name)]
    shown.append(("data directory", answers.data_dir))
    if answers.selinux_permissive:
        shown.append(("SELinux", "enforcing -> permissive (reset sets it back)"))
    if answers.firewall_allow:
        shown.append(("also reach the cluster ports", answers.firewall_allow.replace(",", ", ")))
    return shown


def table(answers: Answers, facts: Facts, title: str = "Your answers") -> Table:
    summary = Table(title=title, title_justify="left", show_header=False)
    summary.add_column("answer", style="bold")
    summary.add_column("value", overflow="fold")
    for label, value in rows(answers, facts):
        summary.add_row(label, value)
    return summary


def masked_yaml(answers: Answers) -> str:
    """The answers as an answers file would hold them, the password masked."""
    return yaml.safe_dump(answers.masked(), sort_keys=False, default_flow_style=False)
