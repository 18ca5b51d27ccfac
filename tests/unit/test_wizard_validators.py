"""The wizard's pure validators and the enrollment code format: text in, True or a message."""

from __future__ import annotations

import itertools

import pytest

from dragonball.shared import ports
from dragonball.shared import codes, fingerprints
from dragonball.wizard import validators
from dragonball.wizard.model import Interface

INTERFACES = (Interface("eth0", "10.0.0.5"), Interface("eth1", "fd00::5"))


def fails(verdict, *words):
    """The verdict is a message holding every one of `words`."""
    assert verdict is not True and isinstance(verdict, str)
    for word in words:
        assert word in verdict, verdict
    return True


@pytest.mark.parametrize("value", ["portal", "device"])
def test_role_accepts_the_two_roles(value):
    assert validators.role(value) is True


def test_role_suggests_the_closest():
    assert fails(validators.role("portl"), "did you mean 'portal'", "give portal")
    assert fails(validators.role("Device"), "did you mean 'device'")
    assert fails(validators.role("manager"), "give portal")


@pytest.mark.parametrize("value", ["10.0.0.5", " 10.0.0.5 ", "fd00::5", "fd00:0::5"])
def test_address_of_this_server(value):
    assert validators.address(value, INTERFACES) is True


def test_address_elsewhere_lists_this_servers_addresses():
    assert fails(validators.address("10.0.0.6", INTERFACES),
                 "not an address of this server", "10.0.0.5 (eth0)", "fd00::5 (eth1)")


@pytest.mark.parametrize("value", ["10.0.0", "node-1", "", "10.0.0.5/24", "010.0.0.5"])
def test_address_must_be_an_ip(value):
    assert fails(validators.address(value, INTERFACES), "not an IP address")


def test_address_on_a_server_without_addresses():
    assert fails(validators.address("10.0.0.5", ()), "none found")


@pytest.mark.parametrize("value, normal", [
    ("10.0.0.10", f"10.0.0.10:{ports.PORTAL}"),
    ("10.0.0.10:9000", "10.0.0.10:9000"),
    ("Portal.LAN", f"portal.lan:{ports.PORTAL}"),
    ("portal.lan:443", "portal.lan:443"),
    ("fd00::10", f"[fd00::10]:{ports.PORTAL}"),
    ("[fd00::10]:9000", "[fd00::10]:9000"),
    ("[fd00::10]", f"[fd00::10]:{ports.PORTAL}"),
])
def test_portal_accepts_host_or_host_port(value, normal):
    assert validators.portal(value) is True
    assert validators.normalize_portal(value) == normal


@pytest.mark.parametrize("value, words", [
    ("https://10.0.0.10", ["HOST or HOST:PORT"]),
    ("", ["not an address"]),
    ("10.0.0.10:0", ["1 to 65535"]),
    ("10.0.0.10:99999", ["1 to 65535"]),
    ("10.0.0.10:web", ["1 to 65535"]),
    ("portal_1", ["neither an IP address nor a hostname"]),
    ("[fd00::10", ["not an address"]),
    ("10.0.0.5", ["this server", "choose the role portal"]),
])
def test_portal_refuses(value, words):
    assert fails(validators.portal(value, ("10.0.0.5",)), *words)


@pytest.mark.parametrize("value", ["node-1", "node-1.plant.lan", "N1", "a" * 63])
def test_hostname_accepts(value):
    assert validators.hostname(value) is True


@pytest.mark.parametrize("value", ["-node", "node-", "no de", "node_1", "a" * 64, "", "1.2.3.4",
                                   "node..lan"])
def test_hostname_refuses(value):
    assert fails(validators.hostname(value), "not a hostname")


def test_hostname_refuses_localhost():
    assert fails(validators.hostname("localhost"), "this server's own name")


@pytest.mark.parametrize("value", ["Correct horse battery", "tr0ub4dor&three", "ABCDEFGHIJK1",
                                   "пароль-очень-длинный"])
def test_password_accepts_strong_ones(value):
    assert validators.password(value, ("node-1",)) is True


@pytest.mark.parametrize("value, words", [
    ("Short1!", ["too short (7 characters)", "at least 12"]),
    ("", ["too short (0 characters)"]),
    ("abcdefghijklmnop", ["one kind of character", "mix in"]),
    ("123456789012345", ["one kind of character"]),
    ("ABCDEFGHIJKLMNOP", ["one kind of character"]),
    ("my DragonBall 2024", ["product's name", "leave it out"]),
    ("Welcome-Portal7-admin", ["this server's name 'portal7'", "leave it out"]),
])
def test_password_refuses_with_the_reason(value, words):
    assert fails(validators.password(value, ("portal7.plant.lan",)), *words)


def test_password_checks_both_names_but_not_tiny_ones():
    assert fails(validators.password("x-Override-name-1", ("node-1", "override-name")),
                 "'override-name'")
    assert validators.password("db-is-a-Good-word", ("db",)) is True


@pytest.mark.parametrize("value", ["/var/lib/dragonball", "/data/dragonball/", "/srv/db"])
def test_data_dir_accepts(value):
    assert validators.data_dir(value) is True


@pytest.mark.parametrize("value, words", [
    ("var/lib/dragonball", ["not an absolute path", "start it with /"]),
    ("/data/drag onball", ["space or a colon"]),
    ("/data:x", ["space or a colon"]),
    ("/", ["system folder"]),
    ("/etc/", ["system folder"]),
    ("/var/lib/docker", ["system folder"]),
])
def test_data_dir_refuses(value, words):
    assert fails(validators.data_dir(value), *words)


def test_data_dir_normalized():
    assert validators.normalize_data_dir("/data//dragonball/") == "/data/dragonball"


def test_cluster_name():
    assert validators.cluster_name("plant-7") is True
    assert fails(validators.cluster_name("Plant 7"), "lower-case letters")
    assert validators.default_cluster_name("Node_1.plant.lan") == "node-1"
    assert validators.default_cluster_name("___") == "cluster"


@pytest.mark.parametrize("value", [
    "SHA256:" + "ab" * 32, "sha256:" + "AB" * 32, "ab" * 32, ":".join(["AB"] * 32),
    "SHA256:" + " ".join(["ab"] * 32), "  SHA256:" + "ab" * 32 + "\n"])
def test_ca_fingerprint_is_read_forgivingly(value):
    assert validators.ca_fingerprint(value) is True
    assert fingerprints.normalize(value) == "SHA256:" + "ab" * 32


@pytest.mark.parametrize("value", ["", "SHA256:", "SHA1:" + "ab" * 20, "SHA256:" + "ab" * 31,
                                   "SHA256:" + "zz" * 32, "SHA256:" + "ab" * 33])
def test_ca_fingerprint_refused(value):
    assert fails(validators.ca_fingerprint(value), "SHA256:...", "dragonball enroll")


def test_ca_fingerprint_is_the_join_codes_rule():
    """installer.join pins the CA with the floor's normalizer, as the wizard reads it."""
    from dragonball.installer import enrollment_api, join
    assert join.fingerprints is enrollment_api.fingerprints is validators.fingerprints


# -- enrollment codes --------------------------------------------------------------------

def test_new_codes_are_valid_and_grouped():
    for _ in range(200):
        code = codes.new_code()
        assert codes.validate(code) is True
        assert [len(g) for g in code.split("-")] == [4, 4, 4, 4]
        assert set(code.replace("-", "")) <= set(codes.ALPHABET)


def test_the_example_is_valid():
    assert codes.validate(codes.EXAMPLE) is True


def test_alphabet_has_no_look_alikes_and_a_prime_size():
    assert not set("ILOUZ") & set(codes.ALPHABET)
    size = len(codes.ALPHABET)
    assert size == 31 and all(size % d for d in range(2, size))


def test_typing_is_forgiving():
    code = codes.EXAMPLE
    sloppy = code.lower().replace("-", " ")
    assert codes.validate(sloppy) is True
    assert codes.normalize(sloppy) == code
    with_o = codes.group("0" * 15 + codes.check_character("0" * 15))
    assert codes.normalize(with_o.replace("0", "o")) == with_o


def test_every_single_typo_is_caught():
    data = codes.EXAMPLE.replace("-", "")
    for position, wrong in itertools.product(range(16), codes.ALPHABET):
        if data[position] == wrong:
            continue
        typo = data[:position] + wrong + data[position + 1:]
        assert fails(codes.validate(typo), "check character", "mistyped")


def test_every_swap_in_the_data_is_caught():
    data = codes.EXAMPLE.replace("-", "")
    for i, j in itertools.combinations(range(15), 2):
        if data[i] == data[j]:
            continue
        swapped = list(data)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        assert codes.validate("".join(swapped)) is not True


@pytest.mark.parametrize("value, words", [
    ("7K3M-Q9XD-2HBW", ["16 characters", "this has 12"]),
    ("7K3M-Q9XD-2HBW-P4T3-A", ["this has 17"]),
    ("7K3M-Q9XD-2HBW-P4TU", ["'U' cannot be in a code"]),
    ("7K3M_Q9XD-2HBW-P4T3", ["'_'"]),
])
def test_code_refused_with_a_fix(value, words):
    assert fails(codes.validate(value), *words)


@pytest.mark.parametrize("verdict", [
    validators.role("portl"),
    validators.address("10.0.0.9", INTERFACES),
    validators.address("ten", INTERFACES),
    validators.portal("https://portal.lan"),
    validators.portal("portal.lan:99999"),
    validators.portal("portal_1"),
    validators.portal("10.0.0.5", ("10.0.0.5",)),
    validators.hostname("node_1"),
    validators.hostname("localhost"),
    validators.password("short"),
    validators.password("abcdefghijklmnop"),
    validators.password("my dragonball 1"),
    validators.password("plant-gateway-1", ("plant-gateway",)),
    validators.data_dir("relative"),
    validators.data_dir("/a b"),
    validators.data_dir("/etc"),
    validators.cluster_name("Plant 7"),
    validators.ca_fingerprint("SHA1:00"),
    codes.validate("7K3M-Q9XD-2HBW-P4TU"),
    codes.validate("7K3M"),
    codes.validate("7K3M-Q9XD-2HBW-P4T4"),
])
def test_messages_fit_the_prompts_one_line(verdict):
    """prompt_toolkit shows a validation message on one line of the terminal, cut at its
    width: every message (with two interfaces listed) fits 80 columns."""
    assert isinstance(verdict, str) and len(verdict) <= 80, verdict
