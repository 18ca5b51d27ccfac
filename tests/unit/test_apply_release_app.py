"""`dragonball apply` with no file (issue 18): on the portal it applies the app the installed
release carries (deploy's placed spec once there is one); with no record, a release without
app, or through the API, a clear refusal (exit 2) and nothing changed."""

from __future__ import annotations

import json

import pytest

from dragonball.cli import main
from dragonball.release import installed
from portal_apps_fakes import NOTES, portal_as_root


@pytest.fixture
def portal(tmp_path, monkeypatch):
    made = portal_as_root(tmp_path, monkeypatch)
    yield made
    made.gate.set()
    made.store.close()


def recorded(tmp_path, spec: str | None = NOTES) -> str | None:
    path = None
    if spec is not None:
        path = installed.keep_app_spec("notes", "0.1.0", spec, root=str(tmp_path / "releases"))
    installed.record(installed.bin_record({"name": "notes", "version": "0.1.0"}, False, path),
                     root=str(tmp_path / "release"))
    return path


def test_apply_with_no_file_applies_the_installed_releases_app(portal, tmp_path, capsys):
    spec = recorded(tmp_path)
    assert main(["apply", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert spec in out.replace("\n", "") and "start" in out
    assert portal.control().store.apps() == []                  # a dry run changes nothing
    assert main(["apply", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["applied"] and document["plan"]["app"] == "notes"
    assert portal.control().store.apps() == ["notes"]


def test_deploys_placed_spec_is_the_one_applied_once_there_is_one(portal, tmp_path, capsys):
    spec = recorded(tmp_path)
    placed = tmp_path / "releases" / "notes" / "0.1.0" / installed.PLACED
    placed.write_text(NOTES.replace("replicas: 2", "replicas: 3"))
    assert main(["apply", "--dry-run"]) == 0
    assert str(placed) in capsys.readouterr().out.replace("\n", "")
    assert installed.placed_or_kept(spec) == str(placed)


@pytest.mark.parametrize("spec, argv, said", [
    (False, ["apply"], "no installed release is recorded"),
    (None, ["apply", "--dry-run"], "carries no app"),
    (NOTES, ["apply", "--remote"], "give a spec file"),
])
def test_nothing_to_apply_is_refused_with_what_to_do(portal, tmp_path, capsys, spec, argv,
                                                       said):
    if spec is not False:
        recorded(tmp_path, spec)
    assert main(argv) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert said in err and "dragonball apply SPEC" in err and "Traceback" not in err
    assert portal.control().store.apps() == []
