from __future__ import annotations

import json

import pytest

from umarvel_cli.artifacts import fingerprint, finish_stage, plan_stage, read_manifest
from umarvel_cli.artifacts.paths import safe_relative
from umarvel_cli.errors import UmarvelError


def test_fresh_then_up_to_date_then_force(tmp_path):
    out = tmp_path / "out"
    p = plan_stage(out, "prepare", {"a": 1}, {"root": "x"})
    assert p.status == "fresh"
    (out / "queries").mkdir()
    finish_stage(p, {"queries": 3})
    m = read_manifest(out)
    assert m.counts == {"queries": 3} and m.params == {"a": 1} and m.created
    assert not (out / "_progress.json").exists()
    assert plan_stage(out, "prepare", {"a": 1}, {"root": "x"}).status == "up_to_date"
    redo = plan_stage(out, "prepare", {"a": 1}, {"root": "x"}, force=True)
    assert redo.status == "redo" and not (out / "queries").exists() and read_manifest(out) is None


def test_changed_params_redo(tmp_path):
    p = plan_stage(tmp_path / "o", "s", {"a": 1}, {})
    finish_stage(p, {})
    assert plan_stage(tmp_path / "o", "s", {"a": 2}, {}).status == "redo"


def test_interrupted_run_resumes_only_with_same_params(tmp_path):
    out = tmp_path / "o"
    plan_stage(out, "s", {"a": 1}, {})
    (out / "t").mkdir()
    assert plan_stage(out, "s", {"a": 1}, {}).status == "resume"
    assert (out / "t").exists()
    again = plan_stage(out, "s", {"a": 9}, {})
    assert again.status == "redo" and not (out / "t").exists()


def test_redo_keeps_the_named_caches(tmp_path):
    out = tmp_path / "o"
    finish_stage(plan_stage(out, "s", {"a": 1}, {}, keep=("cache",)), {})
    (out / "cache").mkdir()
    (out / "cache" / "x.bin").write_bytes(b"1")
    (out / "report.md").write_text("old")
    redo = plan_stage(out, "s", {"a": 2}, {}, keep=("cache",))
    assert redo.status == "redo" and read_manifest(out) is None
    assert (out / "cache" / "x.bin").read_bytes() == b"1" and not (out / "report.md").exists()


def test_foreign_folder_is_not_wiped(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(UmarvelError, match="refusing to overwrite"):
        plan_stage(tmp_path, "s", {}, {})
    assert (tmp_path / "precious.txt").exists()


def test_other_stage_output_is_refused(tmp_path):
    finish_stage(plan_stage(tmp_path / "o", "embed", {}, {}), {})
    with pytest.raises(UmarvelError, match="stage 'embed'"):
        plan_stage(tmp_path / "o", "index", {}, {})


def test_fingerprint_of_stage_output_follows_its_manifest(tmp_path):
    out = tmp_path / "o"
    finish_stage(plan_stage(out, "s", {"a": 1}, {}), {"t": 1})
    first = fingerprint(out)
    assert first.startswith("sha256:")
    data = json.loads((out / "manifest.json").read_text())
    data["counts"]["t"] = 2
    (out / "manifest.json").write_text(json.dumps(data))
    assert fingerprint(out) != first


def test_fingerprint_of_raw_folder_changes_with_files(tmp_path):
    (tmp_path / "a.jsonl").write_text("1")
    f1 = fingerprint(tmp_path)
    (tmp_path / "b.jsonl").write_text("2")
    assert fingerprint(tmp_path) != f1


@pytest.mark.parametrize("bad", ["../x.png", "a/../../x.png", "/etc/passwd", "C:\\x.png"])
def test_path_traversal_rejected(bad):
    with pytest.raises(UmarvelError):
        safe_relative(bad, file="q.jsonl", line=3)


def test_relative_path_normalised():
    assert safe_relative("mbeir_images/./a/b.png") == "mbeir_images/a/b.png"
