"""`dragonball deploy` (issue 18, DESIGN 9) on the orchestrator's fakes: it waits for the
servers, asks per service (a server not in the cluster refused on the spot), confirms, writes
placed.app.yaml and applies it; unattended with --answers and --yes."""

from __future__ import annotations

import argparse
import io

import pytest
import yaml
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from dragonball.cli import main
from dragonball.commands import deploy
from dragonball.release import installed
from dragonball.swarm.model import Node
from dragonball.wizard.terminal import Io
from portal_apps_fakes import NOTES, portal_as_root

ENTER, CLEAR_LINE = "\r", "\x15"


@pytest.fixture
def portal(tmp_path, monkeypatch):
    made = portal_as_root(tmp_path, monkeypatch)
    kept = installed.keep_app_spec("notes", "0.1.0", NOTES, root=str(tmp_path / "releases"))
    installed.record(installed.bin_record({"name": "notes", "version": "0.1.0"}, False, kept),
                     root=str(tmp_path / "release"))
    made.placed = tmp_path / "releases" / "notes" / "0.1.0" / installed.PLACED
    yield made
    made.gate.set()
    made.store.close()


def placement(path) -> dict:
    data = yaml.safe_load(path.read_text())
    return {name: s.get("placement", {}).get("servers") for name, s in data["services"].items()}


def test_unattended_with_an_answers_file(portal, tmp_path, capsys):
    answers = tmp_path / "deploy.yaml"
    answers.write_text("web: [node-b]\nwhen_ready: 2\n")
    assert main(["deploy", "--answers", str(answers), "--yes", "--wait", "0"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 server(s) Ready" in out and "deployed" in out
    assert placement(portal.placed) == {"web": ["node-b"], "api": ["node-a", "node-b"],
                                        "store": ["node-b"]}             # the defaults' spread
    assert portal.control().store.apps() == ["notes"]
    assert installed.placed_or_kept(installed.release_app()[1]) == str(portal.placed)


def test_an_answer_naming_a_server_not_in_the_cluster_changes_nothing(portal, tmp_path,
                                                                      capsys):
    answers = tmp_path / "deploy.yaml"
    answers.write_text("store: [s9]\n")
    assert main(["deploy", "--answers", str(answers), "--yes", "--wait", "0"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "store: s9 is not in the cluster; its servers: node-a, node-b" in err
    assert not portal.placed.exists() and portal.control().store.apps() == []


@pytest.mark.parametrize("text, said", [
    ("web: [node-b]\n" + "# padding\n" * 20_000, "may hold at most"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
     "values"),
    ("web: !Ref s1\n", "tag"),
])
def test_a_huge_or_hostile_answers_file_is_refused_before_it_is_loaded(portal, tmp_path,
                                                                        capsys, text, said):
    answers = tmp_path / "deploy.yaml"
    answers.write_text(text)
    assert main(["deploy", "--answers", str(answers), "--yes", "--wait", "0"]) == 2
    err = capsys.readouterr().err
    assert str(answers) in err and said in err and "Traceback" not in err
    assert not portal.placed.exists() and portal.control().store.apps() == []


def test_without_a_terminal_it_asks_for_yes(portal, capsys):
    assert main(["deploy", "--wait", "0"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert not portal.placed.exists()


def run(keys: str) -> tuple[int, str]:
    out = io.StringIO()
    args = argparse.Namespace(when_ready=None, answers=None, yes=False, wait=0.0,
                              timeout=5.0, config=None)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()
        status = deploy.deploy_command(args, Io(stdin=None, stdout=out, isatty=lambda: True,
                                                prompt_input=pipe,
                                                prompt_output=DummyOutput()))
    return status, out.getvalue()


def test_prompts_offer_the_defaults_and_refuse_an_unknown_server(portal, capsys):
    keys = (CLEAR_LINE + "s9" + ENTER                  # web: refused, not in the cluster
            + CLEAR_LINE + "node-b" + ENTER            # ... typed again
            + ENTER                                    # api: the default (both)
            + ENTER                                    # store: the default (node-b)
            + "y")
    status, _ = run(keys)
    assert status == 0
    assert placement(portal.placed) == {"web": ["node-b"], "api": ["node-a", "node-b"],
                                        "store": ["node-b"]}
    assert "app notes: where each service runs" in capsys.readouterr().out


def test_declining_the_summary_changes_nothing(portal):
    assert run(ENTER * 3 + "n")[0] == 0
    assert not portal.placed.exists() and portal.control().store.apps() == []


class Joining:
    """A Swarm whose second server becomes Ready at the third look."""

    def __init__(self) -> None:
        self.looks = 0

    def nodes(self):
        self.looks += 1
        return [Node("a", "s1"), Node("b", "s2", ready=self.looks >= 3)]


def test_it_waits_for_the_servers_and_gives_up_with_what_to_do(capsys):
    times = iter(range(100))
    assert deploy.wait_ready(Joining(), None, 60, clock=lambda: next(times),
                             sleep=lambda s: None) == ["s1", "s2"]
    out = capsys.readouterr().out
    assert "1 of 2 server(s) Ready: s1" in out and "2 of 2 server(s) Ready: s1, s2" in out
    with pytest.raises(deploy.DeployFailed, match="1 of 3 servers Ready") as gave_up:
        deploy.wait_ready(Joining(), 3, 1, clock=lambda: next(times), sleep=lambda s: None)
    assert "--when-ready" in gave_up.value.hint
