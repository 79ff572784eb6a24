"""Issue 13 through the CLI: nothing lost, nothing unsafe.

Each test reproduces one finding with the command a user would run: `-` and non-regular targets,
incomplete upstream outputs, two writers on one folder, `--force` on folders umarvel did not write,
torn logs, deleted declared outputs, planted pickles and symlinks, pickled weights, decompression
bombs.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.commands.safety_data import (
    bomb_png,
    cli,
    cli_process,
    embeddings,
    error_line,
    folder_is_clean,
    png_bytes,
)
from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.trec import read_trec_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emb(tmp_path):
    return embeddings(tmp_path)


def _search(q, c, out, *extra):
    return cli(
        "search", "--queries", q, "--candidates", c, "--topk", 3, "--out", out, "--device", "cpu", *extra
    )


# -- 1. `-` is standard output/input; never rename over a non-regular file ----------------------------
def test_search_trec_dash_writes_stdout_and_eval_reads_run_from_stdin(emb, tmp_path, demo_tables):
    c, q = emb
    r = _search(q, c, tmp_path / "s", "--trec", "-")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 18 and all(" Q0 " in ln for ln in lines) and lines[0].startswith("q0 Q0 d")
    assert not (tmp_path / "-").exists()
    again = _search(q, c, tmp_path / "s", "--trec", "-")  # up to date: the run still reaches stdout
    assert [ln for ln in again.stdout.splitlines() if " Q0 " in ln] == lines

    qid = read_table(demo_tables, "queries", columns=["qid", "split"]).to_pylist()
    qid = next(r["qid"] for r in qid if r["split"] == "test")
    did = read_table(demo_tables, "candidates", columns=["did"]).column("did")[0].as_py()
    run = f"{qid} Q0 {did} 1 0.5 sys\n"
    r = cli("eval", "mbeir", "--data", demo_tables, "--run", "-", "--out", tmp_path / "e", input=run)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e" / "metrics.json").is_file()
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["inputs"]["run"].startswith("stdin:")


def test_trec_target_that_is_a_symlink_or_fifo_is_never_replaced(emb, tmp_path):
    c, q = emb
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "link.trec"
    link.symlink_to(victim)
    msg = error_line(_search(q, c, tmp_path / "s1", "--trec", link))
    assert "not a regular file" in msg and str(link) in msg
    assert link.is_symlink() and victim.read_text() == "keep me\n"
    assert folder_is_clean(tmp_path / "s1")

    fifo = tmp_path / "pipe.trec"
    os.mkfifo(fifo)
    msg = error_line(_search(q, c, tmp_path / "s2", "--trec", fifo))
    assert "not a regular file" in msg
    assert fifo.exists() and not fifo.is_file()


# -- 2. a stage reads only complete upstream outputs ----------------------------------------------------
def test_interrupted_or_altered_inputs_are_refused_naming_the_folder(emb, tmp_path, demo_tables):
    c, q = emb
    half = tmp_path / "half"
    shutil.copytree(c, half)
    (half / "manifest.json").unlink()
    (half / "_progress.json").write_text('{"key": "x", "stage": "embed"}\n')
    msg = error_line(cli("index", "--candidates", half, "--out", tmp_path / "i"))
    assert str(half) in msg and "unfinished" in msg
    msg = error_line(_search(q, half, tmp_path / "s"))
    assert str(half) in msg and "--candidates" in msg
    msg = error_line(_search(half, c, tmp_path / "s"))
    assert "--queries" in msg
    assert folder_is_clean(tmp_path / "i") and folder_is_clean(tmp_path / "s")

    grown = tmp_path / "grown"  # a manifest that counts fewer rows than the folder holds
    shutil.copytree(c, grown)
    manifest = json.loads((grown / "manifest.json").read_text())
    manifest["counts"] = {"embedded": 20}
    (grown / "manifest.json").write_text(json.dumps(manifest))
    msg = error_line(cli("index", "--candidates", grown, "--out", tmp_path / "i"))
    assert "40 rows but its manifest counted 20" in msg

    data = tmp_path / "tables"
    shutil.copytree(demo_tables, data)
    (data / "manifest.json").unlink()
    msg = error_line(
        cli("eval", "mbeir", "--data", data, "--run", tmp_path / "x.trec", "--out", tmp_path / "e")
    )
    assert str(data) in msg and "--data" in msg
    assert folder_is_clean(tmp_path / "e")


# -- 3. one writer per --out --------------------------------------------------------------------------
HELD_WRITER = textwrap.dedent(
    """
    import sys
    import umarvel_cli.data.pairs as pairs
    read_nli = pairs.read_nli
    def paused(path):  # the stage has planned (and locked) its folder; wait for the test
        print("ready", flush=True)
        sys.stdin.readline()
        yield from read_nli(path)
    pairs.read_nli = paused
    from umarvel_cli.app import app
    app(sys.argv[1:], prog_name="umarvel")
    """
)


def test_second_writer_of_a_folder_exits_2_naming_the_first_ones_pid(tmp_path):
    csv = tmp_path / "nli.csv"
    csv.write_text("sent0,sent1,hard_neg\n" + "".join(f"a{i},b{i},c{i}\n" for i in range(20)))
    out = tmp_path / "pairs"
    args = ["prepare", "pairs", "--input", str(csv), "--kind", "nli", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-c", HELD_WRITER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stdout.readline().strip() == "ready"
        second = cli_process(*args, env=env, timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and str(out) in lines[0], second.stderr
        assert not (out / "manifest.json").exists()
        first.stdin.write("go\n")
        first.stdin.flush()
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert read_table(out, "pairs").num_rows == 20
    # the lock went with its holder: the next writer gets through
    assert cli_process(*args, "--force", env=env, timeout=120).returncode == 0


# -- 4. --force clears only umarvel's own folders; --out never holds an input -----------------------------
def test_force_never_deletes_a_folder_umarvel_did_not_write(tmp_path, demo_root):
    h = tmp_path / "h"
    h.mkdir()
    (h / "thesis.txt").write_text("four years of work")
    msg = error_line(cli("prepare", "demo", "--out", h, "--force"))
    assert "not an umarvel output" in msg
    assert (h / "thesis.txt").read_text() == "four years of work"

    p = tmp_path / "P"
    p.mkdir()
    shutil.copy(demo_root / "pairs" / "nli.csv", p / "nli.csv")
    before = (p / "nli.csv").read_bytes()
    msg = error_line(
        cli("prepare", "pairs", "--input", p / "nli.csv", "--kind", "nli", "--out", p, "--force")
    )
    assert "holds an input" in msg and "--out" in msg
    assert (p / "nli.csv").read_bytes() == before


# -- 5 and 7. a torn log line is dropped; a planted pickle is never run ---------------------------------
@pytest.fixture(scope="module")
def killed_train(tmp_path_factory, demo_root):
    """A train output killed after its step-2 checkpoint (as `kill -9` leaves it), with its inputs."""
    from tests.models.tiny_models import tiny_model_dir
    from umarvel_cli.data.pairs import prepare_pairs
    from umarvel_cli.training.stages import StageRequest, run_stage

    base = tmp_path_factory.mktemp("killed")
    model = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")
    pairs = base / "pairs"
    prepare_pairs(demo_root / "pairs" / "nli.csv", pairs, "nli")
    sets = ["batch_size=8", "max_steps=3", "save_every=2"]

    def crash(step, row):
        if step == 2:
            raise KeyboardInterrupt

    out = base / "run"
    req = StageRequest("nli", model, out, None, pairs, "demo", None, sets, False, "cpu")
    with pytest.raises(KeyboardInterrupt):
        run_stage(req, on_step=crash)
    from umarvel_cli.artifacts.stage import abandon_stages

    abandon_stages(clean=False)  # what the CLI does on ctrl-C: keep the files, drop the lock
    assert (out / "checkpoints" / "step-00000002").is_dir() and not (out / "manifest.json").exists()
    args = [
        "train",
        "--stage",
        "nli",
        "--model",
        model,
        "--pairs",
        pairs,
        "--profile",
        "demo",
        "--device",
        "cpu",
    ]
    return out, [*args, *[a for s in sets for a in ("--set", s)]]


def test_torn_last_log_line_is_dropped_on_resume(killed_train, tmp_path):
    src, args = killed_train
    out = tmp_path / "run"
    shutil.copytree(src, out)
    with open(out / "train_log.jsonl", "a") as fh:
        fh.write('{"step": 3, "loss": 0.12')  # the kill hit mid-line
    r = cli(*args, "--out", out)
    assert r.exit_code == 0, r.output
    rows = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert (out / "manifest.json").is_file()


class _Planted:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


def test_planted_pickle_in_a_checkpoint_is_not_executed(killed_train, tmp_path):
    src, args = killed_train
    out = tmp_path / "run"
    shutil.copytree(src, out)
    marker = tmp_path / "marker"
    state = out / "checkpoints" / "step-00000002" / "state.pt"
    state.write_bytes(pickle.dumps({"step": _Planted(str(marker))}))
    r = cli(*args, "--out", out)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    msg = r.stderr.strip().splitlines()[-1]  # after the "resume" status line
    assert msg.startswith("error: ") and "state.pt" in msg and "refused" in msg
    assert not marker.exists()


# -- 6. a deleted declared output is made again ---------------------------------------------------------
def test_search_recreates_a_deleted_trec_file(emb, tmp_path):
    c, q = emb
    trec = tmp_path / "run.trec"
    assert _search(q, c, tmp_path / "s", "--trec", trec).exit_code == 0
    first = trec.read_text()
    trec.unlink()
    r = _search(q, c, tmp_path / "s", "--trec", trec)
    assert r.exit_code == 0 and "up to date" not in r.output
    assert trec.read_text() == first
    assert "up to date" in " ".join(_search(q, c, tmp_path / "s", "--trec", trec).output.split())


# -- 8. safetensors only -------------------------------------------------------------------------------
def test_pickled_model_weights_are_refused(tiny_models, demo_tables, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_models["tiny-qwen2-vl"], model)
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    out = tmp_path / "e"
    msg = error_line(cli("embed", "--model", model, "--data", demo_tables, "--side", "queries", "--out", out))
    assert "pickled" in msg and "safetensors" in msg
    assert folder_is_clean(out)


def test_pickled_adapter_is_refused(tiny_embedders, tmp_path):
    from umarvel_cli.errors import UmarvelError
    from umarvel_cli.models.lora import load_adapter

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UmarvelError, match="adapter weights are pickled"):
        load_adapter(tiny_embedders["tiny-qwen2-vl"], adapter)


# -- 9. symlinks do not escape the images root -----------------------------------------------------------
def test_image_symlink_out_of_the_root_is_refused(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    corpus = tmp_path / "corpus"
    (corpus / "images").mkdir(parents=True)
    (corpus / "images" / "ok.png").write_bytes(png_bytes())
    (corpus / "images" / "cat.png").symlink_to(secret)
    (corpus / "captions.jsonl").write_text(
        '{"image": "images/ok.png", "caption": "fine"}\n{"image": "images/cat.png", "caption": "a cat"}\n'
    )
    out = tmp_path / "out"
    args = ["prepare", "pairs", "--input", corpus / "captions.jsonl", "--kind", "caption"]
    msg = error_line(cli(*args, "--out", out))
    assert ":2:" in msg and "outside the images root" in msg
    assert folder_is_clean(out)


def test_resolve_image_follows_links_only_inside_the_root(tmp_path):
    from umarvel_cli.artifacts.paths import resolve_image
    from umarvel_cli.errors import UmarvelError

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "inside.png").symlink_to(root / "a" / "x.png")
    (root / "outside.png").symlink_to(tmp_path)
    assert resolve_image(root, "inside.png") == root / "inside.png"
    with pytest.raises(UmarvelError, match="outside the images root"):
        resolve_image(root, "outside.png")


# -- 10. temporary files never follow a planted symlink -------------------------------------------------
def test_planted_symlinks_at_old_fixed_temp_names_are_not_followed(emb, tmp_path):
    c, q = emb
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    trec = tmp_path / "run.trec"
    (tmp_path / "run.trec.tmp").symlink_to(victim)
    out = tmp_path / "s"
    assert _search(q, c, out, "--trec", trec).exit_code == 0
    # the search output is umarvel's now: plant links where the old code wrote its temporaries
    for name in ("manifest.json.tmp", "_progress.json.tmp"):
        (out / name).symlink_to(victim)
    (out / "run" / "part-00000.parquet.tmp").symlink_to(victim)
    r = _search(q, c, out, "--trec", trec, "--force")
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "keep me\n"
    assert read_trec_run(trec).num_rows == 18
    assert not list(tmp_path.glob(".run.trec.umarvel-tmp-*"))


def test_atomic_temp_file_is_created_exclusively_without_following_links(tmp_path):
    from umarvel_cli.artifacts.atomic import atomic_write_text, create_temp_file

    target = tmp_path / "t.json"
    tmp, fd = create_temp_file(target)
    os.close(fd)
    assert tmp.parent == tmp_path and tmp.name != target.name + ".tmp"
    tmp.unlink()
    atomic_write_text(target, "one")
    link = tmp_path / "l.json"
    link.symlink_to(target)
    from umarvel_cli.errors import UmarvelError

    with pytest.raises(UmarvelError, match="not a regular file"):
        atomic_write_text(link, "two")
    assert target.read_text() == "one"


# -- 11. decompression bombs ---------------------------------------------------------------------------
def test_huge_png_is_a_bad_input(tiny_models, tmp_path):
    from tests.embedding.tables import build_tables

    data = build_tables(tmp_path / "tables")
    for png in (data / "images").glob("img*.png"):
        png.write_bytes(bomb_png())
    out = tmp_path / "e"
    model = tiny_models["tiny-qwen2-vl"]
    msg = error_line(cli("embed", "--model", model, "--data", data, "--side", "queries", "--out", out))
    assert "20000" in msg or "pixels" in msg
    assert folder_is_clean(out)


# -- 12. the error boundary -----------------------------------------------------------------------------
def test_duplicate_run_rows_are_counted_once_with_a_warning_naming_the_line(demo_tables, tmp_path):
    rows = read_table(demo_tables, "queries", columns=["qid", "split"]).to_pylist()
    qid = next(r["qid"] for r in rows if r["split"] == "test")
    did = read_table(demo_tables, "candidates", columns=["did"]).column("did")[0].as_py()
    run = tmp_path / "dup.trec"
    run.write_text(f"{qid} Q0 {did} 1 0.9 s\n{qid} Q0 {did} 2 0.8 s\n")
    r = cli("eval", "mbeir", "--data", demo_tables, "--run", run, "--out", tmp_path / "e")
    assert r.exit_code == 0, r.output
    warning = " ".join(r.stderr.split())
    assert f"{run}:2" in warning and "1 repeated (qid, did) row" in warning
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["counts"]["run_rows"] == 1


def test_debug_shows_the_traceback_and_still_cleans_up(tmp_path):
    from umarvel_cli.errors import UmarvelError

    out = tmp_path / "i"
    r = cli("--debug", "index", "--candidates", tmp_path / "nope", "--out", out)
    assert isinstance(r.exception, UmarvelError)
    assert folder_is_clean(out)


def test_trec_to_a_closed_pipe_stops_quietly(emb, tmp_path):
    """`umarvel search --trec - | head -0`: the reader is gone before the run is written; no traceback."""
    c, q = emb
    args = [sys.executable, "-m", "umarvel_cli", "search", "--queries", str(q), "--candidates", str(c)]
    args += ["--topk", "3", "--out", str(tmp_path / "s"), "--device", "cpu", "--trec", "-"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # nobody reads standard output
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
