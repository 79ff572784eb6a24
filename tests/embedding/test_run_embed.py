"""`embed`: ids and vectors, pools, resume after a kill, up to date, bad inputs, rank shares, CLI."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.embedding.tables import build_tables
from tests.thread_ranks import run_as_ranks
from umarvel_cli.app import app
from umarvel_cli.artifacts import list_shards, read_manifest, read_table
from umarvel_cli.distributed import rank_of
from umarvel_cli.embedding import run as run_module
from umarvel_cli.embedding import run_embed
from umarvel_cli.embedding.sources import load_records
from umarvel_cli.errors import UmarvelError

MODEL = "tiny-qwen2-vl"


def _read(out) -> dict[str, np.ndarray]:
    table = read_table(out, "embeddings")
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "an id appears twice"
    vecs = np.asarray(table["embedding"].to_pylist(), dtype=np.float32)
    return dict(zip(ids, vecs, strict=True))


def test_queries_are_the_split_with_instructions_and_match_encode(
    tiny_models, tiny_embedders, embed_tables, tmp_path
):
    m = run_embed(
        tiny_models[MODEL], embed_tables, "test", "queries", tmp_path / "q", shard_size=3, batch_size=2
    )
    got = _read(tmp_path / "q")
    assert sorted(got) == ["8:5", "8:6", "9:1", "9:2", "9:3", "9:4", "9:7"]
    assert m.counts == {"embedded": 7, "skipped": 0}
    assert m.extra["dim"] == 64 and m.extra["side"] == "queries" and m.extra["split"] == "test"
    assert len(list((tmp_path / "q" / "embeddings").glob("part-*.parquet"))) == 3  # 3 + 3 + 1
    records = load_records(embed_tables, "test", "queries")
    by_id = {r.id: r for r in records}
    assert by_id["9:1"].instruction == "Find me an everyday image that matches the given caption."
    assert by_id["9:3"].instruction == "Find an image caption describing the following everyday image."
    assert by_id["8:5"].instruction == "Retrieve an image with the described changes."
    expected = tiny_embedders[MODEL].encode(records, role="query")
    for r, v in zip(records, expected, strict=True):
        np.testing.assert_allclose(got[r.id], v, atol=1e-5)


def test_candidates_restricted_to_a_pool_and_fp16(tiny_models, tiny_embedders, embed_tables, tmp_path):
    m = run_embed(
        tiny_models[MODEL],
        embed_tables,
        "test",
        "candidates",
        tmp_path / "c",
        pool="mscoco_task0_test",
        dtype="float16",
    )
    table = read_table(tmp_path / "c", "embeddings")
    assert table.schema.field("embedding").type == pa.list_(pa.float16(), 64)
    for shard in list_shards(tmp_path / "c", "embeddings"):  # floats: stored uncompressed (read 2x faster)
        meta = pq.ParquetFile(shard).metadata.row_group(0)
        assert {meta.column(i).compression for i in range(meta.num_columns)} == {"UNCOMPRESSED"}
    got = _read(tmp_path / "c")
    assert sorted(got) == ["9:100", "9:101", "9:104", "9:105"] and m.extra["pool"] == "mscoco_task0_test"
    recs = load_records(embed_tables, "test", "candidates", "mscoco_task0_test")
    expected = tiny_embedders[MODEL].encode(recs, role="candidate")
    for r, v in zip(recs, expected, strict=True):
        np.testing.assert_allclose(got[r.id], v, atol=2e-3)
    with pytest.raises(UmarvelError, match="unknown pool 'nope'"):
        run_embed(tiny_models[MODEL], embed_tables, "test", "candidates", tmp_path / "c2", pool="nope")


def test_second_run_is_up_to_date_and_force_redoes(tiny_models, embed_tables, tmp_path):
    out = tmp_path / "q"
    run_embed(tiny_models[MODEL], embed_tables, "val", "queries", out)
    shard = out / "embeddings" / "part-00000.parquet"
    before = shard.stat().st_mtime_ns
    run_embed(
        tiny_models[MODEL], embed_tables, "val", "queries", out, batch_size=1
    )  # batch size is not a param
    assert shard.stat().st_mtime_ns == before
    run_embed(tiny_models[MODEL], embed_tables, "val", "queries", out, force=True)
    assert shard.stat().st_mtime_ns != before


class _Killed(Exception):
    pass


@pytest.mark.parametrize("where", ["after_state", "before_state"])
def test_kill_and_resume_equals_an_uninterrupted_run(where, tiny_models, embed_tables, tmp_path, monkeypatch):
    """Killed after 2 finished chunks (or right after a shard was written but before its state)."""
    clean = tmp_path / "clean"
    run_embed(tiny_models[MODEL], embed_tables, "test", "candidates", clean, shard_size=2)
    out = tmp_path / "killed"
    real_save = run_module.ShareState.save
    calls = {"n": 0}

    def dying_save(self, root):
        calls["n"] += 1
        if calls["n"] == 3 and where == "before_state":
            raise _Killed  # shard 3 is on disk, its state is not
        real_save(self, root)
        if calls["n"] == 2 and where == "after_state":
            raise _Killed

    monkeypatch.setattr(run_module.ShareState, "save", dying_save)
    with pytest.raises(_Killed):
        run_embed(tiny_models[MODEL], embed_tables, "test", "candidates", out, shard_size=2)
    assert read_manifest(out) is None
    n_shards = len(list((out / "embeddings").glob("part-*.parquet")))
    assert n_shards == (2 if where == "after_state" else 3)
    monkeypatch.setattr(run_module.ShareState, "save", real_save)

    encoded = []
    real_encode = run_module.format_chunk
    monkeypatch.setattr(
        run_module,
        "format_chunk",
        lambda f, recs, *a: encoded.extend(r.id for r in recs) or real_encode(f, recs, *a),
    )
    m = run_embed(tiny_models[MODEL], embed_tables, "test", "candidates", out, shard_size=2)
    assert len(encoded) == 4  # only the two unfinished chunks were encoded again
    assert m.counts["embedded"] == 8
    a, b = _read(clean), _read(out)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not (out / run_module.STATE_FILE).exists()


def test_bad_inputs_fail_with_one_line_or_are_counted_skips(tiny_models, tmp_path):
    data = build_tables(tmp_path / "bad", bad=True)
    with pytest.raises(UmarvelError) as e:
        run_embed(tiny_models[MODEL], data, "test", "candidates", tmp_path / "fail")
    assert "image file not found (item 9:900)" in str(e.value) and "missing.png" in str(e.value)
    assert read_manifest(tmp_path / "fail") is None
    m = run_embed(
        tiny_models[MODEL], data, "test", "candidates", tmp_path / "skip", on_error="skip", shard_size=3
    )
    assert m.counts == {"embedded": 8, "skipped": 3}
    reasons = dict(m.extra["skipped"])
    assert "image file not found" in reasons["9:900"]
    assert "unreadable image" in reasons["9:901"]
    assert "no text and no image" in reasons["9:902"]
    assert sorted(_read(tmp_path / "skip")) == [f"9:10{i}" for i in range(8)]


def test_rank_shares_merge_to_the_single_process_vectors(tiny_models, embed_tables, tmp_path):
    single = tmp_path / "single"
    run_embed(tiny_models[MODEL], embed_tables, "test", "candidates", single, shard_size=2)
    world = 2
    run_as_ranks(
        world,
        lambda ctx: run_embed(
            tiny_models[MODEL], embed_tables, "test", "candidates", tmp_path / "multi", shard_size=2, ctx=ctx
        ),
    )
    ids = [f"9:10{i}" for i in range(8)]
    assert {rank_of(i, world) for i in ids} == {0, 1}  # both ranks have work
    a, b = _read(single), _read(tmp_path / "multi")
    assert sorted(a) == sorted(b) == ids
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6)
    assert not (tmp_path / "multi" / run_module.RANKS_DIR).exists()
    assert read_manifest(tmp_path / "multi").counts["embedded"] == 8


def test_cli_embed_and_one_line_errors(tiny_models, embed_tables, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["embed", "--model", str(tiny_models[MODEL]), "--data", str(embed_tables), "--split", "test"]
    res = runner.invoke(app, [*args, "--side", "queries", "--out", str(out), "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    assert "7 queries embedded" in res.output
    assert len(_read(out)) == 7
    res = runner.invoke(app, [*args, "--side", "queries", "--out", str(out), "--batch-size", "3"])
    assert res.exit_code == 0 and f"embed: {out} is up to date" in res.stderr
    # the old spelling of --rows-per-shard still works (a note says so); --device picks the CPU
    res = runner.invoke(
        app,
        [*args, "--side", "queries", "--out", str(tmp_path / "z"), "--shard-size", "4", "--device", "cpu"],
    )
    assert res.exit_code == 0 and "note: --shard-size is deprecated; use --rows-per-shard" in res.stderr
    assert len(list((tmp_path / "z" / "embeddings").glob("part-*.parquet"))) == 2
    res = runner.invoke(app, [*args, "--side", "documents", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "'documents' is not one of 'queries', 'candidates'" in res.output
    assert not (tmp_path / "x").exists()  # nothing half-written
    res = runner.invoke(app, [*args, "--side", "queries", "--dtype", "int8", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "'int8' is not one of 'float16', 'float32'" in res.output


def test_a_corrupt_image_body_fails_the_run_when_decoded_per_batch(tiny_models, tmp_path):
    """on_error=fail reads only headers while formatting; a body that does not decode fails later,
    with the same one-line error and no manifest."""
    data = build_tables(tmp_path / "data")
    for png in (data / "images").glob("*.png"):
        raw = png.read_bytes()
        png.write_bytes(raw[: len(raw) * 2 // 3])  # the header still reads
    with pytest.raises(UmarvelError, match=r"unreadable image \(item .*\)"):
        run_embed(tiny_models[MODEL], data, "test", "candidates", tmp_path / "out")
    assert read_manifest(tmp_path / "out") is None


def test_cli_embed_takes_a_train_output_as_model(tiny_models, embed_tables, tmp_path):
    """`--model` may name a finished train output (its model/), as `train` and `eval` accept it."""
    import shutil

    from umarvel_cli.artifacts.stage import finish_stage, plan_stage

    trained = tmp_path / "train-out"
    plan = plan_stage(trained, "train-nli", {}, {})
    shutil.copytree(tiny_models[MODEL], trained / "model")
    finish_stage(plan, {"steps": 0})
    args = ["embed", "--data", str(embed_tables), "--split", "test", "--side", "queries", "--batch-size", "3"]
    res = CliRunner().invoke(app, [*args, "--model", str(trained), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "a").extra["model"] == str((trained / "model").resolve())
    direct = run_embed(tiny_models[MODEL], embed_tables, "test", "queries", tmp_path / "b", batch_size=3)
    got, want = _read(tmp_path / "a"), _read(tmp_path / "b")
    assert sorted(got) == sorted(want) and direct.counts["embedded"] == 7
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v)
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, [*args, "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "not a model folder" in res.output and "\n" not in res.output.strip()
