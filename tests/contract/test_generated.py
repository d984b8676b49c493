"""Every copy of a shared name is what `make generate` renders from names.yaml: a hand edit of a generated file
(or of names.yaml without `make generate`) fails here, naming the file and the difference."""

from __future__ import annotations

import re

import pytest

from helical_tools import generate


def test_every_generated_file_is_what_make_generate_renders(capsys):
    assert generate.main(["--check"]) == 0, capsys.readouterr().out[-4000:]


def test_a_hand_edit_of_a_generated_copy_is_caught(tmp_path, monkeypatch):
    copy = tmp_path / "config"
    copy.mkdir()
    (copy / "names.env").write_text(generate.names_env(generate.load_names()).replace("=cpu\n", "=cpus\n", 1))
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    monkeypatch.setattr(generate, "rendered", lambda names: {"config/names.env": generate.names_env(names)})
    monkeypatch.setattr(generate, "rendered_dashboards", dict)
    assert generate.main(["--check"]) == 1
    (copy / "names.env").write_text(generate.names_env(generate.load_names()))  # and the untouched copy passes
    assert generate.main(["--check"]) == 0


def test_a_queue_name_a_worker_name_cannot_carry_is_refused(tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text(re.sub(r"^  gpu: .*$", "  gpu: gpu-fast", generate.NAMES.read_text(), flags=re.M))
    with pytest.raises(generate.NamesError, match=r"gpu=.gpu-fast.: worker names are <queue>@<host>"):
        generate.load_names(names)
