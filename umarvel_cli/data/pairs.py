"""`prepare pairs`: read the progressive-stage corpora into the `pairs` table.

Inputs: NLI triplets as csv with SimCSE's header (`sent0,sent1[,hard_neg]`: anchor, entailment,
contradiction) and caption pairs as jsonl (`{"image": ..., "caption"|"text": ...}`), a JSON list of
such records (also LLaVA's CC3M-595K `chat.json`, caption in the gpt turn of `conversations`), or
U-MARVEL's CC3M `train_anno.json` dict (`{"GCC_train_x": {"h5v": path,
"instruct_ans": [caption]}}`). Image paths are stored relative to an images root (recorded in the
manifest); a path that escapes it, or a missing image file, is a bad row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.manifest import Manifest, fingerprint, require_manifest
from umarvel_cli.artifacts.paths import safe_relative
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.console import info, make_progress
from umarvel_cli.data.mbeir.output import BadRows, TableSink
from umarvel_cli.data.mbeir.records import RowError
from umarvel_cli.data.text_input import csv_errors, decoded_lines, is_storable, iter_csv
from umarvel_cli.errors import UmarvelError

STAGE = "prepare-pairs"
KINDS = ("nli", "caption")
NLI_COLUMNS = ("sent0", "sent1", "hard_neg")
IMAGE_KEYS = ("image", "image_path", "img_path")
CAPTION_KEYS = ("caption", "text")

Row = tuple[str, str, "str | None", "str | None", "str | None", "str | None", "str | None", "str | None"]
Item = tuple[int, "Row | RowError"]  # (line or entry number, the row or why it is bad)


def _text(value: Any, field: str, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(field, "empty or missing text")
        return None
    if not isinstance(value, str):
        raise RowError(field, f"expected a string, found {type(value).__name__}")
    if not is_storable(value):
        raise RowError(field, "text holds a lone surrogate (e.g. \\ud800), which UTF-8 cannot store")
    return value.strip()


# --- NLI csv --------------------------------------------------------------------------------------


def read_nli(path: Path) -> Iterator[Item]:
    """Rows of a SimCSE NLI csv; `hard_neg` may be absent (then there is no negative)."""
    stem = path.stem
    with open(path, "rb") as fh:
        reader = csv.reader(decoded_lines(fh, path, bom=True))
        with csv_errors(path, reader):
            header = next(reader, None)
        if header is None or "sent0" not in header or "sent1" not in header:
            raise UmarvelError(
                f"csv header is {','.join(header or []) or 'empty'}",
                file=path,
                line=1,
                field="header",
                expected="a header with sent0,sent1[,hard_neg] (SimCSE NLI format)",
            )
        cols = {name: header.index(name) for name in NLI_COLUMNS if name in header}
        n = 0
        start = reader.line_num + 1
        for values in iter_csv(reader, path):
            line, start = start, reader.line_num + 1
            if not values:
                continue
            n += 1
            if len(values) != len(header):
                yield line, RowError(None, f"expected {len(header)} columns, found {len(values)}")
                continue
            try:
                anchor = _text(values[cols["sent0"]], "sent0")
                pos = _text(values[cols["sent1"]], "sent1")
                neg = (
                    _text(values[cols["hard_neg"]], "hard_neg", required=False)
                    if "hard_neg" in cols
                    else None
                )
            except RowError as e:
                yield line, e
                continue
            yield line, (f"{stem}:{n}", "nli", anchor, None, pos, None, neg, None)


# --- caption pairs --------------------------------------------------------------------------------


class ImageResolver:
    """Turns an input image path into a safe path relative to the images root that exists there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = str(root) + os.sep
        self.real = os.path.realpath(root) + os.sep

    def __call__(self, value: Any, field: str) -> str:
        raw = _text(value, field)
        assert raw is not None
        if os.path.isabs(raw):
            absolute = os.path.normpath(raw)
            if not absolute.startswith(self.prefix):
                raise RowError(field, f"absolute image path {raw!r} is not under the images root {self.root}")
            raw = absolute[len(self.prefix) :]
        try:
            rel = safe_relative(raw, field=field)
        except UmarvelError as e:
            raise RowError(field, e.message) from None
        if not rel or not os.path.isfile(self.prefix + rel):
            raise RowError(field, f"image file {rel!r} not found under the images root {self.root}")
        if not os.path.realpath(self.prefix + rel).startswith(self.real):
            raise RowError(field, f"image {rel!r} is a link that leads outside the images root {self.root}")
        return rel


def _first(rec: dict, keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if key in rec:
            return key, rec[key]
    raise RowError(keys[0], f"missing field (one of {', '.join(keys)})")


def caption_row(rec: Any, pair_id: str, images: ImageResolver) -> Row:
    """A jsonl-style record with an image and a caption (or text) field."""
    if not isinstance(rec, dict):
        raise RowError(None, f"expected a JSON object, found {type(rec).__name__}")
    key, value = _first(rec, IMAGE_KEYS)
    image = images(value, key)
    if "conversations" in rec and not any(k in rec for k in CAPTION_KEYS):
        key, value = "conversations", _answer(rec["conversations"])
    else:
        key, value = _first(rec, CAPTION_KEYS)
    caption = _text(value, key)
    return (pair_id, "caption", caption, None, None, image, None, None)


def _answer(turns: Any) -> Any:
    """The caption of a LLaVA-style record (CC3M-595K `chat.json`): the first gpt turn's value."""
    if isinstance(turns, list):
        for turn in turns:
            if isinstance(turn, dict) and turn.get("from") in ("gpt", "assistant"):
                return turn.get("value")
    raise RowError("conversations", "no gpt turn holding the caption")


def read_caption_jsonl(path: Path, images: ImageResolver) -> Iterator[Item]:
    stem = path.stem
    with open(path, "rb") as fh:
        for line, raw in enumerate(decoded_lines(fh, path), 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                yield line, RowError(None, f"malformed JSON line ({e.msg} at column {e.colno})")
                continue
            except ValueError as e:
                yield line, RowError(None, f"malformed JSON line ({e})")
                continue
            pair_id = rec.get("id") if isinstance(rec, dict) else None
            try:
                yield (
                    line,
                    caption_row(rec, str(pair_id) if pair_id is not None else f"{stem}:{line}", images),
                )
            except RowError as e:
                yield line, e


def _anno_row(key: str, rec: Any, images: ImageResolver) -> Row:
    """One entry of U-MARVEL's `train_anno.json`: the image in `h5v`, the caption in `instruct_ans[0]`."""
    if not isinstance(rec, dict):
        raise RowError(f"{key}", f"expected an object, found {type(rec).__name__}")
    if "h5v" not in rec:
        raise RowError(f"{key}.h5v", "missing field")
    image = images(rec["h5v"], f"{key}.h5v")
    answers = rec.get("instruct_ans")
    if not isinstance(answers, list) or not answers:
        raise RowError(f"{key}.instruct_ans", "expected a non-empty list of captions")
    return (key, "caption", _text(answers[0], f"{key}.instruct_ans"), None, None, image, None, None)


def read_caption_json(path: Path, images: ImageResolver) -> Iterator[Item]:
    """A JSON file: the CC3M `train_anno.json` dict, or a list of jsonl-style records.

    Errors name the entry number as the line (a JSON document has no per-row lines).
    """
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UmarvelError(f"not valid UTF-8 (byte {e.start})", file=path) from None
    except json.JSONDecodeError as e:
        raise UmarvelError(
            f"malformed JSON ({e.msg}, column {e.colno})",
            file=path,
            line=e.lineno,
            expected="a train_anno.json dict or a list",
        ) from None
    if isinstance(data, dict):
        for n, (key, rec) in enumerate(data.items(), 1):
            try:
                yield n, _anno_row(str(key), rec, images)
            except RowError as e:
                yield n, e
    elif isinstance(data, list):
        for n, rec in enumerate(data, 1):
            pair_id = rec.get("id") if isinstance(rec, dict) else None
            try:
                yield n, caption_row(rec, str(pair_id) if pair_id is not None else f"{path.stem}:{n}", images)
            except RowError as e:
                yield n, e
    else:
        raise UmarvelError(
            f"top level is a {type(data).__name__}", file=path, expected="a train_anno.json dict or a list"
        )


def read_pairs(source: Path, kind: str, images_root: Path | None) -> tuple[str, Iterator[Item]]:
    """(input format, rows) for a corpus file."""
    if kind == "nli":
        return "nli-csv", read_nli(source)
    assert images_root is not None
    images = ImageResolver(images_root)
    if source.suffix.lower() == ".json":
        return "caption-json", read_caption_json(source, images)
    return "caption-jsonl", read_caption_jsonl(source, images)


# --- the stage ------------------------------------------------------------------------------------


def _with_progress(items: Iterator[Item], label: str, every: int = 4096) -> Iterator[Item]:
    """A progress bar on stderr, updated every `every` rows (per-row updates cost more than reading)."""
    with make_progress("rows") as progress:
        task = progress.add_task(label, total=None, rate="")
        n = 0
        for n, item in enumerate(items, 1):
            yield item
            if n % every == 0:
                progress.update(task, completed=n, rate=f"{n:,} rows")
        progress.update(task, completed=n, rate=f"{n:,} rows")


def prepare_pairs(
    source: Path,
    out: Path,
    kind: str,
    images_root: Path | None = None,
    on_error: str = "fail",
    force: bool = False,
    rows_per_shard: int = 100_000,
) -> Manifest:
    """Read an NLI csv or a caption corpus into `out/pairs/`; returns the (new or up-to-date) manifest."""
    if kind not in KINDS:
        raise UmarvelError(f"unknown kind {kind!r}", field="--kind", expected=" or ".join(KINDS))
    if on_error not in ("fail", "skip"):
        raise UmarvelError(f"unknown --on-error {on_error!r}", field="--on-error", expected="fail or skip")
    source = Path(source).resolve()
    if not source.is_file():
        raise UmarvelError("input file does not exist", file=source, field="--input")
    root: Path | None = None
    if kind == "caption":
        root = Path(images_root).resolve() if images_root is not None else source.parent
        if not root.is_dir():
            raise UmarvelError("images root is not a folder", file=root, field="--images-root")
    out = Path(out)
    params = {
        "input": str(source),
        "kind": kind,
        "images_root": None if root is None else str(root),
        "on_error": on_error,
        "rows_per_shard": rows_per_shard,
    }
    sources = [source] if root is None else [source, root]
    plan = plan_stage(out, STAGE, params, {"input": fingerprint(source)}, force=force, input_paths=sources)
    if plan.up_to_date:
        info(f"prepare pairs: {out} is up to date ({plan.reason}); --force redoes it")
        return require_manifest(out, STAGE)
    if plan.status != "fresh":  # a refused fresh run prints only its error line
        info(f"prepare pairs: {plan.status} ({plan.reason}) → {out}")
    fmt, rows = read_pairs(source, kind, root)
    sink = TableSink(out, "pairs", rows_per_shard, plan.resume)
    bad = BadRows(on_error, out)
    seen: set[str] = set()
    try:
        for line, row in _with_progress(rows, f"prepare pairs {source.name}"):
            if not isinstance(row, RowError) and row[0] in seen:
                row = RowError("id", f"duplicate pair id {row[0]!r}")
            if isinstance(row, RowError):
                bad(source, line, row)
                continue
            seen.add(row[0])
            sink.add(row)
        n = sink.close()
    except BaseException:
        bad.abandon()
        raise
    bad.close()
    extra = {"images_root": params["images_root"], "kind": kind, "format": fmt}
    manifest = finish_stage(plan, {"pairs": n, "rejected": bad.total}, extra)
    info(
        f"prepare pairs: {n:,} {kind} pairs"
        + (f", {bad.total:,} rejected (see {bad.path})" if bad.total else "")
    )
    return manifest
