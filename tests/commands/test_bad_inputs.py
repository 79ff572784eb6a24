"""Bad inputs across prepare, embed, index, search, eval and train, through the CLI.

Each case must end in exit status 2, exactly one line on stderr (`error: ...`, naming what is
wrong) and nothing left in `--out`: no `_progress.json`, no `config.yaml`, no shard.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.commands.safety_data import bomb_png, cli, embeddings, error_line, folder_is_clean


@dataclass
class Inputs:
    """What the cases are built from (shared, read-only) and a fresh folder per case."""

    base: dict[str, Path]
    tmp: Path

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def __getattr__(self, name: str) -> Path:
        return self.base[name]

    def copy(self, name: str, **kw) -> Path:
        dst = self.tmp / name
        shutil.copytree(self.base[name], dst, **kw)
        return dst

    def write(self, name: str, data: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return p

    def unfinished(self, name: str) -> Path:
        """A copy of an output as a killed run leaves it: no manifest, a progress marker."""
        dst = self.copy(name)
        (dst / "manifest.json").unlink()
        (dst / "_progress.json").write_text('{"key": "x"}\n')
        return dst

    def corrupt_shard(self, name: str, table: str) -> Path:
        dst = self.copy(name)
        shard = sorted((dst / table).glob("part-*.parquet"))[0]
        shard.write_bytes(shard.read_bytes()[:40])
        return dst


@pytest.fixture(scope="module")
def base(tmp_path_factory, demo_root, demo_tables, tiny_models) -> dict[str, Path]:
    from umarvel_cli.data.pairs import prepare_pairs

    root = tmp_path_factory.mktemp("bad-inputs")
    c, q = embeddings(root)
    search_out = root / "search"
    assert cli("search", "--queries", q, "--candidates", c, "--topk", 3, "--out", search_out).exit_code == 0
    mbeir = root / "mbeir"
    shutil.copytree(demo_root, mbeir, ignore=shutil.ignore_patterns("mbeir_images", "pairs"))
    pairs = root / "pairs"
    prepare_pairs(demo_root / "pairs" / "nli.csv", pairs, "nli")
    return {
        "c": c,
        "q": q,
        "search": search_out,
        "mbeir": mbeir,
        "tables": demo_tables,
        "model": tiny_models["tiny-qwen2-vl"],
        "pairs": pairs,
        "demo": demo_root,
    }


def _test_qid(x: Inputs) -> str:
    from umarvel_cli.artifacts import read_table

    rows = read_table(x.tables, "queries", columns=["qid", "split"]).to_pylist()
    return next(r["qid"] for r in rows if r["split"] == "test")


# -- argument builders --------------------------------------------------------------------------------
def pairs_nli(path: Callable[[Inputs], Path]):
    return lambda x: ["prepare", "pairs", "--input", path(x), "--kind", "nli", "--out", x.out]


def pairs_caption(text: str | bytes, name: str = "c/captions.jsonl"):
    def build(x: Inputs):
        (x.tmp / "c").mkdir(exist_ok=True)
        (x.tmp / "c" / "ok.png").write_bytes(bomb_png(4, 3))
        return ["prepare", "pairs", "--input", x.write(name, text), "--kind", "caption", "--out", x.out]

    return build


def mbeir(edit: Callable[[Path], None], *extra: str):
    def build(x: Inputs):
        root = x.copy("mbeir")
        edit(root)
        return ["prepare", "mbeir", "--root", root, "--out", x.out, "--split", "test", *extra]

    return build


def _query_file(root: Path) -> Path:
    return root / "query" / "test" / "mbeir_mscoco_task0_test.jsonl"


def _append_query(text: bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with open(_query_file(root), "ab") as fh:
            fh.write(text)

    return edit


def embed(model=lambda x: x.model, data=lambda x: x.tables, *extra: str, side: str = "queries"):
    return lambda x: ["embed", "--model", model(x), "--data", data(x), "--side", side, "--out", x.out, *extra]


def broken_model(edit: Callable[[Path], None]):
    def model(x: Inputs) -> Path:
        m = x.copy("model")
        edit(m)
        return m

    return model


def _truncate(m: Path) -> None:
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:5000])


def _bomb_tables(x: Inputs) -> Path:
    from tests.embedding.tables import build_tables

    data = build_tables(x.tmp / "tables")
    for png in (data / "images").glob("img*.png"):
        png.write_bytes(bomb_png())
    return data


def search(queries=lambda x: x.q, extra=lambda x: []):
    return lambda x: ["search", "--queries", queries(x), "--out", x.out, "--device", "cpu", *extra(x)]


def eval_run(text: str | bytes | Callable[[Inputs], str], *extra: str):
    def build(x: Inputs):
        body = text(x) if callable(text) else text
        run = x.write("run.trec", body)
        return ["eval", "mbeir", "--data", x.tables, "--run", run, "--out", x.out, *extra]

    return build


def train(*extra, pairs=lambda x: x.pairs, model=lambda x: x.model):
    def build(x: Inputs):
        args = ["train", "--stage", "nli", "--model", model(x), "--pairs", pairs(x), "--out", x.out]
        return [*args, "--profile", "demo", "--device", "cpu", *(e(x) if callable(e) else e for e in extra)]

    return build


def _fill(n: int) -> str:
    return "sent0,sent1,hard_neg\n" + "".join(f"a{i},b{i},c{i}\n" for i in range(n))


# -- the cases: (name, build args, text the one line must hold) -----------------------------------------------
CASES: list[tuple[str, Callable[[Inputs], list], str]] = [
    # prepare pairs
    ("pairs: input missing", pairs_nli(lambda x: x.tmp / "nope.csv"), "does not exist"),
    ("pairs: 0-byte csv", pairs_nli(lambda x: x.write("e.csv", b"")), "header"),
    ("pairs: wrong header", pairs_nli(lambda x: x.write("h.csv", "a,b\n1,2\n")), "sent0"),
    ("pairs: invalid UTF-8", pairs_nli(lambda x: x.write("u.csv", _fill(2).encode() + b"x\xff,y,z\n")), ":4"),
    (
        "pairs: csv field > 131072",
        pairs_nli(lambda x: x.write("l.csv", _fill(1) + "x" * 140_000 + ",b,c\n")),
        ":3",
    ),
    ("pairs: empty sentence", pairs_nli(lambda x: x.write("s.csv", _fill(1) + ",b,c\n")), "sent0"),
    ("pairs: short row", pairs_nli(lambda x: x.write("r.csv", _fill(1) + "a\n")), "columns"),
    (
        "pairs: unknown kind",
        lambda x: ["prepare", "pairs", "--input", x.write("k.csv", _fill(1)), "--kind", "x", "--out", x.out],
        "--kind",
    ),
    (
        "pairs: unknown on-error",
        lambda x: [*pairs_nli(lambda y: y.write("o.csv", _fill(1)))(x), "--on-error", "x"],
        "--on-error",
    ),
    (
        "pairs: lone surrogate caption",
        pairs_caption('{"image": "ok.png", "caption": "\\ud800"}\n'),
        "surrogate",
    ),
    (
        "pairs: JSON error names the file line",
        pairs_caption('{"image": "ok.png", "caption": "a"}\n{"image": \n'),
        ":2",
    ),
    (
        "pairs: JSON list error names its line",
        pairs_caption('[\n{"image": "ok.png",\n "caption": }\n]\n', "c/a.json"),
        ":3",
    ),
    ("pairs: caption invalid UTF-8", pairs_caption(b'{"image": "ok.png", "caption": "\xff"}\n'), ":1"),
    ("pairs: image missing", pairs_caption('{"image": "gone.png", "caption": "a"}\n'), "not found"),
    ("pairs: image path escapes", pairs_caption('{"image": "../x.png", "caption": "a"}\n'), "escapes"),
    (
        "pairs: --out is a file",
        lambda x: [
            "prepare",
            "pairs",
            "--input",
            x.write("f.csv", _fill(1)),
            "--kind",
            "nli",
            "--out",
            x.write("out", "x"),
        ],
        "not a folder",
    ),
    (
        "pairs: --out holds the input",
        lambda x: [
            "prepare",
            "pairs",
            "--input",
            x.write("out/in.csv", _fill(1)),
            "--kind",
            "nli",
            "--out",
            x.out,
            "--force",
        ],
        "holds an input",
    ),
    # prepare demo / mbeir
    (
        "demo: --force on a foreign folder",
        lambda x: (x.write("out/thesis.txt", "x"), ["prepare", "demo", "--out", x.out, "--force"])[1],
        "not an umarvel output",
    ),
    (
        "mbeir: root missing",
        lambda x: ["prepare", "mbeir", "--root", x.tmp / "nope", "--out", x.out],
        "--root",
    ),
    ("mbeir: 0-byte query file", mbeir(lambda r: _query_file(r).write_bytes(b"")), "0 bytes"),
    (
        "mbeir: instructions without rows",
        mbeir(
            lambda r: (r / "instructions" / "query_instructions.tsv").write_text(
                "query_modality\tcand_modality\tdataset_name\tdataset_id\tprompt_1\n"
            )
        ),
        "no instruction rows",
    ),
    (
        "mbeir: lone surrogate query text",
        mbeir(
            _append_query(
                b'{"qid": "9:999", "query_txt": "\\ud800", "query_img_path": null, "query_modality": "text", "query_src_content": null, "pos_cand_list": ["9:67"], "neg_cand_list": [], "task_id": 0}\n'
            )
        ),
        "surrogate",
    ),
    ("mbeir: JSON error names the file line", mbeir(_append_query(b'{"qid": \n')), "column"),
    (
        "mbeir: invalid UTF-8 query line",
        mbeir(_append_query(b'{"qid": "\xff"}\n')),
        "mbeir_mscoco_task0_test.jsonl:",
    ),
    ("mbeir: unknown split", mbeir(lambda r: None, "--split", "dev"), "dev"),
    # embed
    ("embed: --data unfinished", embed(data=lambda x: x.unfinished("pairs")), "unfinished"),
    ("embed: --data missing", embed(data=lambda x: x.tmp / "nope"), "--data"),
    ("embed: --model missing", embed(model=lambda x: x.tmp / "nope"), "model folder not found"),
    (
        "embed: config.json not JSON",
        embed(model=broken_model(lambda m: (m / "config.json").write_text("{oops"))),
        "config.json:1",
    ),
    ("embed: truncated weights", embed(model=broken_model(_truncate)), "model.safetensors"),
    (
        "embed: weights missing",
        embed(model=broken_model(lambda m: (m / "model.safetensors").unlink())),
        "no model weights",
    ),
    (
        "embed: pickled weights",
        embed(model=broken_model(lambda m: (m / "model.safetensors").rename(m / "pytorch_model.bin"))),
        "pickled",
    ),
    ("embed: unknown side", embed(side="both"), "--side"),
    ("embed: unknown dtype", lambda x: [*embed()(x), "--dtype", "int8"], "--dtype"),
    (
        "embed: corrupt Parquet shard in --data",
        embed(data=lambda x: x.corrupt_shard("tables", "queries")),
        "unreadable Parquet shard",
    ),
    ("embed: decompression bomb", embed(data=_bomb_tables), "pixels"),
    # index
    (
        "index: --candidates unfinished",
        lambda x: ["index", "--candidates", x.unfinished("c"), "--out", x.out],
        "unfinished",
    ),
    (
        "index: --candidates missing",
        lambda x: ["index", "--candidates", x.tmp / "nope", "--out", x.out],
        "no embeddings table",
    ),
    (
        "index: rows differ from the manifest",
        lambda x: ["index", "--candidates", _grown(x), "--out", x.out],
        "manifest counted",
    ),
    (
        "index: corrupt Parquet shard",
        lambda x: ["index", "--candidates", x.corrupt_shard("c", "embeddings"), "--out", x.out],
        "unreadable Parquet shard",
    ),
    (
        "index: bad factory",
        lambda x: ["index", "--candidates", x.c, "--out", x.out, "--factory", "Nope99"],
        "--factory",
    ),
    # search
    (
        "search: --queries unfinished",
        search(lambda x: x.unfinished("q"), lambda x: ["--candidates", x.c]),
        "--queries",
    ),
    (
        "search: corrupt Parquet shard as --queries",
        search(lambda x: x.corrupt_shard("q", "embeddings"), lambda x: ["--candidates", x.c]),
        "unreadable Parquet shard",
    ),
    ("search: neither --index nor --candidates", search(extra=lambda x: []), "--index/--candidates"),
    ("search: --topk 0", search(extra=lambda x: ["--candidates", x.c, "--topk", "0"]), "--topk"),
    ("search: --index is not an index", search(extra=lambda x: ["--index", x.c]), "--index"),
    (
        "search: --trec is a symlink",
        search(extra=lambda x: ["--candidates", x.c, "--trec", _link(x)]),
        "not a regular file",
    ),
    (
        "search: --trec is a folder",
        search(extra=lambda x: ["--candidates", x.c, "--trec", _folder(x)]),
        "is a folder",
    ),
    # eval
    ("eval: NaN score", eval_run("a Q0 b 1 nan sys\n"), "not finite"),
    ("eval: infinite score", eval_run("a Q0 b 1 0.5 sys\na Q0 c 2 -inf sys\n"), ":2"),
    ("eval: run not UTF-8", eval_run(b"a Q0 \xff 1 0.5 sys\n"), "UTF-8"),
    ("eval: run with 4 columns", eval_run("a Q0 b 1\n"), "4 columns"),
    ("eval: rank not an integer", eval_run("a Q0 b one 0.5 sys\n"), "rank"),
    ("eval: unknown query ids", eval_run("nope Q0 b 1 0.5 sys\n"), "query id"),
    ("eval: empty run", eval_run(""), "empty"),
    (
        "eval: unknown split",
        eval_run(lambda x: f"{_test_qid(x)} Q0 b 1 0.5 sys\n", "--split", "dev"),
        "--split",
    ),
    (
        "eval: --run folder unfinished",
        lambda x: ["eval", "mbeir", "--data", x.tables, "--run", x.unfinished("search"), "--out", x.out],
        "--run",
    ),
    (
        "eval: --data unfinished",
        lambda x: [
            "eval",
            "mbeir",
            "--data",
            x.unfinished("pairs"),
            "--run",
            x.write("r.trec", "a Q0 b 1 1 s\n"),
            "--out",
            x.out,
        ],
        "unfinished",
    ),
    # train
    ("train: lr=.nan", train("--set", "lr=.nan"), "lr"),
    ("train: lora_dropout=2.0", train("--set", "lora_dropout=2.0"), "lora_dropout"),
    ("train: max_steps=-1", train("--set", "max_steps=-1"), "max_steps"),
    ("train: weight_decay=-5", train("--set", "weight_decay=-5"), "weight_decay"),
    ("train: unknown key", train("--set", "nope=1"), "nope"),
    ("train: config is not YAML", train("--config", lambda x: x.write("c.yaml", "lr: [1,\n")), "c.yaml"),
    ("train: config is not UTF-8", train("--config", lambda x: x.write("c.yaml", b"lr: \xff\n")), "UTF-8"),
    ("train: --pairs unfinished", train(pairs=lambda x: x.unfinished("pairs")), "unfinished"),
    (
        "train: pickled init model",
        train(model=broken_model(lambda m: (m / "model.safetensors").rename(m / "pytorch_model.bin"))),
        "pickled",
    ),
    ("train: unknown device", train("--device", "tpu9"), "--device"),
]


def _grown(x: Inputs) -> Path:
    c = x.copy("c")
    manifest = json.loads((c / "manifest.json").read_text())
    manifest["counts"] = {"embedded": 7}
    (c / "manifest.json").write_text(json.dumps(manifest))
    return c


def _folder(x: Inputs) -> Path:
    (x.tmp / "papers").mkdir()
    x.write("papers/thesis.tex", "keep")
    return x.tmp / "papers"


def _link(x: Inputs) -> Path:
    target = x.write("victim.txt", "keep")
    link = x.tmp / "link.trec"
    link.symlink_to(target)
    return link


if not torch.cuda.is_available():  # on a CPU-only torch, asking for CUDA is the user's mistake
    CASES.append(("train: --device cuda on CPU torch", train("--device", "cuda"), "CUDA"))


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    stages = {name.split(":")[0] for name, _, _ in CASES}
    assert {"pairs", "mbeir", "embed", "index", "search", "eval", "train"} <= stages


@pytest.mark.parametrize(("name", "build", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name, build, needle, base, tmp_path):
    x = Inputs(base, tmp_path)
    args = build(x)
    before = sorted(p.name for p in x.out.iterdir()) if x.out.is_dir() else None
    was_file = x.out.is_file()
    line = error_line(cli(*args))
    assert needle in line, line
    if was_file:
        assert x.out.read_text() == "x"
    elif before is None:
        assert folder_is_clean(x.out), sorted(x.out.iterdir())
    else:  # a folder the user had: exactly as it was
        assert sorted(p.name for p in x.out.iterdir()) == before


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_read_only_or_full_out_is_one_line(code, base, tmp_path, monkeypatch):
    """A read-only or full disk (simulated where files are created) is one line, and nothing stays."""
    import umarvel_cli.artifacts.atomic as atomic

    def failing(target: Path):
        raise OSError(code, __import__("os").strerror(code), str(target))

    monkeypatch.setattr(atomic, "create_temp_file", failing)
    out = tmp_path / "out"
    line = error_line(
        cli("search", "--queries", base["q"], "--candidates", base["c"], "--out", out, "--device", "cpu")
    )
    assert ("read-only" in line) if code == errno.EROFS else ("no space" in line)
    assert folder_is_clean(out)
