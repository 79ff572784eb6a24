"""`umarvel mine` end to end on the tiny demo tables with a tiny random model."""

from __future__ import annotations

import json
import shutil

import pyarrow.compute as pc
import pytest
import typer
from typer.testing import CliRunner

from tests.models.tiny_models import tiny_model_dir
from tests.thread_ranks import run_as_ranks
from umarvel_cli.app import app
from umarvel_cli.artifacts import read_manifest, read_table
from umarvel_cli.data.mbeir.tasks import load_mbeir_spec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.mining import make_settings, run_mine
from umarvel_cli.mining import stage as mine_stage
from umarvel_cli.mining.filters import FILTERS, FilterSettings
from umarvel_cli.mining.pools import SHARED_POOL_DATASETS
from umarvel_cli.retrieval.embeddings import open_embeddings

SPEC = load_mbeir_spec()
K = 5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-models", "tiny-qwen2-vl")


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mine-emb")


@pytest.fixture(scope="module")
def local_run(model, demo_tables, emb_dir, tmp_path_factory):
    settings = make_settings(topk=20, rank_range="1-20", random_tasks="mscoco_task0", seed=3)
    out = tmp_path_factory.mktemp("mine-local") / "out"
    manifest = run_mine(model, demo_tables, out, settings, embeddings=emb_dir, query_block=7)
    return out, settings, manifest


def _vectors(path):
    ids, x = open_embeddings(path).read()
    return {d: x[i] for i, d in enumerate(ids.to_pylist())}


def test_local_rows_obey_every_rule(local_run, demo_tables, emb_dir):
    out, _, manifest = local_run
    mined = read_table(out, "mined").to_pylist()
    queries = read_table(demo_tables, "queries").filter(
        pc.equal(read_table(demo_tables, "queries")["split"], "train")
    )
    assert [r["qid"] for r in mined if r["source"] == "topk"] + [
        r["qid"] for r in mined if r["source"] == "random"
    ] == [r["qid"] for r in mined]
    assert sorted(r["qid"] for r in mined) == sorted(queries["qid"].to_pylist())
    cands = {r["did"]: r for r in read_table(demo_tables, "candidates").to_pylist()}
    union = set(read_table(demo_tables, "pools", filters=[("pool", "=", "union_train")])["did"].to_pylist())
    qv, cv = _vectors(emb_dir / "queries-train"), _vectors(emb_dir / "pool-union_train")
    for r in mined:
        task = SPEC.task(r["task"])
        negs = r["neg_ids"]
        assert len(negs) == len(r["neg_scores"]) == len(r["neg_ranks"]) <= K
        assert len(set(negs)) == len(negs) and not set(negs) & set(r["pos_ids"]) and set(negs) <= union
        pos_content = {(cands[p]["text"], cands[p]["image"]) for p in r["pos_ids"]}
        assert not any((cands[d]["text"], cands[d]["image"]) in pos_content for d in negs)
        for d, s in zip(negs, r["neg_scores"], strict=True):
            assert s == pytest.approx(float(qv[r["qid"]] @ cv[d]), abs=1e-5)
        best = max(float(qv[r["qid"]] @ cv[p]) for p in r["pos_ids"] if p in cv)
        assert r["pos_score"] == pytest.approx(best, abs=1e-5)
        if r["source"] == "random":
            assert r["task"] == "mscoco_task0" and set(r["neg_ranks"]) <= {0} and r["first_pos_rank"] is None
            assert len(negs) == K
            continue
        assert r["neg_ranks"] == sorted(r["neg_ranks"]) and all(1 <= x <= 20 for x in r["neg_ranks"])
        assert all(
            s <= r["pos_score"] + 1e-6 for s in r["neg_scores"]
        )  # default margin 0: nothing above the positive
        groups = SHARED_POOL_DATASETS.get(task.dataset_id, (task.dataset_id,))
        for d in negs + r["top_neg_ids"]:  # the rebuilt local pool: the task's dataset(s), its modality
            assert int(d.split(":")[0]) in groups and cands[d]["modality"] == task.cand_modality
        assert (r["drop_positive"] >= 1) == (r["first_pos_rank"] is not None)
        assert sum(r[f"drop_{f}"] for f in FILTERS) + len(negs) <= 20
    assert manifest.counts["queries"] == len(mined)
    assert manifest.params["filters"]["rank_range"] == [1, 20]


def test_report_matches_the_table(local_run):
    out, _, manifest = local_run
    mined = read_table(out, "mined").to_pylist()
    report = json.loads((out / "report.json").read_text())
    assert report["queries"] == len(mined)
    assert report["negatives"] == sum(len(r["neg_ids"]) for r in mined)
    assert report["short"] == sum(len(r["neg_ids"]) < K for r in mined) == manifest.counts["short"]
    assert report["drops"]["margin"] == sum(r["drop_margin"] for r in mined)
    ranked = [r for r in mined if r["source"] == "topk"]
    assert sum(report["first_pos_rank"].values()) == len(ranked)
    assert report["first_pos_rank"]["not in top-k"] == sum(r["first_pos_rank"] is None for r in ranked)
    nd = report["near_duplicates"]  # the demo's marks were found through the tables' images_root
    assert nd["filtered"]["negatives"] == report["negatives"]
    assert nd["unfiltered"]["negatives"] == sum(len(r["top_neg_ids"]) for r in mined)
    for name in ("first_pos_rank.png", "filter_drops.png", "scores.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    assert "Planted near-duplicates" in text and "mscoco_task0 | random" in text


def test_rerun_is_up_to_date_and_resume_gives_the_same_table(
    local_run, model, demo_tables, emb_dir, tmp_path, monkeypatch
):
    out, settings, manifest = local_run
    again = run_mine(model, demo_tables, out, settings, embeddings=emb_dir, query_block=7)
    assert again.created == manifest.created

    calls = {"n": 0}
    real = mine_stage.mine_unit

    def crash_on_fourth(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **kw)

    target = tmp_path / "resumed"
    monkeypatch.setattr(mine_stage, "mine_unit", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_mine(model, demo_tables, target, settings, embeddings=emb_dir, query_block=7)
    assert read_manifest(target) is None and len(list((target / "mined").glob("part-*.parquet"))) == 3
    monkeypatch.setattr(mine_stage, "mine_unit", real)
    calls["n"] = 0
    resumed = run_mine(model, demo_tables, target, settings, embeddings=emb_dir, query_block=7)
    assert read_table(target, "mined").equals(read_table(out, "mined"))
    assert resumed.counts == manifest.counts


def test_global_same_modality_and_random_sampling(model, demo_tables, emb_dir, tmp_path):
    settings = make_settings(pool="global", topk=30, rank_range="3-30", num_negatives=4, same_modality=True,
                             sample="random", max_score_ratio=0.95, margin=-1.0, seed=1)  # fmt: skip
    run_mine(model, demo_tables, tmp_path / "g", settings, embeddings=emb_dir)
    cands = {r["did"]: r["modality"] for r in read_table(demo_tables, "candidates").to_pylist()}
    rows = read_table(tmp_path / "g", "mined").to_pylist()
    union = read_table(demo_tables, "pools", filters=[("pool", "=", "union_train")])["did"]
    assert {r["source"] for r in rows} == {"topk"}
    for r in rows:
        assert all(cands[d] == SPEC.task(r["task"]).cand_modality for d in r["neg_ids"])
        assert all(3 <= x <= 30 for x in r["neg_ranks"]) and len(r["neg_ids"]) <= 4
        if r["pos_score"] is not None:
            assert all(s <= 0.95 * r["pos_score"] + 1e-6 for s in r["neg_scores"])
        assert r["candidates"] == len(union)
    assert sum(r["drop_modality"] for r in rows) > 0  # the union pool mixes modalities


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank_range": "20-5"}, "inverted"),
        ({"rank_range": "0-5"}, "below rank 1"),
        ({"rank_range": "five"}, "not a rank window"),
        ({"rank_range": "1-200"}, "past --topk"),
        ({"max_score_ratio": 0.0}, "outside (0, 1]"),
        ({"max_score_ratio": 1.5}, "outside (0, 1]"),
        ({"num_negatives": 6, "rank_range": "1-5"}, "more than the window"),
        ({"pool": "nearby"}, "unknown --pool"),
        ({"random_tasks": "mscoco_task9"}, "unknown task"),
        ({"sample": "bottom"}, "unknown --sample"),
    ],
)
def test_bad_options_fail_before_anything_is_written(options, message):
    with pytest.raises(
        UmarvelError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
    ):
        make_settings(**options)


def test_bad_inputs_write_nothing(model, demo_tables, tmp_path):
    settings = make_settings()
    unfinished = tmp_path / "unfinished"
    shutil.copytree(demo_tables, unfinished)
    (unfinished / "manifest.json").unlink()
    no_config = tmp_path / "model-copy"
    shutil.copytree(model, no_config)
    (no_config / "umarvel.json").write_text('{"family": "qwen2-vl", "pooling": "sideways"}')
    interrupted = tmp_path / "train-out"
    shutil.copytree(model, interrupted / "model")
    (interrupted / "_progress.json").write_text("{}")
    cases = [
        (model, unfinished, settings, "no manifest.json"),
        (interrupted / "model", demo_tables, settings, "the stage that writes this model was interrupted"),
        (no_config, demo_tables, settings, "unknown pooling"),
        (tmp_path / "nope", demo_tables, settings, "model folder not found"),
        (model, demo_tables, make_settings(split="dev"), "pool 'union_dev' does not exist"),
    ]
    for i, (m, d, s, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(UmarvelError, match=message):
            run_mine(m, d, out, s, embeddings=tmp_path / f"emb{i}")
        assert not out.exists() and not (tmp_path / f"emb{i}").exists()


def test_cli_one_line_exit_2_and_alias(model, demo_tables, tmp_path):
    runner = CliRunner()
    for name in ("mine", "mine-negatives"):
        res = runner.invoke(
            app,
            [
                name,
                "--model",
                str(model),
                "--data",
                str(demo_tables),
                "--out",
                str(tmp_path / "o"),
                "--range",
                "9-3",
            ],
        )
        assert res.exit_code == 2
        assert res.output.strip().splitlines()[-1].startswith("error: field '--range'")
        assert not (tmp_path / "o").exists()
    assert "--max-score-ratio" in runner.invoke(app, ["mine", "--help"]).output


def test_command_defaults_are_the_filter_defaults():
    """`umarvel mine` with no filter options mines with FilterSettings' defaults: NV-Retriever's
    0.95 ratio and margin 0 (the choice measured in docs/benchmarks.md)."""
    from umarvel_cli.mining import optional_number

    cmd = typer.main.get_command(app).commands["mine"]
    default = {p.name: p.default for p in cmd.params}
    from_cli = make_settings(
        num_negatives=default["num_negatives"],
        rank_range=default["rank_range"],
        margin=optional_number(default["margin"], "--margin"),
        max_score_ratio=optional_number(default["max_score_ratio"], "--max-score-ratio"),
        max_score=optional_number(default["max_score"], "--max-score"),
        same_modality=default["same_modality"],
        sample=default["sample"],
    )
    assert from_cli.filters == make_settings().filters == FilterSettings()
    assert (FilterSettings().margin, FilterSettings().max_score_ratio) == (0.0, 0.95)


def test_search_runs_on_the_rank_gpu_when_torch_sees_one(
    local_run, model, demo_tables, emb_dir, monkeypatch, tmp_path
):
    """On this CPU box the search ran on the CPU (and the manifest says so); when torch sees a GPU,
    the units get the rank's own `cuda:LOCAL_RANK` (caught here before any tensor moves)."""
    import torch

    from umarvel_cli.distributed import DistContext

    _, settings, manifest = local_run
    assert manifest.extra["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    seen = {}

    def stop(*args, **kwargs):
        seen["device"] = kwargs["device"]
        raise RuntimeError("stop before searching")

    monkeypatch.setattr(mine_stage, "write_units", stop)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # the embeddings are up to date, so no model runs before the units
    with pytest.raises(RuntimeError, match="stop before searching"):
        run_mine(model, demo_tables, tmp_path / "o", settings, embeddings=emb_dir, query_block=7,
                 ctx=DistContext(local_rank=3))  # fmt: skip
    assert seen == {"device": "cuda:3"}


def test_thresholds_can_be_switched_off_on_the_command_line(model, demo_tables, tmp_path):
    from umarvel_cli.mining import optional_number

    assert optional_number("off", "--margin") is None and optional_number("0.95", "--x") == 0.95
    res = CliRunner().invoke(
        app,
        [
            "mine",
            "--model",
            str(model),
            "--data",
            str(demo_tables),
            "--out",
            str(tmp_path / "o"),
            "--margin",
            "abc",
        ],
    )
    assert res.exit_code == 2 and "--margin 'abc' is not a number" in res.output
    assert not (tmp_path / "o").exists()


def test_rank_shares_merge_to_the_single_process_table(local_run, model, demo_tables, emb_dir, tmp_path):
    """Two ranks (threads with a barrier, as under torchrun) give the single-process table, though
    their embeddings (made by two ranks too) hold the pool in another order."""
    out, settings, manifest = local_run
    run_as_ranks(
        2,
        lambda ctx: run_mine(
            model,
            demo_tables,
            tmp_path / "multi",
            settings,
            embeddings=tmp_path / "emb",
            query_block=7,
            ctx=ctx,
        ),
    )
    got, want = read_table(tmp_path / "multi", "mined").to_pylist(), read_table(out, "mined").to_pylist()
    floats = ("pos_score", "neg_scores")  # two BLAS calls at once may round the last bit differently
    diff = [
        (x["qid"], x["source"], k, x[k], y[k])
        for x, y in zip(got, want, strict=True)
        for k in x
        if k not in floats and x[k] != y[k]
    ]
    assert not diff, diff[:5]
    for x, y in zip(got, want, strict=True):
        assert x["neg_scores"] == pytest.approx(y["neg_scores"], abs=1e-5)
        assert (x["pos_score"] is None) == (y["pos_score"] is None)
        assert x["pos_score"] is None or x["pos_score"] == pytest.approx(y["pos_score"], abs=1e-5)
    pool = "pool-union_train"
    ids_multi = open_embeddings(tmp_path / "emb" / pool).read()[0].to_pylist()
    ids_single = open_embeddings(emb_dir / pool).read()[0].to_pylist()
    assert ids_multi != ids_single and sorted(ids_multi) == sorted(ids_single)
    assert not (tmp_path / "multi" / mine_stage.RANKS_DIR).exists()
    assert read_manifest(tmp_path / "multi").counts == manifest.counts
    assert (tmp_path / "multi" / "report.md").read_text() == (out / "report.md").read_text()


def test_cli_mines_and_reports(model, demo_tables, emb_dir, tmp_path):
    out = tmp_path / "cli"
    args = [
        "--model",
        str(model),
        "--data",
        str(demo_tables),
        "--out",
        str(out),
        "--embeddings",
        str(emb_dir),
    ]
    args += ["--pool", "global", "--topk", "20", "--range", "2-20", "--num-negatives", "3", "--margin", "off"]
    res = CliRunner().invoke(
        app, ["mine-negatives", *args, "--max-score-ratio", "0.95", "--sample", "random"]
    )
    assert res.exit_code == 0, res.output
    manifest = read_manifest(out)
    assert res.stdout.strip().endswith(f"short of 3 -> {out}/report.md")
    assert manifest.params["filters"] == {
        "num_negatives": 3, "rank_range": [2, 20], "margin": None, "max_score_ratio": 0.95, "max_score": 1.0,
        "same_modality": False, "sample": "random",
    }  # fmt: skip
    assert manifest.params["pool"] == "global" and manifest.extra["pool_name"] == "union_train"
    again = CliRunner().invoke(app, ["mine", *args, "--max-score-ratio", "0.95", "--sample", "random"])
    assert again.exit_code == 0 and read_manifest(out).created == manifest.created  # up to date


def test_eval_search_of_train_local_pools_is_the_rebuilt_pools_mine_searches(
    local_run, model, demo_tables, tmp_path
):
    """`rerank score --retriever --split train --pool local` (the distillation lists as released) and
    `eval` search each train query's rebuilt local pool: the same pool `mine --pool local` searched."""
    from umarvel_cli.evaluation.model_search import search_with_model
    from umarvel_cli.evaluation.prepared import load_split

    out, _, _ = local_run
    search_with_model(
        model, load_split(demo_tables, "train", SPEC), SPEC, "local", tmp_path, topk=20, device="cpu"
    )
    run: dict[str, list[str]] = {}
    for r in sorted(read_table(tmp_path, "run").to_pylist(), key=lambda r: r["rank"]):
        run.setdefault(r["qid"], []).append(r["did"])
    cands = {r["did"]: r["modality"] for r in read_table(demo_tables, "candidates").to_pylist()}
    mined = read_table(out, "mined").to_pylist()
    assert set(run) == {r["qid"] for r in mined}
    for r in mined:
        task = SPEC.task(r["task"])
        groups = SHARED_POOL_DATASETS.get(task.dataset_id, (task.dataset_id,))
        assert len(run[r["qid"]]) == 20
        assert all(int(d.split(":")[0]) in groups and cands[d] == task.cand_modality for d in run[r["qid"]])
        if r["source"] == "topk":  # mine's unfiltered negatives come from the same top 20
            assert set(r["top_neg_ids"]) <= set(run[r["qid"]])
