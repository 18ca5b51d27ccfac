"""installer/firewall.sh against the real iptables of a bare server (no python3): in a
container with its own network namespace (`--network none`, NET_ADMIN), so this machine's
firewall is never touched. The chain as iptables shows it, a hostile line skipped, the
jumps inserted once and never moved before a rule put first later, remove."""

from __future__ import annotations

import pytest

from dragonball.installer import firewall as installer_firewall
from support import LABELS

SETUP = """set -e
mkdir -p /var/lib/dragonball/firewall
printf '10.0.0.1\\n$(touch /PWNED)\\nfd00::1\\n' > /var/lib/dragonball/firewall/members
echo 192.168.5.0/24 > /var/lib/dragonball/firewall/allow
iptables -N DOCKER-USER; iptables -A DOCKER-USER -j RETURN; iptables -A INPUT -j ACCEPT
set +e
"""


@pytest.fixture(scope="module")
def shown(docker_client, bare_server_image) -> str:
    script = installer_firewall.SCRIPT_SOURCE.read_text()
    steps = SETUP + f"""cat > /fw.sh <<'EOF'
{script}EOF
sh /fw.sh apply; echo "rc=$?"
iptables -N ADMIN; iptables -I INPUT 1 -j ADMIN
sh /fw.sh; echo "rc=$?"
iptables -S; ip6tables -S DRAGONBALL; test -e /PWNED && echo PWNED
echo ---; sh /fw.sh remove; iptables -S; ip6tables -S
"""
    output = docker_client.containers.run(
        bare_server_image, ["sh", "-c", steps], network_mode="none", remove=True,
        cap_add=["NET_ADMIN", "NET_RAW"], labels=LABELS, stderr=True)
    return output.decode()


def test_the_chain_holds_the_members_and_the_drops(shown):
    applied = shown.split("---")[0]
    assert applied.count("rc=0") == 2, shown
    for rule in ("-A DRAGONBALL -i lo -j RETURN",
                 "-A DRAGONBALL -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                 "-A DRAGONBALL -p tcp -m tcp --dport 8443 -j ACCEPT",
                 "-A DRAGONBALL -s 10.0.0.1/32 -p tcp -m multiport "
                 "--dports 2377,2379,2380,5000,7946,9443 -j ACCEPT",
                 "-A DRAGONBALL -s 192.168.5.0/24 -p udp -m multiport --dports 4789,7946 "
                 "-j ACCEPT",
                 "-A DRAGONBALL -p udp -m multiport --dports 4789,7946 -j DROP",
                 "-A DRAGONBALL -s fd00::1/128 -p tcp -m multiport "
                 "--dports 2377,2379,2380,5000,7946,9443 -j ACCEPT"):
        assert rule in applied, shown
    assert "line 2 skipped" in applied and "PWNED" not in applied.splitlines()


def test_the_jumps_are_there_once_and_a_rule_put_first_later_stays_first(shown):
    applied = shown.split("---")[0]
    inputs = [line for line in applied.splitlines() if line.startswith("-A INPUT")]
    assert inputs == ["-A INPUT -j ADMIN", "-A INPUT -j DRAGONBALL", "-A INPUT -j ACCEPT"]
    assert applied.count("-A DOCKER-USER -j DRAGONBALL-FORWARD") == 1
    assert ("-A DRAGONBALL-FORWARD -p tcp -m conntrack --ctstate DNAT --ctorigdstport 9443 "
            "-j DRAGONBALL") in applied


def test_remove_leaves_the_administrators_rules_only(shown):
    removed = shown.split("---")[1]
    assert "DRAGONBALL" not in removed, shown
    assert "-A INPUT -j ACCEPT" in removed and "-A DOCKER-USER -j RETURN" in removed
