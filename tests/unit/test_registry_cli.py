"""`dragonball images list|push`: archive opening, password file, exit statuses (no registry needed)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from dragonball import cli, pki
from dragonball.commands import images as images_cli


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


@pytest.fixture
def archive_file(tmp_path):
    """A minimal images.tar (docs/bin-format.md): one image, config + one layer."""
    config, layer = _blob(b'{"config": 1}'), _blob(b"layer bytes")
    manifest = _blob(json.dumps({"config": config[0], "layers": [layer[0]]}).encode())
    index = {"schema": 1, "images": [{
        "ref": "n/web:1", "repository": "n/web", "tag": "1",
        "manifest": {"digest": manifest[0], "size": len(manifest[1])},
        "config": {"digest": config[0], "size": len(config[1])},
        "layers": [{"digest": layer[0], "size": len(layer[1]), "diff_id": "sha256:00"}]}]}
    path = tmp_path / "images.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [("index.json", json.dumps(index).encode()),
                           *((f"blobs/sha256/{d.split(':')[1]}", b) for d, b in
                             (config, layer, manifest))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def push_args(archive, password_file, *extra):
    return ["images", "push", "--archive", str(archive), "--registry", "127.0.0.1:1",
            "--ca", "/nonexistent/ca.crt", "--username", "u", "--password-file",
            str(password_file), *extra]


def test_list_json_shows_the_index(archive_file, capsys):
    assert cli.main(["images", "list", "--archive", str(archive_file), "--json"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    assert [i["ref"] for i in images] == ["n/web:1"]
    assert images[0]["size"] == sum(b["size"] for b in
                                    (images[0]["manifest"], images[0]["config"], *images[0]["layers"]))


def test_list_table(archive_file, capsys):
    assert cli.main(["images", "list", "--archive", str(archive_file)]) == 0
    assert "n/web:1" in capsys.readouterr().out


def test_not_an_archive_is_invalid_input_naming_the_file(tmp_path, capsys):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 200)
    assert cli.main(["images", "list", "--archive", str(junk)]) == 2
    assert "junk.tar" in capsys.readouterr().err


def test_missing_archive_is_invalid_input(tmp_path, capsys):
    assert cli.main(["images", "list", "--archive", str(tmp_path / "nope.tar")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_without_archive_it_needs_the_bin(monkeypatch, capsys):
    monkeypatch.delenv("DRAGONBALL_BIN", raising=False)
    monkeypatch.delenv("DRAGONBALL_BIN_SECTIONS", raising=False)
    assert cli.main(["images", "list"]) == 2
    assert "DragonBall.bin" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", "\n", "two\nlines\n"])
def test_an_unusable_password_file_is_a_usage_error(archive_file, tmp_path, content):
    (tmp_path / "pw").write_text(content)
    assert cli.main(push_args(archive_file, tmp_path / "pw")) == 2


def test_an_unknown_only_ref_is_a_usage_error_before_any_connection(archive_file, tmp_path, capsys):
    (tmp_path / "pw").write_text("secret\n")
    assert cli.main(push_args(archive_file, tmp_path / "pw", "--only", "n/nope:1")) == 2
    assert "n/nope:1" in capsys.readouterr().err


def test_the_password_file_newline_is_not_part_of_the_password(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert images_cli.read_password(str(tmp_path / "pw")) == "s3cret"


def test_a_missing_ca_file_exits_2_naming_it(archive_file, tmp_path, capsys):
    (tmp_path / "pw").write_text("secret\n")
    assert cli.main(push_args(archive_file, tmp_path / "pw")) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/ca.crt" in err and "secret" not in err


def test_an_unreachable_registry_exits_5(archive_file, tmp_path, capsys):
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "ca.crt").write_bytes(pki.create_ca().cert_pem)
    args = push_args(archive_file, tmp_path / "pw")
    args[args.index("--ca") + 1] = str(tmp_path / "ca.crt")
    assert cli.main(args) == 5
    err = capsys.readouterr().err
    assert "no registry answers at 127.0.0.1:1" in err and "secret" not in err


def test_some_registry_options_without_the_others_are_a_usage_error(archive_file, capsys):
    assert cli.main(["images", "push", "--archive", str(archive_file),
                     "--registry", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "missing: --ca, --username, --password-file" in err


def test_on_the_portal_the_registry_comes_from_its_settings(archive_file, tmp_path, capsys):
    """Issue 15: even on the portal as root, `images push` needed four options and the
    credential was in a JSON file. There, none is needed: its settings say which."""
    from portal_web_fakes import make_settings
    settings = make_settings(tmp_path)
    config = tmp_path / "portal.yaml"
    config.write_text(json.dumps({k: getattr(settings, k) for k in (
        "address", "tls_cert", "tls_key", "ca_cert", "registry", "registry_credentials",
        "hostname", "cluster_name", "data_dir", "bin_name")}))
    parsed = cli._parser().parse_args(["images", "push", "--archive", str(archive_file),
                                       "--config", str(config)])
    registry, ca, user, password = images_cli.push_target(parsed)
    assert (registry, ca, user) == ("10.0.0.1:5000", settings.ca_cert, "dragonball")
    assert password and "\n" not in password
    # not a portal (no settings): the four options, said so
    assert cli.main(["images", "push", "--archive", str(archive_file), "--config",
                     str(tmp_path / "none.yaml")]) == 2
    assert "give --registry, --ca, --username and --password-file" in capsys.readouterr().err
