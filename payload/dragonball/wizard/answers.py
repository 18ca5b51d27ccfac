"""From raw answers (text, from a file or from prompts) to `Answers`, or every problem.

`build_answers` is pure given its facts and checks: format of each answer, the role's
required and forbidden answers, defaults, then the remote checks on what is well formed.
It reports every problem at once, in the order of the file.
"""

from __future__ import annotations

import collections.abc

from dragonball.errors import DragonBallError
from dragonball.shared.paths import DATA_DIR
from dragonball.shared import codes, fingerprints
from dragonball.wizard import validators
from dragonball.wizard.model import ROLES, Answers, Checks, Facts, Problem

#: The answers, in the order the wizard asks them and a summary shows them.
FIELDS = ("role", "address", "portal", "ca_fingerprint", "enrollment_code", "admin_password",
          "data_dir", "hostname", "cluster_name", "firewall_allow", "selinux_permissive")
#: Answers that belong to one role only: giving them for the other is a mistake.
ROLE_OF = {"portal": "device", "ca_fingerprint": "device", "enrollment_code": "device",
           "admin_password": "portal", "cluster_name": "portal"}
REQUIRED = {"portal": ("admin_password",),
            "device": ("portal", "ca_fingerprint", "enrollment_code")}
_EXAMPLE = {"role": "portal", "portal": "10.0.0.10", "enrollment_code": codes.EXAMPLE,
            "ca_fingerprint": "SHA256:...",
            "admin_password": "'a long passphrase'", "address": "10.0.0.21"}


#: The format rule of each answer: (text, facts, hostnames) -> True or a message.
_RULES = {
    "role": lambda text, facts, names: validators.role(text),
    "address": lambda text, facts, names: validators.address(text, facts.interfaces),
    "portal": lambda text, facts, names: validators.portals(text, facts.addresses),
    "ca_fingerprint": lambda text, facts, names: validators.ca_fingerprint(text),
    "enrollment_code": lambda text, facts, names: codes.validate(text),
    "admin_password": lambda text, facts, names: validators.password(text, names),
    "data_dir": lambda text, facts, names: validators.data_dir(text),
    "hostname": lambda text, facts, names: validators.hostname(text),
    "cluster_name": lambda text, facts, names: validators.cluster_name(text),
    "firewall_allow": lambda text, facts, names: validators.firewall_allow(text),
    "selinux_permissive": lambda text, facts, names: validators.yes_no(text),
}

SELINUX_CONSENT = ("SELinux is enforcing on this server, and the bundled engine runs its "
                   "containers without SELinux labels: answer 'selinux_permissive: yes' to "
                   "let the install set it to permissive (setenforce 0 and SELINUX= in "
                   "/etc/selinux/config, recorded; reset sets it back), or set it to "
                   "permissive yourself first")


def field_verdict(field: str, value: str, facts: Facts, hostnames: tuple = ()):
    """The format verdict of one answer (True or a message), facts given."""
    return _RULES[field](value, facts, hostnames)


def build_answers(raw: collections.abc.Mapping, facts: Facts, checks: Checks = Checks(),
                  lines: collections.abc.Mapping = {},
                  reported: collections.abc.Set = frozenset()) -> tuple[Answers | None, list]:
    """(Answers, []) when every answer is valid, else (None, every problem).

    `raw` maps field names to text (None or absent: not given); `lines` maps them to
    their line in a file, so problems say where; `reported` names answers the caller
    found unreadable and reported already (so they are not "missing" as well).
    """
    given = {k: v for k, v in raw.items() if v is not None}
    problems = []

    def report(field, verdict, line_of=None):
        if verdict is not True and field not in reported:
            problems.append(Problem(field, verdict, lines.get(line_of or field)))

    hostnames = _hostnames(given, facts)
    for field in FIELDS:
        if field in given:
            report(field, field_verdict(field, given[field], facts, hostnames))
    role = given.get("role")
    if role is None:
        report("role", "missing: give portal (the first server) or device (join a portal), "
                       "like 'role: portal'")
    elif role in ROLES:
        for field, verdict in _role_rules(role, given):
            report(field, verdict, field if field in given else "role")
    address = given.get("address")
    if address is None:
        address, verdict = _default_address(facts)
        report("address", verdict)
    consent = given.get("selinux_permissive")
    if facts.selinux_enforcing and not validators.is_yes(consent) and \
            (consent is None or validators.yes_no(consent) is True):  # a bad one: said above
        report("selinux_permissive", SELINUX_CONSENT)
    if not problems and not reported:
        for field, verdict in _remote_checks(given, checks):
            report(field, verdict)
    problems.sort(key=file_order)
    if problems or reported:
        return None, problems
    return _answers(given, address, facts), []


def file_order(problem: Problem) -> tuple:
    """By line; problems without a line (a missing answer) last, in the wizard's order."""
    rank = FIELDS.index(problem.field) if problem.field in FIELDS else len(FIELDS)
    return (problem.line is None, problem.line or 0, rank)


def _hostnames(given: dict, facts: Facts) -> tuple:
    override = given.get("hostname")
    return (facts.hostname,) + ((override,) if override else ())


def _role_rules(role: str, given: dict):
    """(field, message) for answers the role forbids or needs and lacks."""
    for field, owner in ROLE_OF.items():
        if field in given and owner != role:
            yield field, (f"only a {owner} takes {field}, and role is {role}: remove this "
                          f"line, or set role: {owner}")
    if role == "device" and "hostname" in given:
        # a device enrolls and joins the Swarm under its kernel hostname; an override
        # here would be silently ignored, so it is refused with the way to rename
        yield "hostname", ("a device joins under its own hostname: rename the server with "
                           "'hostnamectl set-hostname NAME' and remove this line")
    for field in REQUIRED[role]:
        if field not in given:
            yield field, (f"missing: a {role} needs it, like "
                          f"'{field}: {_EXAMPLE.get(field, '...')}'")


def _default_address(facts: Facts) -> tuple[str | None, object]:
    if len(facts.interfaces) == 1:
        return facts.interfaces[0].address, True
    if not facts.interfaces:
        return None, ("missing, and this server has no network address to choose: "
                      "bring up its network, then add a line 'address: <its IP address>'")
    listed = ", ".join(str(i) for i in facts.interfaces)
    return None, (f"missing: this server has {len(facts.interfaces)} addresses ({listed}); "
                  "add a line 'address: <the one the other servers reach>'")


def remote_verdict(check, *args):
    """A remote check's verdict; a DragonBallError it raises becomes its message."""
    try:
        return check(*args)
    except DragonBallError as e:
        return f"{e.message}: {e.hint}" if e.hint else e.message


def _remote_checks(given: dict, checks: Checks):
    """Run on well-formed answers only; the code's check needs a reachable portal."""
    if given.get("role") != "device":
        return
    portal = validators.normalize_portals(given["portal"])
    if checks.check_portal:
        verdict = remote_verdict(checks.check_portal, portal)
        yield "portal", verdict
        if verdict is not True:
            return
    if checks.check_fingerprint:
        verdict = remote_verdict(checks.check_fingerprint, portal,
                                 fingerprints.normalize(given["ca_fingerprint"]))
        yield "ca_fingerprint", verdict
        if verdict is not True:
            return
    if checks.check_code:
        yield "enrollment_code", remote_verdict(
            checks.check_code, portal, codes.normalize(given["enrollment_code"]))


def _answers(given: dict, address: str, facts: Facts) -> Answers:
    role = given["role"]
    portal_role = role == "portal"
    host = given.get("hostname")
    return Answers(
        role=role,
        address=validators.normalize_address(address),
        data_dir=validators.normalize_data_dir(given.get("data_dir", DATA_DIR)),
        hostname=host,
        portal=None if portal_role else validators.normalize_portals(given["portal"]),
        enrollment_code=None if portal_role else codes.normalize(given["enrollment_code"]),
        ca_fingerprint=None if portal_role
        else fingerprints.normalize(given["ca_fingerprint"]),
        admin_password=given.get("admin_password"),
        cluster_name=(given.get("cluster_name")
                      or validators.default_cluster_name(host or facts.hostname))
        if portal_role else None,
        firewall_allow=validators.normalize_firewall_allow(given["firewall_allow"])
        if given.get("firewall_allow") else None,
        selinux_permissive=validators.is_yes(given["selinux_permissive"])
        if given.get("selinux_permissive") is not None else None,
    )
